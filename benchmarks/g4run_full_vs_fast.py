"""Full against fast simulation inside Geant4 runs (issue 19): the same events, the same
geometry, the detector's own readout, CPU time per event measured in each run.

Scenarios (``--scenarios``):

- ``gamma10``, ``gamma100``: single photons of 10 and 100 GeV at normal incidence (theta =
  pi/2, phi uniform), no material in front: the fast run must agree with what ``evaluate``
  measures for the model.
- ``pi0``: pi0 of 20-60 GeV (theta 1.2-1.9, phi uniform) decaying into two photons, behind
  0.05 X0 of silicon: several particles per event, some converted in front.
- ``cone``: 3 photons of 5-50 GeV (log-uniform) within 0.05 rad, behind 0.05 X0 of silicon.

Every scenario runs ``caloforge g4run`` with ``--fast none`` and with the model in each arm of
``--arms`` (same seed, so the same primaries and Geant4 histories up to the handover):
``torch`` (PyTorch, one batch per event), ``torch-b25`` (``--batch-events 25``) and ``onnx``
(ONNX Runtime on the model's ``caloforge export --onnx``), then writes
``OUT/SCENARIO[-ARM]/index.html`` (``caloforge.evaluate.runs``) and the summary table.

    python benchmarks/g4run_full_vs_fast.py --model default [--sampler cd --sampler-steps 1]
        [--events 200] [--scenarios gamma10,gamma100,pi0,cone] [--arms torch,torch-b25,onnx]
        [--runs runs/g4run] [--out benchmarks/results/g4run]

The run files are kept in ``--runs`` (resumable: an existing run is not simulated again, so
a ``--runs`` folder holds the runs of one setting: give another folder for other ``--model``,
sampler, ``--events``, ``--seed`` or ``--detector``).
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


def backends_alike(model: str, sampler: list[str], onnx: Path, detector: str, n: int = 2000) -> list[str]:  # fmt: skip
    """Table lines: the mean and width of the shower energy of PyTorch and ONNX Runtime for
    ``n`` photons of 10 and 100 GeV at normal incidence, straight from the model (no Geant4),
    each with its own noise: do the two backends draw the same distribution? Both go through
    ``g4run``'s own :class:`FastSimulation`; ONNX Runtime draws one shower per call, as in the
    runs (one photon per event), PyTorch one batch (its showers do not depend on the batch:
    tests/fastsim/test_g4run.py)."""
    import numpy as np

    from caloforge.fastsim.g4run import FastSimulation
    from caloforge.fastsim.model import SamplerSettings, shower_seeds
    from caloforge.geometry.detectors import load_detector
    from caloforge.simulate.events import Handover

    flags = dict(zip(sampler[::2], sampler[1::2], strict=True))
    steps = flags.get("--sampler-steps")
    spec = load_detector(detector)
    torch_fast = FastSimulation(model, spec, SamplerSettings(flags.get("--sampler"), int(steps) if steps else None))  # fmt: skip
    onnx_fast = FastSimulation(str(onnx), spec)
    phi = np.random.default_rng(0).uniform(0, 2 * np.pi, n)
    lines = ["| E (GeV) | backend | mean shower energy (MeV) | relative width |", "|---|---|---|---|"]  # fmt: skip
    for e_gev in (10.0, 100.0):
        photons = [Handover(0, i, "gamma", e_gev * 1e3, (0.0, 0.0, 0.0), (np.cos(p), np.sin(p), 0.0)) for i, p in enumerate(phi)]  # fmt: skip
        onnx_seeds = shower_seeds(8, range(n))
        sums = {
            "torch": torch_fast.showers(photons, shower_seeds(7, range(n))).sum(1),
            "onnx": np.array([onnx_fast.showers([h], [s]).sum() for h, s in zip(photons, onnx_seeds, strict=True)]),
        }  # fmt: skip
        for name, x in sums.items():
            lines.append(f"| {e_gev:g} | {name} | {x.mean():.1f} ± {x.std() / np.sqrt(n):.1f} | {x.std() / x.mean():.2%} |")  # fmt: skip
    return lines


ARMS = {  # how the fast run draws its showers
    "torch": [],  # PyTorch, one batch per event (a framework's event loop)
    "torch-b25": ["--batch-events", "25"],  # PyTorch, one batch per 25 events
    "onnx": [],  # ONNX Runtime (the model's export), one batch per event
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
    parser.add_argument("--arms", default=",".join(ARMS), help=f"among {', '.join(ARMS)}")
    parser.add_argument("--runs", type=Path, default=Path("runs/g4run"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/g4run"))
    args = parser.parse_args()
    sampler = [*(["--sampler", args.sampler] if args.sampler else []),
               *(["--sampler-steps", str(args.sampler_steps)] if args.sampler_steps else [])]  # fmt: skip
    arms = args.arms.split(",")
    runs_dir = ROOT / args.runs
    runs_dir.mkdir(parents=True, exist_ok=True)
    onnx = runs_dir / "model.onnx"
    if "onnx" in arms and not onnx.exists():
        cmd = ["export", "--onnx", args.model, *sampler, "--out", str(onnx)]
        subprocess.run([sys.executable, "-m", "caloforge", *cmd], cwd=ROOT, check=True)

    def g4run(name: str, mode: str, fast: str, extra: list[str]):  # type: ignore[no-untyped-def]
        path = runs_dir / f"{name}-{mode}.h5"
        if not path.exists():
            cmd = ["g4run", "--detector", args.detector, "--fast", fast, *SCENARIOS[name],
                   "--events", str(args.events), "--seed", str(args.seed), "--no-progress",
                   "--out", str(path), *extra]  # fmt: skip
            subprocess.run([sys.executable, "-m", "caloforge", *cmd], cwd=ROOT, check=True)
        return read_run(path)

    rows = []
    for name in args.scenarios.split(","):
        full = g4run(name, "full", "none", [])
        for arm in arms:
            fast = g4run(name, arm, str(onnx), ARMS[arm]) if arm == "onnx" else g4run(name, arm, args.model, [*sampler, *ARMS[arm]])  # fmt: skip
            page = name if arm == arms[0] else f"{name}-{arm}"
            r = write_run_report(full, fast, ROOT / args.out / page, f"{name}: full vs fast ({arm})")  # fmt: skip
            rows.append((name, arm, page, r))
            print(name, arm, r, flush=True)
    flags = "".join(f" {a}" for a in sampler)
    lines = [
        "# Full against fast simulation in Geant4 runs (issue 19)",
        "",
        (
            f"`python benchmarks/g4run_full_vs_fast.py --model {args.model}{flags} --events "
            f"{args.events} --scenarios {args.scenarios} --arms {args.arms}`; detector "
            f"{args.detector}; the same events (seed) in every run; CPU time per event measured "
            "in each run, on this machine. The error of fast / full is that of the mean of the "
            "per-event differences (the same events in both runs). Arms: `torch` PyTorch, one "
            "batch per event; `torch-b25` one batch per 25 events; `onnx` ONNX Runtime (the "
            "model's export), one batch per event."
        ),
        "",
        (
            "| scenario | fast arm | events | handed over / event | E sum full (GeV) | fast / full - 1 | "
            "resolution full / fast | worst layer | CPU ms/event full / fast | speed-up |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, arm, page, r in rows:
        lines.append(
            f"| [{name}]({page}/index.html) | {arm} | {r.events} | {r.handovers_per_event:.2f} | "
            f"{r.mean_full / 1e3:.3f} | {r.mean_ratio:+.2%} ± {r.mean_ratio_error:.2%} | "
            f"{r.resolution_full:.2%} / {r.resolution_fast:.2%} | {r.profile_worst:.1%} | "
            f"{r.seconds_full * 1e3:.1f} / {r.seconds_fast * 1e3:.1f} | {r.speedup:.1f}x |"
        )
    if "onnx" in arms:
        lines += [
            "",
            (
                "PyTorch and ONNX Runtime draw their noise in different streams. Straight from the "
                "model (no Geant4), 2000 photons at normal incidence each (ONNX Runtime one "
                "shower per call, as in the runs):"
            ),
            "",
            *backends_alike(args.model, sampler, onnx, args.detector),
        ]
    out = ROOT / args.out
    (out / "README.md").write_text("\n".join(lines) + "\n")
    summary = {f"{n}/{a}": r.to_dict() for n, a, _, r in rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
