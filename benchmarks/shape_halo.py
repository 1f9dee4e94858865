"""The shape model alone, given Geant4's layer energies: its radial halo and its worst features.

For each model (a model or run folder, optionally ``RUN@STEP``: the shape network's EMA weights
of that kept checkpoint; and optionally ``~steps=N,S_churn=X,...``: the sampler's steps and the
stochastic sampler's settings instead of the model's own), the shape model shares out the layer energies of the first ``-n``
held-out Geant4 showers (half A of ``2 n``); the table compares it with A per radial bin (the
share of voxels holding energy, the mean energy profile) and the energy of the hits in the
outer bins (r >= 6), the sum of each layer's fractions as the shape network drew them (before
:meth:`FractionTransform.decode` rescales them to add up to 1: a sum far from 1 scales every
hit of its layer; quantiles weighted by the layer's energy), the hit energies beyond the
first radial bins by the energy of their layer, and lists the high-level features whose histograms separate it most from
half B (separation power), beside A's own against B.

    python benchmarks/shape_halo.py --models runs/fidelity-study/factorized-layers-occupancy \\
        runs/default@2500 default~steps=64 default~S_churn=5 [-n 300] [--reference data/siw-test.h5]
        [--out benchmarks/results/shape_halo.md]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from unittest import mock

import numpy as np
from fidelity import _read, _split  # benchmarks/fidelity.py
from safetensors.torch import load_file

from caloforge.data.contract import voxel_threshold
from caloforge.data.factorized import FractionTransform, layer_energies
from caloforge.evaluate.features import compute_features
from caloforge.evaluate.metrics import histogram, histogram_edges, separation_power
from caloforge.fastsim import FastSimModel, load_model, shower_seeds
from caloforge.fastsim.model import SamplerSettings

OUTER = 6  # the first radial bin of the halo


def _sampler(spec: str) -> SamplerSettings:
    """The sampler of ``MODEL~steps=N,S_churn=X,...`` (the model's own without ``~``)."""
    _, _, options = spec.partition("~")
    values = dict(item.split("=", 1) for item in options.split(",") if item)
    steps = values.pop("steps", None)
    churn = {k: float(v) for k, v in values.items()}
    return SamplerSettings(sampler="heun-stochastic" if churn else None, steps=int(steps) if steps else None, churn=churn)  # fmt: skip


def _model(spec: str) -> FastSimModel:
    """``RUN`` or ``RUN@STEP`` (the shape network's EMA weights of that checkpoint)."""
    where, _, step = spec.partition("~")[0].partition("@")
    model = load_model(where)
    if step:
        net = model.networks["shape"]
        net.load_state_dict(load_file(Path(where) / "shape" / "checkpoints" / f"step-{int(step):07d}" / "ema.safetensors"))  # fmt: skip
        model = model.with_trained("shape", net, int(step))
    return model


def _generate(model: FastSimModel, *args, **kwargs) -> tuple[np.ndarray, np.ndarray | None]:  # type: ignore[no-untyped-def]
    """``model.generate(*args, **kwargs)``, and the sums (N, Z) of each layer's fractions as
    the shape network drew them (:meth:`FractionTransform.drawn_sums`; None without
    occupancy bits), recorded on the way."""
    sums: list[np.ndarray] = []
    decode = FractionTransform.decode

    def record(self: FractionTransform, values: np.ndarray, layers: np.ndarray) -> np.ndarray:
        if self.occupancy:
            sums.append(self.drawn_sums(values, layers))
        return decode(self, values, layers)

    with mock.patch.object(FractionTransform, "decode", record):
        showers = model.generate(*args, **kwargs)
    return showers, np.concatenate(sums) if sums else None


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: list[float]) -> np.ndarray:
    order = np.argsort(values, axis=None)
    cum = np.cumsum(weights.ravel()[order])
    return values.ravel()[order][np.searchsorted(cum, np.asarray(q) * cum[-1])]


LAYER_BINS = (0.0, 3.0, 10.0, 30.0, 100.0, np.inf)  # MeV: layer energies of the hit table
HIT_FROM = 3  # the first radial bin of the hit table


def _hits_by_layer(showers: np.ndarray, layers: np.ndarray, mesh: tuple[int, int, int]) -> list[str]:  # fmt: skip
    """10/50/90 % quantiles (MeV) of the hit energies in radial bins >= :data:`HIT_FROM`, per
    bin of their layer's energy (:data:`LAYER_BINS`)."""
    x = showers.reshape(len(showers), *mesh)[..., HIT_FROM:]
    of_layer = np.broadcast_to(layers[:, :, None, None], x.shape)
    out = []
    for low, high in itertools.pairwise(LAYER_BINS):
        hits = x[(x > 0) & (of_layer >= low) & (of_layer < high)]
        out.append("-" if len(hits) < 10 else " / ".join(f"{v:.2g}" for v in np.quantile(hits, [0.1, 0.5, 0.9])))  # fmt: skip
    return out


def _named(features) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The evaluation's named features, and the energy of each radial bin (``e_r_<r>``)."""
    return {**features.named(), **{f"e_r_{j}": features.e_r[:, j] for j in range(features.e_r.shape[1])}}  # fmt: skip


def _separations(reference, other, threshold: float) -> list[tuple[float, str]]:  # type: ignore[no-untyped-def]
    """(separation power from ``reference``, feature) of every feature of :func:`_named`."""
    out = []
    got = _named(other)
    for name, ref in _named(reference).items():
        log = name.startswith("e_layer_")
        edges = histogram_edges(ref, log=log, low=threshold if log else None)
        out.append((separation_power(histogram(ref, edges), histogram(got[name], edges)), name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="RUN or RUN@STEP")
    parser.add_argument("--reference", default="data/siw-test.h5")
    parser.add_argument("-n", type=int, default=300, help="showers of half A (and of B)")
    parser.add_argument("--worst", type=int, default=5, help="features listed per model")
    parser.add_argument("--out", type=Path, help="Markdown file for the tables")
    args = parser.parse_args()
    a, b = _split(_read([args.reference], 2 * args.n), 2 * args.n)
    first = _model(args.models[0])
    mesh = first.preprocessing.mesh_shape
    threshold, _ = voxel_threshold(first.record.calibrated)
    for part in (a, b):
        part.showers[part.showers < threshold] = 0.0
    detector = str(a.attrs["detector_name"])
    feats = {name: compute_features(d.showers, d.energies, a.binning, threshold) for name, d in (("A", a), ("B", b))}  # fmt: skip
    base = {k: v for v, k in _separations(feats["B"], feats["A"], threshold)}

    def radial(showers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = showers.reshape(len(showers), *mesh)
        hits = x[..., OUTER:][x[..., OUTER:] > 0]
        return (x > 0).mean(axis=(0, 1, 2)), x.sum(axis=(0, 1, 2)), np.quantile(hits, [0.1, 0.5, 0.9])  # fmt: skip

    g4_share, g4_profile, g4_q = radial(a.showers)
    r = mesh[2]
    head = f"| showers | hits {' '.join(f'r{i}' for i in range(r))} | profile / G4, r1 ... r{r - 1} | outer hits 10/50/90 % | drawn layer sums 10/50/90 % |"  # fmt: skip
    g4_row = f"| Geant4 (A) | {' '.join(f'{100 * v:.2g}' for v in g4_share)} | 1 | {' / '.join(f'{v:.2g}' for v in g4_q)} | 1 |"  # fmt: skip
    layers = layer_energies(a.showers, mesh)
    lines = [
        "# The shape model alone: radial halo and worst features",
        "",
        (
            f"Command: `python benchmarks/shape_halo.py --models {' '.join(args.models)} "
            f"--reference {args.reference} -n {args.n}`. Each model shares out the layer energies "
            f"of {len(a)} held-out Geant4 showers (half A). Hits: voxels holding energy (%), per "
            "radial bin; profile: mean energy per radial bin over A's; outer hits: the 10/50/90 % "
            f"quantiles of the hit energies in radial bins >= {OUTER} (MeV)."
        ),
        "",
        head,
        "|---|---|---|---|---|",
        g4_row,
    ]
    bins = [f"{lo:g}-{hi:g} MeV" for lo, hi in itertools.pairwise(LAYER_BINS)]
    hit_lines = [
        "",
        f"Hit energies (MeV, 10/50/90 %) in radial bins >= {HIT_FROM}, by their layer's energy:",
        "",
        f"| showers | {' | '.join(bins)} |",
        "|---|" + "---|" * len(bins),
        f"| Geant4 (A) | {' | '.join(_hits_by_layer(a.showers, layers, mesh))} |",
    ]
    worst_lines = ["", "Worst features (separation power from half B; A's own in brackets):", ""]
    for spec in args.models:
        model = first if spec == args.models[0] else _model(spec)
        seeds = shower_seeds(1, range(len(a)))
        showers, sums = _generate(model, a.energies, a.theta, a.phi, detector, seeds, settings=_sampler(spec), layers=layers)  # fmt: skip
        share, profile, q = radial(showers)
        ratio = " ".join(f"{v:.2f}" for v in (profile / g4_profile)[1:])
        drawn = "-" if sums is None else " / ".join(f"{v:.2f}" for v in _weighted_quantiles(sums, layers, [0.1, 0.5, 0.9]))  # fmt: skip
        lines.append(f"| {spec} | {' '.join(f'{100 * v:.2g}' for v in share)} | {ratio} | {' / '.join(f'{v:.2g}' for v in q)} | {drawn} |")  # fmt: skip
        hit_lines.append(f"| {spec} | {' | '.join(_hits_by_layer(showers, layers, mesh))} |")
        got = compute_features(showers, a.energies, a.binning, threshold)
        worst = sorted(_separations(feats["B"], got, threshold), reverse=True)[: args.worst]
        worst_lines.append(f"- {spec}: " + ", ".join(f"{name} {v:.2f} ({base[name]:.2f})" for v, name in worst))  # fmt: skip
        print(lines[-1], flush=True)
    text = "\n".join([*lines, *hit_lines, *worst_lines, ""])
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
