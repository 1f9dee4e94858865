"""The energy model alone: its layer energies on Geant4's shapes, against held-out Geant4.

A factorised model's layer and total energies are its energy model's, whatever the shape model
does, and the shape model learns from Geant4's layer energies: the energy model can be chosen
(and retrained, ``caloforge train --part energy``) on its own. Each model here draws the layer
energies of half A of the held-out set (``FastSimModel.generate_layers``), A's Geant4 showers
are rescaled layer by layer to them (a layer empty in A borrows the shape of that layer from
A's shower of nearest incident energy that has it), and the result is compared with half B by
``caloforge.evaluate.compare`` (the defaults of ``caloforge evaluate``), beside Geant4 A vs B.
Sampling the energy model costs seconds, so variants are cheap to compare.

    python benchmarks/energy_model.py --models runs/energy/a runs/energy/b \\
        [--reference data/siw-test.h5] [-n 4000] [--sampler-steps 32 64] \\
        [--results benchmarks/results/energy_model.md] [--quick]

A model folder may hold only a trained energy model (``caloforge train --part energy``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fidelity import _like, _read, _split, acceptance

from caloforge.config import ClassifierConfig, EvaluationConfig
from caloforge.data.contract import voxel_threshold
from caloforge.data.factorized import rescale_layers
from caloforge.evaluate import Comparison, compare
from caloforge.fastsim import load_model, shower_seeds
from caloforge.fastsim.model import SamplerSettings


def _row(name: str, steps: int, result: Comparison, checks: list, seconds: float | None) -> str:  # type: ignore[type-arg]
    def fmt(value: object) -> str:
        return "-" if value is None else value.format()  # type: ignore[attr-defined]

    kept = [c for c in checks if "radial" not in c.name and "AUC" not in c.name]
    failed = [f"{c.name}: {c.value}" for c in kept if not c.ok]
    cells = [name, str(steps), fmt(result.auc_low), fmt(result.auc_high), fmt(result.fpd)]
    cells += [
        f"{len(kept) - len(failed)}/{len(kept)}",
        "; ".join(failed) or "-",
        "-" if seconds is None else f"{seconds:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="factorised model/run folders")
    parser.add_argument("--reference", nargs="+", default=["data/siw-test.h5"])
    parser.add_argument("-n", type=int, default=4000, help="held-out showers used (A + B)")
    parser.add_argument("--sampler-steps", type=int, nargs="+", default=[None])
    parser.add_argument("--seed", type=int, default=1, help="sampler seed")
    parser.add_argument("--results", type=Path, help="Markdown file for the table")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="no voxel classifier, one high-level classifier of 10 epochs (minutes, not 40)",
    )
    args = parser.parse_args()

    data = _read(args.reference, args.n)
    a, b = _split(data, min(args.n, len(data)))
    first = load_model(args.models[0])
    threshold, _ = voxel_threshold(first.record.calibrated)
    for part in (a, b):
        part.showers[part.showers < threshold] = 0.0  # as the evaluation will
    mesh = first.preprocessing.mesh_shape
    detector = str(data.attrs["detector_name"])
    config = EvaluationConfig()
    if args.quick:  # the checks need no classifier; its AUC is then a rough one
        config = EvaluationConfig(
            low_level=False, classifier=ClassifierConfig(epochs=10, repeats=1)
        )
    seeds = shower_seeds(args.seed, range(len(a)))

    steps_flag = "" if args.sampler_steps == [None] else f" --sampler-steps {' '.join(map(str, args.sampler_steps))}"  # fmt: skip
    header = "| energy model | sampler steps | AUC low | AUC high | FPD | checks passed | failed | sampling s |"  # fmt: skip
    lines = [
        f"# Energy models on Geant4's shapes ({len(a)} vs {len(b)} held-out showers)",
        "",
        (
            f"Command: `python benchmarks/energy_model.py --models {' '.join(args.models)} "
            f"--reference {' '.join(args.reference)} -n {args.n}{steps_flag}"
            f"{' --quick' if args.quick else ''}`. Each model's "
            "layer energies for half A's conditions, A's Geant4 showers rescaled to them, "
            "compared with half B. Checks: issue 14's (E_tot/E_inc mean and width, "
            "longitudinal profile per decade, separation power of E_ratio and layer energies, "
            "FPD), radial ones left out (the shapes are Geant4's). FPD x 10^3."
        ),
        "",
        header,
        "|---|---|---|---|---|---|---|---|",
    ]
    floor = compare(b, a, config)
    lines.append(_row("Geant4 A (the floor)", 0, floor, acceptance(a, a, floor, mesh), None))
    print(lines[-1], flush=True)
    found = {}
    for folder in args.models:
        model = load_model(folder)
        for steps in args.sampler_steps:
            start = time.perf_counter()
            layers = model.generate_layers(a.energies, a.theta, a.phi, detector, seeds, steps=steps)  # type: ignore[arg-type]  # fmt: skip
            seconds = time.perf_counter() - start
            hybrid = _like(a, rescale_layers(a.showers, mesh, layers, a.energies))
            result = compare(b, hybrid, config)
            n_steps = SamplerSettings(steps=steps).resolve(model)[1]
            lines.append(_row(folder, n_steps, result, acceptance(a, hybrid, result, mesh), seconds))  # fmt: skip
            print(lines[-1], flush=True)
            found[f"{folder}@{n_steps}"] = {
                "auc_low": result.auc_low and result.auc_low.value,
                "auc_high": result.auc_high and result.auc_high.value,
                "fpd": result.fpd and result.fpd.value,
            }
    text = "\n".join([*lines, ""])
    print(text)
    if args.results:
        args.results.write_text(text)
        args.results.with_suffix(".json").write_text(json.dumps(found, indent=1))
        print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
