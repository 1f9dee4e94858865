"""Sampling speed of a caloforge model against Geant4, side by side in one run.

CPU ms per shower of the model's sampler (default: 32-step stochastic Heun, 63 network
evaluations) at batch sizes 1, 64 and 256, and of Geant4 (caloforge's scored simulation of
par04-siw, one process) for photons of 10 and 100 GeV at theta = pi/2; the speed-up is
Geant4 / model at the same energy. Model and Geant4 alternate, and each number is the
minimum over ``--repeats`` runs, so slow phases of a shared machine do not favour either.

    python benchmarks/sampling_speed.py [--model default [runs/factorized ...]] [--repeats 2]
        [--out benchmarks/results/sampling_speed.md]

Several ``--model`` are timed side by side, in turn within each repeat.

The model's cost does not depend on the energy (same network, same steps); Geant4's grows
linearly with it.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from caloforge.data.specs import PrimarySpec, ValueSpec, draw_conditions
from caloforge.fastsim import load_model, shower_seeds
from caloforge.geometry.detectors import load_detector
from caloforge.simulate.materials import detector_mesh
from caloforge.simulate.process import run_in_geant4_process

BATCHES = {1: 4, 64: 64, 256: 256}  # batch size: showers timed
G4_SHOWERS = {10.0: 10, 100.0: 2}  # GeV: showers timed


def _model_ms(model_dir: str, batch: int, n: int, energy_gev: float) -> float:
    model = load_model(model_dir)
    detector = next(iter(model.detectors))
    energies = np.full(n, energy_gev * 1e3)
    theta, phi = np.full(n, math.pi / 2), np.zeros(n)
    model.generate(energies[:1], theta[:1], phi[:1], detector, [0], batch_size=1)  # warm-up
    start = time.perf_counter()
    model.generate(energies, theta, phi, detector, shower_seeds(1, range(n)), batch_size=batch)
    return 1000 * (time.perf_counter() - start) / n


def _geant4_ms() -> dict[float, float]:
    from caloforge.simulate.application import ShowerSimulator

    spec = load_detector("par04-siw")
    mesh, _ = detector_mesh(spec)
    sim = ShowerSimulator(spec, mesh, "gamma")
    out = {}
    for energy, n in G4_SHOWERS.items():
        primary = PrimarySpec(
            "gamma",
            ValueSpec("fixed", energy, energy),
            ValueSpec("fixed", math.pi / 2, math.pi / 2),
            ValueSpec("uniform", 0, 2 * math.pi),
        )
        conditions = draw_conditions(primary, 7, range(n + 1))
        sim.simulate(conditions[:1])
        start = time.perf_counter()
        sim.simulate(conditions[1:])
        out[energy] = 1000 * (time.perf_counter() - start) / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["default"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/sampling_speed.md")
    args = parser.parse_args()
    model_ms: dict[tuple[str, int], float] = {}
    g4_ms: dict[float, float] = {}
    for _ in range(args.repeats):
        for energy, value in run_in_geant4_process(_geant4_ms).items():
            g4_ms[energy] = min(value, g4_ms.get(energy, math.inf))
        for name in args.model:
            for batch, n in BATCHES.items():
                value = _model_ms(name, batch, n, 50.0)
                model_ms[name, batch] = min(value, model_ms.get((name, batch), math.inf))
    lines = [
        "# Sampling speed: model vs Geant4 (wall ms per shower, this machine)",
        "",
        (
            f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); minimum of {args.repeats} alternating runs. "
            f"Reproduce: `python benchmarks/sampling_speed.py --model {' '.join(args.model)}`."
        ),
        "",
        "| model | batch | model ms/shower | Geant4 10 GeV | speed-up | Geant4 100 GeV | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, batch), ms in model_ms.items():
        lines.append(
            f"| {name} | {batch} | {ms:.1f} | {g4_ms[10.0]:.1f} | {g4_ms[10.0] / ms:.2f} | "
            f"{g4_ms[100.0]:.0f} | {g4_ms[100.0] / ms:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
