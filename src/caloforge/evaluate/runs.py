"""Full against fast simulation in a detector's own readout: two ``caloforge g4run`` files of
the same events, compared event by event and cell by cell, with their CPU time.

What a physicist checks first: the per-event energy sum (its mean and resolution), the
longitudinal profile in the detector's layers, the spectrum of cell energies, and the CPU time
per event. :func:`compare_runs` gives the numbers, :func:`write_run_report` a page of plots.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.errors import DataError

KEYS = ("event_energy_mev", "event_geant4_seconds", "event_model_seconds", "readout_offsets",
        "readout_cells", "readout_energies_mev", "handover_event", "primary_event")  # fmt: skip


@dataclass(frozen=True)
class Run:
    """A g4run file in memory."""

    path: str
    attrs: dict[str, Any]
    data: dict[str, np.ndarray]

    @property
    def n_events(self) -> int:
        return len(self.data["event_energy_mev"])

    @property
    def readout(self) -> dict[str, Any]:
        return json.loads(self.attrs["readout"])

    def seconds(self) -> np.ndarray:
        """CPU seconds per event: Geant4's and the model's."""
        return self.data["event_geant4_seconds"] + self.data["event_model_seconds"]

    def layer_profiles(self) -> np.ndarray:
        """Energy per readout layer and event, (N, layers)."""
        r = self.readout
        n_layers, per_layer = r["n_layers"], r["n_phi"] * math.ceil(r["length_mm"] / r["z_cell_mm"])  # fmt: skip
        offsets, cells = self.data["readout_offsets"], self.data["readout_cells"]
        events = np.repeat(np.arange(self.n_events), np.diff(offsets))
        out = np.zeros((self.n_events, n_layers))
        np.add.at(out, (events, cells // per_layer), self.data["readout_energies_mev"])
        return out


def read_run(path: str | Path) -> Run:
    """Read a ``caloforge g4run`` file.

    Raises:
        DataError: for a missing, unreadable or foreign file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            data = {k: f[k][()] for k in KEYS}
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except (OSError, KeyError) as exc:
        raise DataError(f"{path} is not a readable caloforge g4run file ({exc})") from None
    return Run(str(path), attrs, data)


@dataclass(frozen=True)
class RunComparison:
    """Fast against full: the numbers of the report (energies in MeV, times in seconds)."""

    events: int
    handovers_per_event: float
    mean_full: float
    mean_fast: float
    mean_ratio: float  # fast / full - 1
    mean_ratio_error: float  # statistical, from the per-event differences (same events)
    resolution_full: float  # sigma / mean of the per-event energy sum
    resolution_fast: float
    profile_worst: float  # largest relative difference of the mean layer profile where a
    # layer holds > 1 % of the energy
    seconds_full: float  # mean CPU per event
    seconds_fast: float
    speedup: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_runs(full: Run, fast: Run) -> RunComparison:
    """Compare two runs of the same events (same detector, gun, seed)."""
    for key in ("detector_name", "readout", "gun", "seed", "tracker"):
        if full.attrs.get(key) != fast.attrs.get(key):
            raise DataError(f"{full.path} and {fast.path} differ in {key}: not the same events")
    if full.n_events != fast.n_events:
        raise DataError(f"{full.path} holds {full.n_events} events, {fast.path} {fast.n_events}")
    e_full, e_fast = full.data["event_energy_mev"], fast.data["event_energy_mev"]
    m_full, m_fast = e_full.mean(), e_fast.mean()
    n = len(e_full)
    # the same events in both runs: the error of the mean of the per-event differences (the
    # primaries' spread, common to both runs, cancels)
    paired = float((e_fast - e_full).std(ddof=1) / math.sqrt(n) / m_full) if n > 1 else math.nan
    p_full, p_fast = full.layer_profiles().mean(0), fast.layer_profiles().mean(0)
    big = p_full > 0.01 * p_full.sum()
    worst = float(np.max(np.abs(p_fast[big] / p_full[big] - 1))) if big.any() else math.nan
    s_full, s_fast = full.seconds().mean(), fast.seconds().mean()
    return RunComparison(
        events=n,
        handovers_per_event=len(fast.data["handover_event"]) / n,
        mean_full=float(m_full),
        mean_fast=float(m_fast),
        mean_ratio=float(m_fast / m_full - 1),
        mean_ratio_error=paired,
        resolution_full=float(e_full.std() / m_full),
        resolution_fast=float(e_fast.std() / m_fast),
        profile_worst=worst,
        seconds_full=float(s_full),
        seconds_fast=float(s_fast),
        speedup=float(s_full / s_fast) if s_fast > 0 else math.inf,
    )


def _figures(full: Run, fast: Run, out: Path) -> list[str]:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    from caloforge.evaluate.plots import save_figure

    names = []
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    e_full, e_fast = full.data["event_energy_mev"] / 1e3, fast.data["event_energy_mev"] / 1e3
    edges = np.linspace(min(e_full.min(), e_fast.min()), max(e_full.max(), e_fast.max()), 41)
    for values, label in ((e_full, "Geant4 (full)"), (e_fast, "fast")):
        axes[0].hist(values, edges, histtype="step", density=True, label=label)
    axes[0].set_xlabel("event energy in the readout (GeV, active)")
    axes[0].legend(fontsize=8)
    layers = np.arange(full.layer_profiles().shape[1])
    for run, label in ((full, "Geant4 (full)"), (fast, "fast")):
        axes[1].step(layers, run.layer_profiles().mean(0) / 1e3, where="mid", label=label)
    axes[1].set_xlabel("readout layer")
    axes[1].set_ylabel("mean energy per event (GeV)")
    cells = [r.data["readout_energies_mev"] for r in (full, fast)]
    cell_edges = np.logspace(-3, math.log10(max(c.max() for c in cells if len(c)) * 1.1), 50)
    for values, label in zip(cells, ("Geant4 (full)", "fast"), strict=True):
        axes[2].hist(values, cell_edges, histtype="step", label=label, weights=np.full(len(values), 1 / full.n_events))  # fmt: skip
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("cell energy (MeV)")
    axes[2].set_ylabel("cells per event")
    t_full, t_fast = full.seconds() * 1e3, fast.seconds() * 1e3
    t_edges = np.logspace(math.log10(max(min(t_full.min(), t_fast.min()), 1e-3)), math.log10(max(t_full.max(), t_fast.max()) * 1.1), 40)  # fmt: skip
    for values, label in ((t_full, "Geant4 (full)"), (t_fast, "fast (Geant4 + model)")):
        axes[3].hist(np.clip(values, t_edges[0], None), t_edges, histtype="step", label=label)
    axes[3].set_xscale("log")
    axes[3].set_xlabel("CPU time per event (ms)")
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "full_vs_fast.png")
    plt.close(fig)
    names.append("full_vs_fast.png")
    return names


def write_run_report(full: Run, fast: Run, out: str | Path, title: str = "") -> RunComparison:
    """Compare the runs and write ``out/index.html`` (table + figure) and ``out/comparison.json``."""
    from caloforge.atomic import write_text_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = compare_runs(full, fast)
    images = _figures(full, fast, out)
    r = result
    rows = [
        ("events", f"{r.events}"),
        ("particles handed to the model per event", f"{r.handovers_per_event:.2f}"),
        ("mean event energy, full / fast (MeV)", f"{r.mean_full:.1f} / {r.mean_fast:.1f}"),
        ("fast / full - 1", f"{r.mean_ratio:+.2%} ± {r.mean_ratio_error:.2%}"),
        (
            "resolution sigma/mean, full / fast",
            f"{r.resolution_full:.2%} / {r.resolution_fast:.2%}",
        ),
        ("worst layer of the mean profile (> 1 % of the energy)", f"{r.profile_worst:.1%}"),
        (
            "CPU per event, full / fast (ms)",
            f"{r.seconds_full * 1e3:.1f} / {r.seconds_fast * 1e3:.1f}",
        ),
        ("speed-up", f"{r.speedup:.1f}x"),
    ]
    table = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title or 'full vs fast')}</title>"
        f"<h1>{html.escape(title or 'Full against fast simulation')}</h1>"
        f"<p>{html.escape(full.path)} (full) against {html.escape(fast.path)} (fast, "
        f"{html.escape(str(fast.attrs.get('fast')))})</p><table>{table}</table>"
        + "".join(f"<p><img src='{n}' style='max-width:100%'></p>" for n in images)
    )
    write_text_atomic(out / "index.html", page)
    write_text_atomic(out / "comparison.json", json.dumps(result.to_dict(), indent=1))
    return result
