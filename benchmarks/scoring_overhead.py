"""Cost of mesh scoring over bare Geant4, and simulation throughput.

For every built-in detector and photon energies of 1, 10 and 100 GeV (normal incidence,
random phi), the same showers (same seeds) are simulated by bare Geant4 (no sensitive
detector) and with caloforge's scoring, in alternating Geant4 processes of one run, so the
ratio is measured side by side. Then two training specs (the issue's log:1:100 GeV and the
full log:1:1000 GeV) run through `caloforge simulate` on 2 workers for showers/hour.

    python benchmarks/scoring_overhead.py [--repeats 3] [--out benchmarks/results/scoring_overhead.md]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from caloforge.data.specs import PrimarySpec, ValueSpec, draw_conditions
from caloforge.geometry.detectors import builtin_detector_names, load_detector
from caloforge.geometry.mesh import MeshSpec
from caloforge.simulate.materials import detector_properties
from caloforge.simulate.process import run_in_geant4_process

ENERGIES = {1.0: 40, 10.0: 8, 100.0: 2}  # GeV: showers per measurement


def _time(detector, mesh, score: bool) -> dict[float, float]:
    """ms/shower per energy, in one Geant4 process (first shower of each energy is a warm-up)."""
    from caloforge.simulate.application import ShowerSimulator

    sim = ShowerSimulator(detector, mesh, "gamma", score=score)
    out = {}
    for i, (energy, n) in enumerate(ENERGIES.items()):
        spec = PrimarySpec(
            "gamma",
            ValueSpec("fixed", energy, energy),
            ValueSpec("fixed", math.pi / 2, math.pi / 2),
            ValueSpec("uniform", 0, 2 * math.pi),
        )
        conditions = draw_conditions(spec, 100 + i, range(n + 1))
        sim.simulate(conditions[:1])
        start = time.process_time()  # CPU time of this process: robust to other load
        sim.simulate(conditions[1:])
        out[energy] = 1000 * (time.process_time() - start) / n
    return out


def overhead_table(repeats: int) -> list[str]:
    ref = detector_properties(load_detector("par04-siw"))
    lines = [
        "| detector | E [GeV] | bare ms/shower | scored ms/shower | overhead |",
        "|---|---|---|---|---|",
    ]
    for name in builtin_detector_names():
        spec = load_detector(name)
        p = detector_properties(spec)
        mesh = MeshSpec.scaled(p.x0_mm, p.moliere_radius_mm, ref.x0_mm, ref.moliere_radius_mm)
        bare: dict[float, list[float]] = {e: [] for e in ENERGIES}
        scored: dict[float, list[float]] = {e: [] for e in ENERGIES}
        for _ in range(repeats):  # alternate, so drifts of the machine hit both alike
            for e, t in run_in_geant4_process(_time, spec, mesh, False).items():
                bare[e].append(t)
            for e, t in run_in_geant4_process(_time, spec, mesh, True).items():
                scored[e].append(t)
        for e in ENERGIES:
            b, s = min(bare[e]), min(scored[e])
            lines.append(f"| {name} | {e:g} | {b:.1f} | {s:.1f} | {100 * (s / b - 1):+.0f}% |")
            print(lines[-1], flush=True)
    return lines


# The example spec and the full training range of the mission (1 GeV - 1 TeV), with
# enough showers (~40 s each) that the start-up of the workers is a small part.
THROUGHPUT_SPECS = {"log:1:100": 400, "log:1:1000": 60}


def throughput(n: int, energy: str) -> str:
    """Wall-clock showers/hour of `caloforge simulate` on 2 workers (par04-siw, photons)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["caloforge", "simulate", "--detector", "par04-siw", "--particle", "gamma",
               "--energy", energy, "--theta", "0.87:2.27", "--phi", "0:6.2832",
               "-n", str(n), "--seed", "1", "--workers", "2", "--chunk-size", "5",
               "--no-progress", "--out", f"{tmp}/t.h5"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
    line = (
        f"| par04-siw, gamma, energy {energy} GeV, theta 0.87:2.27, phi 0:2pi | {n} | "
        f"{elapsed:.0f} s | {3600 * n / elapsed:,.0f} |"
    )
    print(line, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--throughput-scale",
        type=float,
        default=1.0,
        help="scale the showers of the throughput runs",
    )
    parser.add_argument("--out", default="benchmarks/results/scoring_overhead.md")
    args = parser.parse_args()
    lines = overhead_table(args.repeats)
    tp = [
        "Throughput of `caloforge simulate --workers 2` (wall clock, whole command):",
        "",
        "| spec | showers | time | showers/hour |",
        "|---|---|---|---|",
        *(
            throughput(round(n * args.throughput_scale), spec)
            for spec, n in THROUGHPUT_SPECS.items()
        ),
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "# Scoring overhead and throughput",
        "",
        (
            f"Command: `python benchmarks/scoring_overhead.py --repeats {args.repeats}`; "
            "machine: 2 cores, no other load; minimum "
            "over repeats of the CPU time per shower; photons at normal incidence, random phi."
        ),
        "",
    ]
    out.write_text("\n".join([*header, *lines, "", *tp, ""]))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
