"""Fidelity of a model against held-out Geant4 showers, with the diagnostics that split the blame.

The held-out Geant4 set is cut in two halves, A and B, of the same size. Everything is compared
with B (``caloforge.evaluate.compare``, the default settings of ``caloforge evaluate``, which
add their own Geant4-vs-Geant4 baseline), at the conditions of A:

- ``model``: the model's showers.
- ``G4 layers + model shapes`` (factorised models): A's own layer energies, shared out by the
  shape model, so only the shape model is judged.
- ``model layers + G4 shapes``: A's showers with each layer rescaled to the model's layer
  energy (a layer empty in A borrows the shape of that layer from A's shower of nearest
  incident energy that has it), so only the energy model is judged.
- ``Geant4 (A)``: A itself, the floor.

The radial halo table gives, per radial bin, the share of voxels holding energy and their mean
energy, for A, the model and (factorised models) the shape model alone.

Then the acceptance checks of issue 14, per energy decade: E_tot/E_inc mean (within 1 %) and
relative width (within 10 %), mean longitudinal and radial profiles (within 10 % where a bin
holds > 0.1 % of the energy), separation powers of E_ratio and every layer energy (within 3x
the baseline), AUC high (<= 0.75) and FPD (<= 3x the baseline).

    python benchmarks/fidelity.py --model runs/factorized [--reference data/siw-test.h5]
        [-n 10000] [--results benchmarks/results/fidelity_NAME.md] [--no-diagnostics]

``-n`` is the size of the held-out set used (A and B get half each). ``--samples FILE.npz``
keeps the generated showers (the model's, and with G4 layers) with their conditions, the
model's weight checksums, the seed and the sampler: a later call with the same model, seed and
sampler whose half A starts with the same conditions reuses them (each shower has its own noise
stream, so the first 5000 of a 10k-vs-10k run are exactly a 5k-vs-5k run's showers).
``--report DIR`` writes the model's comparison as ``caloforge evaluate`` does (the same
settings; ``metrics.json``, plots, ``index.html``), e.g. for ``scripts/ship_default_model.py
--evaluation DIR``. Needs the held-out files
of ``scripts/make-datasets.sh`` (seeds never used in training): ``siw-test`` (seed 2) for
5k vs 5k, with ``siw-test-b`` (seed 5) for 10k vs 10k (``--reference data/siw-test.h5
data/siw-test-b.h5 -n 20000``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caloforge.config import EvaluationConfig
from caloforge.data.contract import voxel_threshold
from caloforge.data.factorized import layer_energies, rescale_layers
from caloforge.data.readers import read_showers
from caloforge.data.showers import ShowerData
from caloforge.evaluate import Comparison, compare
from caloforge.evaluate.results import Measured
from caloforge.fastsim import load_model, shower_seeds
from caloforge.fastsim.families import FACTORIZED
from caloforge.fastsim.model import FastSimModel, SamplerSettings

ROOT = Path(__file__).resolve().parents[1]
DECADES = ((1.0, 10.0), (10.0, 100.0), (100.0, 1000.0))  # GeV, [low, high)


@dataclass(frozen=True)
class Check:
    """One acceptance check: what, the value, the limit, passed."""

    name: str
    value: str
    limit: str
    ok: bool


def _like(data: ShowerData, showers: np.ndarray) -> ShowerData:
    """``data`` with other voxels (same conditions, binning and attributes)."""
    return ShowerData(data.energies, showers, data.binning, data.theta, data.phi, data.attrs)


def _split(data: ShowerData, n: int) -> tuple[ShowerData, ShowerData]:
    half = n // 2
    parts = []
    for sl in (slice(0, half), slice(half, 2 * half)):
        theta = None if data.theta is None else data.theta[sl]
        phi = None if data.phi is None else data.phi[sl]
        showers = np.asarray(data.showers[sl], dtype=np.float32)
        parts.append(ShowerData(data.energies[sl], showers, data.binning, theta, phi, data.attrs))
    return parts[0], parts[1]


def _ratio(data: ShowerData) -> np.ndarray:
    """E_tot / E_inc per shower."""
    return data.showers.sum(axis=1, dtype=np.float64) / data.energies


def _profiles(showers: np.ndarray, mesh: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean longitudinal and radial energy fractions, (Z,) and (R,)."""
    x = np.asarray(showers, dtype=np.float64).reshape(len(showers), *mesh)
    z, r = x.sum(axis=(2, 3)).mean(axis=0), x.sum(axis=(1, 2)).mean(axis=0)
    return z / z.sum(), r / r.sum()


def acceptance(
    ref: ShowerData, gen: ShowerData, result: Comparison, mesh: tuple[int, int, int]
) -> list[Check]:
    """Issue 14's checks of ``gen`` against ``ref`` (same conditions), per energy decade."""
    checks = []
    for lo, hi in DECADES:
        m = (ref.energies >= lo * 1e3) & (ref.energies < hi * 1e3)
        if m.sum() < 50:  # too few showers in this decade to judge it
            continue
        r_ref, r_gen = _ratio(ref)[m], _ratio(gen)[m]
        mean = r_gen.mean() / r_ref.mean() - 1
        width = (r_gen.std() / r_gen.mean()) / (r_ref.std() / r_ref.mean()) - 1
        tag = f"{lo:g}-{hi:g} GeV"
        checks.append(Check(f"E_tot/E_inc mean, {tag}", f"{mean:+.2%}", "within 1 %", abs(mean) <= 0.01))  # fmt: skip
        checks.append(Check(f"E_tot/E_inc rel. width, {tag}", f"{width:+.1%}", "within 10 %", abs(width) <= 0.10))  # fmt: skip
        for name, (p_ref, p_gen) in zip(
            ("longitudinal", "radial"),
            zip(_profiles(ref.showers[m], mesh), _profiles(gen.showers[m], mesh), strict=True),
            strict=True,
        ):
            big = p_ref > 1e-3
            worst = float(np.max(np.abs(p_gen[big] / p_ref[big] - 1)))
            checks.append(Check(f"{name} profile, {tag}", f"{worst:.1%} worst bin", "within 10 %", worst <= 0.10))  # fmt: skip
    base = result.baseline
    sep_base = base.separation_power if base else {}
    names = [k for k in result.separation_power if k == "e_ratio" or k.startswith("e_layer_")]
    ratios = {k: result.separation_power[k] / max(sep_base.get(k, 0.0), 1e-12) for k in names}
    name = max(ratios, key=lambda k: ratios[k])
    checks.append(Check("sep. power E_ratio and layer energies / baseline", f"{ratios[name]:.2f}x ({name})", "<= 3x", ratios[name] <= 3))  # fmt: skip
    if result.auc_high is not None:
        checks.append(Check("AUC high", result.auc_high.format(), "<= 0.75", result.auc_high.value <= 0.75))  # fmt: skip
    if result.fpd is not None and base is not None and base.fpd is not None:
        ratio = result.fpd.value / max(base.fpd.value, 1e-12)
        checks.append(Check("FPD / baseline", f"{ratio:.2f}x", "<= 3x", ratio <= 3))
    return checks


def _halo(samples: dict[str, np.ndarray], mesh: tuple[int, int, int]) -> list[str]:
    """Per radial bin: the share of voxels that hold energy (after the threshold) and their mean
    energy. The outer bins' few hits set the shower widths, which a shape model that is too
    narrow gets wrong first."""
    head = "| showers | " + " | ".join(f"r{i}" for i in range(mesh[2])) + " |"
    lines = [
        "Radial halo: voxels holding energy (%) / their mean energy (MeV), per radial bin:",
        "",
        head,
        "|---|" + "---|" * mesh[2],
    ]
    for name, showers in samples.items():
        x = np.asarray(showers, dtype=np.float64).reshape(len(showers), *mesh)
        held = x > 0
        share = held.mean(axis=(0, 1, 2))
        energy = x.sum(axis=(0, 1, 2)) / np.maximum(held.sum(axis=(0, 1, 2)), 1)
        cells = (f"{100 * h:.3g} / {e:.3g}" for h, e in zip(share, energy, strict=True))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _section(title: str, result: Comparison, seconds: float) -> list[str]:
    return [f"### {title} ({seconds:.0f} s)", "", result.markdown(), ""]


def _bins(result: Comparison) -> list[str]:
    """The high-level AUC and E_tot/E_inc separation power per condition bin (energy decades,
    theta bins), beside each bin's Geant4-vs-Geant4 baseline."""
    bins = result.metrics.get("conditions", {}).get("bins", [])
    rows = []
    for entry in bins:
        if "auc_high" not in entry:
            continue
        base = entry.get("baseline", {})
        auc, auc_base = Measured.read(entry["auc_high"]), Measured.read(base.get("auc_high"))
        seps = (entry.get("separation_power", {}).get("e_ratio"), base.get("separation_power", {}).get("e_ratio"))  # fmt: skip
        sep, sep_base = ("-" if v is None else f"{v:.4g}" for v in seps)
        rows.append(
            f"| {entry['label']} | {entry['n_generated']} | {auc.format() if auc else '-'} | "
            f"{auc_base.format() if auc_base else '-'} | {sep} | {sep_base} |"
        )
    if not rows:
        return []
    head = "| condition bin | showers | AUC high | G4 vs G4 | sep. power E_tot/E_inc | G4 vs G4 |"
    return ["Per condition bin:", "", head, "|---|---|---|---|---|---|", *rows, ""]


@dataclass(frozen=True)
class Fidelity:
    """What :func:`fidelity` measured: the model's comparison, the diagnostics', the checks."""

    model: Comparison
    diagnostics: dict[str, Comparison]
    checks: list[Check]
    sampling_s: float
    text: str
    response: float  # mean E_tot/E_inc of the model / Geant4's (A), minus 1, all energies


def _read(references: list[str], n: int) -> ShowerData:
    """The first ``n`` showers of the reference files, one after the other."""
    parts: list[ShowerData] = []
    for path in references:
        left = n - sum(len(p) for p in parts)
        if left <= 0:
            break
        parts.append(read_showers(ROOT / path, stop=left))
    first = parts[0]
    for path, part in zip(references[1:], parts[1:], strict=False):
        if part.attrs.get("detector_name") != first.attrs.get("detector_name"):
            raise SystemExit(f"{path} is of another detector than {references[0]}")
    if len(parts) == 1:
        return first

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    return ShowerData(cat("energies"), cat("showers"), first.binning, cat("theta"), cat("phi"), first.attrs)  # fmt: skip


def _sample_key(model: FastSimModel, seed: int, settings: SamplerSettings | None) -> str:
    """What generated showers depend on, besides the conditions: weights, seed, sampler."""
    sums = {part: net.sha256 for part, net in model.record.networks.items()}
    return json.dumps({"weights": sums, "seed": seed, "sampler": (settings or SamplerSettings()).describe(model)}, sort_keys=True)  # fmt: skip


class SampleCache:
    """Generated showers kept in an ``.npz`` file between runs (see the module doc)."""

    def __init__(self, path: Path | None, key: str) -> None:
        self.path, self.key = path, key
        self.arrays: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            with np.load(path) as f:
                if str(f["key"]) == key:
                    self.arrays = {k: f[k] for k in f.files if k != "key"}

    def get(self, name: str, conditions: np.ndarray) -> np.ndarray | None:
        """The cached showers ``name`` at ``conditions`` (N, k), if they are the first N kept."""
        kept, conds = self.arrays.get(name), self.arrays.get(f"{name}_conditions")
        n = len(conditions)
        if kept is None or conds is None or len(kept) < n or not np.array_equal(conds[:n], conditions):  # fmt: skip
            return None
        return kept[:n]

    def put(self, name: str, conditions: np.ndarray, showers: np.ndarray) -> None:
        """Keep ``showers`` at ``conditions`` (N, k), unless those kept already cover them."""
        if self.path is None or self.get(name, conditions) is not None:
            return
        self.arrays.update({name: showers, f"{name}_conditions": conditions})
        tmp = self.path.with_name(self.path.name + ".part.npz")
        np.savez(tmp, **{"key": np.array(self.key), **self.arrays})  # type: ignore[arg-type]
        os.replace(tmp, self.path)


def _sampler_flags(settings: SamplerSettings | None) -> str:
    if settings is None:
        return ""
    flags = f" --sampler {settings.sampler}" if settings.sampler else ""
    return flags + (f" --sampler-steps {settings.steps}" if settings.steps else "")


def fidelity(
    model_dir: str,
    reference: str | list[str],
    n: int,
    *,
    seed: int = 1,
    diagnostics: bool = True,
    settings: SamplerSettings | None = None,
    samples: Path | None = None,
    report: Path | None = None,
) -> Fidelity:
    """The model in ``model_dir`` against the first ``n`` showers of ``reference`` (one file or
    several, read one after the other; see above); ``samples``: the cache of generated showers;
    ``report``: a folder for the model's full ``caloforge evaluate`` report (plots, ``metrics.json``)."""
    model = load_model(model_dir)
    cache = SampleCache(samples, _sample_key(model, seed, settings))
    references = [reference] if isinstance(reference, str) else list(reference)
    data = _read(references, n)
    reference = " ".join(references)
    threshold, _ = voxel_threshold(model.record.calibrated)
    a, b = _split(data, min(n, len(data)))
    for part in (a, b):
        part.showers[part.showers < threshold] = 0.0  # as the evaluation will
    mesh = model.preprocessing.mesh_shape
    detector = str(data.attrs["detector_name"])
    config = EvaluationConfig()
    seeds = shower_seeds(seed, range(len(a)))
    conditions = np.column_stack([v for v in (a.energies, a.theta, a.phi) if v is not None])

    def sample(layers: np.ndarray | None = None) -> tuple[ShowerData, float]:
        """Showers at A's conditions and the seconds it took to sample them (NaN: cached)."""
        name = "model" if layers is None else "g4_layers"
        start = time.perf_counter()
        showers = cache.get(name, conditions)
        if showers is not None:
            return _like(a, showers), float("nan")
        showers = model.generate(a.energies, a.theta, a.phi, detector, seeds, layers=layers, settings=settings)  # type: ignore[arg-type]  # fmt: skip
        seconds = time.perf_counter() - start
        cache.put(name, conditions, showers)
        return _like(a, showers), seconds

    lines = [
        f"## {model_dir} against {reference} ({len(a)} vs {len(b)} held-out showers)",
        "",
        (
            f"Command: `python benchmarks/fidelity.py --model {model_dir} --reference "
            f"{reference} -n {n}{_sampler_flags(settings)}`. Every comparison is against half B, at the "
            "conditions of half A; the right column is each comparison's own Geant4-vs-Geant4 "
            "baseline."
        ),
        "",
    ]
    generated, sampling = sample()
    start = time.perf_counter()
    note = f"generated by {model_dir} at the conditions of held-out half A (benchmarks/fidelity.py)"
    result = compare(b, generated, config, out_dir=report, overwrite=True, notes=[note])
    how = "cached samples" if np.isnan(sampling) else f"{sampling:.0f} s sampling"
    lines += _section(f"model ({how})", result, time.perf_counter() - start) + _bins(result)
    checks = acceptance(a, generated, result, mesh)
    found: dict[str, Comparison] = {}
    halo = {"Geant4 (A)": a.showers, "model": generated.showers}
    if diagnostics:
        model_layers = layer_energies(generated.showers, mesh)
        hybrid = _like(a, rescale_layers(a.showers, mesh, model_layers, a.energies))
        cases = {"Geant4 (A) vs Geant4 (B)": a, "model layers + G4 shapes": hybrid}
        if model.record.family == FACTORIZED:
            cases["G4 layers + model shapes"] = sample(layers=layer_energies(a.showers, mesh))[0]
            halo["G4 layers + model shapes"] = cases["G4 layers + model shapes"].showers
        for title, showers in cases.items():
            start = time.perf_counter()
            found[title] = compare(b, showers, config)
            lines += _section(title, found[title], time.perf_counter() - start)
    lines += _halo(halo, mesh)
    lines += [
        "### Acceptance (issue 14), model vs its own conditions' Geant4 (A)",
        "",
        "| check | value | limit | passed |",
        "|---|---|---|---|",
        *(f"| {c.name} | {c.value} | {c.limit} | {'yes' if c.ok else 'NO'} |" for c in checks),
        "",
    ]
    response = _ratio(generated).mean() / _ratio(a).mean() - 1
    return Fidelity(result, found, checks, sampling, "\n".join(lines), float(response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="'default' or a model/run folder")
    parser.add_argument(
        "--reference", nargs="+", default=["data/siw-test.h5"], help="held-out Geant4 file(s)"
    )
    parser.add_argument("-n", type=int, default=10_000, help="held-out showers used (A + B)")
    parser.add_argument("--seed", type=int, default=1, help="sampler seed")
    parser.add_argument("--results", type=Path, help="Markdown file for the tables")
    parser.add_argument("--no-diagnostics", action="store_true", help="the model only")
    parser.add_argument("--sampler", help="a sampler or student of the model (default: its own)")
    parser.add_argument("--sampler-steps", type=int, help="its steps (default: the model's)")
    parser.add_argument("--samples", type=Path, help=".npz file keeping the generated showers")
    parser.add_argument("--report", type=Path, help="folder for the model's evaluate report")
    args = parser.parse_args()
    report = fidelity(
        args.model,
        args.reference,
        args.n,
        seed=args.seed,
        diagnostics=not args.no_diagnostics,
        settings=SamplerSettings(args.sampler, args.sampler_steps),
        samples=args.samples,
        report=args.report,
    )
    print(report.text)
    if args.results:
        command = " ".join(["python", "benchmarks/fidelity.py", *sys.argv[1:]])
        args.results.write_text(f"Command: `{command}`\n\n{report.text}")
        print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
