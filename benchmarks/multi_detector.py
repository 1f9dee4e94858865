"""Does training on a second detector hurt par04-siw quality? Same budget, two runs.

Trains ``calodit-cpu`` twice with the same number of steps (the budget): once on par04-siw
alone, once on par04-siw + par04-scipb, then samples each model at the conditions of the
held-out par04-siw showers and evaluates both against them with ``caloforge evaluate``.

    python benchmarks/multi_detector.py [--steps 1200] [--n-test 2000]
        [--set KEY=VALUE ...] [--runs DIR] [--arms siw-only ...] [--results FILE]

(~0.75-0.9 s per step on this machine: 1,200 steps ~ 15-18 minutes per run; sampling 2,000
showers with the 32-step sampler ~ 10 minutes per run.) Needs the datasets of
``scripts/make-datasets.sh``; runs go to ``runs/multi-detector/``, results to
``benchmarks/results/multi_detector.md``. Both runs resume if killed: run the script again.
``--set`` changes the configuration of both arms (e.g. ``model.patch_size=[9,4,1]``), with
``--runs`` and ``--results`` keeping such a variant apart from the default.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from caloforge.evaluate.metrics import format_value

ROOT = Path(__file__).resolve().parents[1]
SIW = ["data/siw-train-a.h5", "data/siw-train-b.h5"]
RUNS = {"siw-only": SIW, "siw+scipb": [*SIW, "data/scipb.h5"]}


def _caloforge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "caloforge", *args], cwd=ROOT, check=True)


def _train_minutes(metrics_csv: Path) -> float:
    """Training wall time summed over the run's sessions (``elapsed_s`` restarts on resume)."""
    total = previous = 0.0
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            elapsed = float(row["elapsed_s"])
            if elapsed < previous:
                total += previous
            previous = elapsed
    return (total + previous) / 60


def _row(name: str, steps: str, minutes: str, m: dict[str, Any]) -> str:
    return (
        f"| {name} | {steps} | {minutes} | {format_value(m['auc_low'])} | "
        f"{format_value(m['auc_high'])} | {format_value(m['fpd'], 1e3)} | "
        f"{format_value(m['kpd'], 1e3)} | {m['separation_power']['e_ratio']:.4f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--set", action="append", default=[], help="config override, both arms")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "multi-detector")
    parser.add_argument("--arms", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument(
        "--results", type=Path, default=ROOT / "benchmarks" / "results" / "multi_detector.md"
    )
    args = parser.parse_args()
    out = args.runs.resolve()  # the subprocesses run in ROOT
    overrides = [f"--set={o}" for o in args.set]
    rows = []
    for name in args.arms:
        data = RUNS[name]
        run = out / name
        resume = ["--resume"] if (run / "config.yaml").exists() else []
        _caloforge(
            "train",
            "--config",
            "configs/calodit-cpu.yaml",
            "--out",
            str(run),
            "--data",
            *data,
            "--steps",
            str(args.steps),
            "--no-progress",
            *overrides,
            *resume,
        )
        generated = run / "siw-test-generated.h5"
        _caloforge(
            "sample",
            "--model",
            str(run),
            "--detector",
            "par04-siw",
            "--energy",
            "log:1:100",
            "--theta",
            "0.87:2.27",
            "--phi",
            "0:6.2832",
            "-n",
            str(args.n_test),
            "--seed",
            "2",
            "--out",
            str(generated),
            "--overwrite",
            "--no-progress",
        )
        report = run / "report"
        _caloforge(
            "evaluate",
            "--reference",
            "data/siw-test.h5",
            "--generated",
            str(generated),
            "--out",
            str(report),
            "--limit",
            str(args.n_test),
            "--overwrite",
            "--no-progress",
        )
        m = json.loads((report / "metrics.json").read_text())
        rows.append(_row(name, str(args.steps), f"{_train_minutes(run / 'metrics.csv'):.0f}", m))
        baseline = m["baseline"]
    rows.append(_row("Geant4 vs Geant4 (baseline)", "-", "-", baseline))
    changed = f" with {', '.join(args.set)}" if args.set else ""
    command = " ".join(["python benchmarks/multi_detector.py", *map(shlex.quote, sys.argv[1:])])
    text = "\n".join(
        [
            "# One detector or two: par04-siw quality at the same training budget",
            "",
            (
                f"configs/calodit-cpu.yaml{changed}, {args.steps} steps each; evaluated on "
                f"{args.n_test} held-out Geant4 par04-siw showers (seed 2) against as many sampled "
                f"at the same conditions. Reproduce: `{command}`."
            ),
            "",
            (
                "| training data | steps | minutes | AUC low | AUC high | FPD x 10^3 | KPD x 10^3 | "
                "S(E_ratio) |"
            ),
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    args.results.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
