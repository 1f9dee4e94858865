"""Full against fast simulation inside Geant4 runs (issue 19): the same events, the same
geometry, the detector's own readout, CPU time per event measured in each run.

Scenarios (``--scenarios``):

- ``gamma10``, ``gamma100``: single photons of 10 and 100 GeV at normal incidence (theta =
  pi/2, phi uniform), no material in front: the fast run must agree with what ``evaluate``
  measures for the model.
- ``pi0``: pi0 of 20-60 GeV (theta 1.2-1.9, phi uniform) decaying into two photons, behind
  0.05 X0 of silicon: several particles per event, some converted in front.
- ``cone``: 3 photons of 5-50 GeV (log-uniform) within 0.05 rad, behind 0.05 X0 of silicon.

Every scenario runs ``caloforge g4run`` with ``--fast none`` and with ``--fast MODEL`` (same
seed, so the same primaries and Geant4 histories up to the handover), then writes
``OUT/SCENARIO/index.html`` (``caloforge.evaluate.runs``) and the summary table.

    python benchmarks/g4run_full_vs_fast.py --model default [--sampler cd --sampler-steps 1]
        [--events 200] [--scenarios gamma10,gamma100,pi0,cone] [--runs runs/g4run]
        [--out benchmarks/results/g4run]

The run files are kept in ``--runs`` (resumable: an existing run is not simulated again).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from caloforge.evaluate.runs import read_run, write_run_report

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "gamma10": ["--gun", "single", "--energy", "10", "--theta", "1.5708", "--phi", "0:6.2832"],
    "gamma100": ["--gun", "single", "--energy", "100", "--theta", "1.5708", "--phi", "0:6.2832"],
    "pi0": [
        "--gun",
        "pi0",
        "--energy",
        "20:60",
        "--theta",
        "1.2:1.9",
        "--phi",
        "0:6.2832",
        "--tracker",
        "0.05",
    ],
    "cone": [
        "--gun",
        "cone:3:0.05",
        "--energy",
        "log:5:50",
        "--theta",
        "1.2:1.9",
        "--phi",
        "0:6.2832",
        "--tracker",
        "0.05",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--sampler")
    parser.add_argument("--sampler-steps", type=int)
    parser.add_argument("--detector", default="par04-siw")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--runs", type=Path, default=Path("runs/g4run"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/g4run"))
    args = parser.parse_args()
    sampler = [*(["--sampler", args.sampler] if args.sampler else []),
               *(["--sampler-steps", str(args.sampler_steps)] if args.sampler_steps else [])]  # fmt: skip
    rows = []
    for name in args.scenarios.split(","):
        runs = {}
        for mode, fast in (("full", "none"), ("fast", args.model)):
            path = ROOT / args.runs / f"{name}-{mode}.h5"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                cmd = ["g4run", "--detector", args.detector, "--fast", fast, *SCENARIOS[name],
                       "--events", str(args.events), "--seed", str(args.seed), "--no-progress",
                       "--out", str(path), *(sampler if mode == "fast" else [])]  # fmt: skip
                subprocess.run([sys.executable, "-m", "caloforge", *cmd], cwd=ROOT, check=True)
            runs[mode] = read_run(path)
        r = write_run_report(runs["full"], runs["fast"], ROOT / args.out / name, f"{name}: full vs fast")  # fmt: skip
        rows.append((name, r))
        print(name, r, flush=True)
    flags = " ".join(sampler)
    lines = [
        "# Full against fast simulation in Geant4 runs (issue 19)",
        "",
        (
            f"`python benchmarks/g4run_full_vs_fast.py --model {args.model} {flags} --events "
            f"{args.events} --scenarios {args.scenarios}`; detector {args.detector}; the same "
            "events (seed) in both runs; CPU time per event measured in each run, on this machine."
        ),
        "",
        (
            "| scenario | events | handed over / event | E sum full (GeV) | fast / full - 1 | "
            "resolution full / fast | worst layer | CPU ms/event full / fast | speed-up |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| [{name}]({name}/index.html) | {r.events} | {r.handovers_per_event:.2f} | "
            f"{r.mean_full / 1e3:.3f} | {r.mean_ratio:+.2%} ± {r.mean_ratio_error:.2%} | "
            f"{r.resolution_full:.2%} / {r.resolution_fast:.2%} | {r.profile_worst:.1%} | "
            f"{r.seconds_full * 1e3:.1f} / {r.seconds_fast * 1e3:.1f} | {r.speedup:.1f}x |"
        )
    out = ROOT / args.out
    (out / "README.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps({n: r.to_dict() for n, r in rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
