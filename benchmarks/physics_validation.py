"""Physics of caloforge's Geant4 showers, per built-in detector.

For photons at normal incidence and random phi: sampling fraction per energy, E_active/E_inc,
mean shower-maximum z-cell, and the fraction of the active energy within one Moliere radius
of the shower axis (from a one-cell mesh of radius R_M).

    python benchmarks/physics_validation.py [--out benchmarks/results/physics_validation.md]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from caloforge.data.specs import PrimarySpec, ValueSpec, draw_conditions
from caloforge.geometry.detectors import builtin_detector_names, load_detector
from caloforge.geometry.mesh import MeshSpec
from caloforge.simulate.calibrate import measure_sampling_fraction
from caloforge.simulate.materials import detector_properties
from caloforge.simulate.process import simulate_showers

ENERGIES = (1.0, 10.0, 100.0)
N = (100, 20, 5)


def _photons(energy: float, n: int, seed: int) -> list:
    half_pi = ValueSpec("fixed", math.pi / 2, math.pi / 2)
    spec = PrimarySpec(
        "gamma", ValueSpec("fixed", energy, energy), half_pi, ValueSpec("uniform", 0, 2 * math.pi)
    )
    return draw_conditions(spec, seed, range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/physics_validation.md")
    args = parser.parse_args()
    ref = detector_properties(load_detector("par04-siw"))
    lines = [
        "# Physics validation",
        "",
        (
            "Command: `python benchmarks/physics_validation.py`. Photons at normal incidence, random "
            f"phi; {N} showers at {ENERGIES} GeV. t_max: mean z-cell of the layer maximum "
            "(one z-cell = 0.806 X0 for every detector; the argmax is coarse where a z-cell holds "
            "a non-integer number of sampling layers). <z>: energy-weighted mean depth along the "
            "axis. Containment: active energy within one Moliere radius of the axis / all active "
            "energy (10 showers of 10 GeV)."
        ),
        "",
        "| detector | E [GeV] | sampling fraction | E_active/E_inc | t_max [z-cells] | <z> [X0] |",
        "|---|---|---|---|---|---|",
    ]
    containment = []
    for name in builtin_detector_names():
        spec = load_detector(name)
        p = detector_properties(spec)
        mesh = MeshSpec.scaled(p.x0_mm, p.moliere_radius_mm, ref.x0_mm, ref.moliere_radius_mm)
        sf = measure_sampling_fraction(spec, ENERGIES, N, seed=21)
        conditions = [
            c
            for i, (e, n) in enumerate(zip(ENERGIES, N, strict=True))
            for c in _photons(e, n, 30 + i)
        ]
        results = simulate_showers(spec, mesh, "gamma", conditions)
        layers = np.stack([r.voxels for r in results]).reshape(-1, *mesh.shape).sum(axis=(2, 3))
        energy = np.array([c.energy_mev for c in conditions]) / 1000
        depth_x0 = (np.arange(mesh.n_z) + 0.5) * mesh.dz_mm / p.x0_mm
        for m in sf:
            sel = layers[energy == m.energy_gev]
            t_max = sel.argmax(axis=1).mean()
            mean_depth = ((sel * depth_x0).sum(axis=1) / sel.sum(axis=1)).mean()
            lines.append(
                f"| {name} | {m.energy_gev:g} | {m.value:.5f} ± {m.error:.5f} | {m.active_over_incident:.4f} | {t_max:.2f} | {mean_depth:.2f} |"
            )
            print(lines[-1], flush=True)
        one_cell = MeshSpec(mesh.n_z, 1, 1, mesh.dz_mm, p.moliere_radius_mm)
        inside = simulate_showers(spec, one_cell, "gamma", _photons(10.0, 10, 40))
        frac = sum(r.voxels.sum() for r in inside) / sum(r.active_mev for r in inside)
        containment.append(f"| {name} | {p.moliere_radius_mm:.2f} mm | {100 * frac:.1f}% |")
    lines += [
        "",
        "| detector | R_M | energy within R_M (10 GeV) |",
        "|---|---|---|",
        *containment,
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(containment))


if __name__ == "__main__":
    main()
