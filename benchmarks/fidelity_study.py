"""Equal-budget study of shower models (issue 14): same data, same CPU time, same held-out set.

Arms (``--arms``, comma-separated):

- ``control``: today's model, one CaloDiT of the whole shower (configs/calodit-cpu.yaml);
- ``factorized-343``: energy model + shape model with today's 3x4x3 patches;
- ``factorized-layers``: energy model + shape model with one radial bin per token
  (configs/factorized-cpu.yaml: calodit-layers, 3x16x1, position-aware final layer);
- ``factorized-layers-nopos``: the same without the position-aware final layer.

Each arm gets ``--minutes`` of wall time on this machine (its energy model's training
included): the voxel network trains 100 steps, its time per step is read from its
``metrics.csv``, and the run is resumed to the number of steps that fills the budget (the
change falls in the warm-up, so the learning-rate schedule is the one of that length). Then
``benchmarks/fidelity.py`` evaluates every arm on the same held-out showers. Every stage resumes:
run the same command again after an interruption.

    python benchmarks/fidelity_study.py [--minutes 40] [--arms control,factorized-layers]
        [--data data/siw-train-a.h5 ...] [--reference data/siw-test.h5] [-n 10000]
        [--runs runs/fidelity-study] [--results benchmarks/results/fidelity_study.md]

Run nothing else on the machine meanwhile: the budget is wall time.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from fidelity import fidelity  # benchmarks/fidelity.py

ROOT = Path(__file__).resolve().parents[1]
ARMS = {
    "control": ["--config", "configs/calodit-cpu.yaml"],
    "factorized-343": ["--config", "configs/factorized-cpu.yaml", "--preset", "calodit-cpu"],
    "factorized-layers": ["--config", "configs/factorized-cpu.yaml"],
    "factorized-layers-nopos": [
        "--config",
        "configs/factorized-cpu.yaml",
        "--set",
        "model.final_position=false",
    ],
}
PROBE_STEPS = 100


def _caloforge(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "caloforge", *map(str, args)], cwd=ROOT, check=True)


def _progress(metrics_csv: Path) -> tuple[int, float]:
    """(last logged step, training seconds summed over the run's sessions)."""
    if not metrics_csv.exists():
        return 0, 0.0
    step, total, previous = 0, 0.0, 0.0
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            elapsed = float(row["elapsed_s"])
            if elapsed < previous:  # a resumed session restarts the clock
                total += previous
            previous, step = elapsed, int(row["step"])
    return step, total + previous


def train_arm(name: str, run: Path, data: list[str], minutes: float) -> dict[str, float]:
    """Train one arm to its budget; returns its steps and minutes."""
    base = ["train", *ARMS[name], "--data", *data, "--out", run, "--no-progress"]
    factorized = name.startswith("factorized")
    voxel_dir = run / "shape" if factorized else run
    energy_s = 0.0

    def resume() -> list[str]:
        return ["--resume"] if (run / "config.yaml").exists() else []

    if factorized:  # the energy model to the end of its schedule (a no-op once done)
        first = [] if resume() else ["--steps", str(PROBE_STEPS)]
        _caloforge(*base, *resume(), "--part", "energy", *first)
        energy_s = _progress(run / "energy" / "metrics.csv")[1]
    part = ["--part", "shape"] if factorized else []
    done, seconds = _progress(voxel_dir / "metrics.csv")
    if done < PROBE_STEPS:
        _caloforge(*base, *resume(), *part, "--steps", PROBE_STEPS)
        done, seconds = _progress(voxel_dir / "metrics.csv")
    steps = max(PROBE_STEPS, round((minutes * 60 - energy_s) / (seconds / done)))
    if done < steps:
        _caloforge(*base, "--resume", *part, "--steps", steps)
    done, seconds = _progress(voxel_dir / "metrics.csv")
    return {"steps": done, "minutes": (seconds + energy_s) / 60, "energy_minutes": energy_s / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=40.0, help="wall time per arm")
    parser.add_argument("--arms", default="control,factorized-343,factorized-layers")
    parser.add_argument("--data", nargs="+", default=["data/siw-train-a.h5"], help="training files")
    parser.add_argument("--reference", default="data/siw-test.h5", help="held-out Geant4")
    parser.add_argument("-n", type=int, default=10_000, help="held-out showers (A + B)")
    parser.add_argument("--runs", type=Path, default=Path("runs/fidelity-study"))
    parser.add_argument(
        "--results", type=Path, default=Path("benchmarks/results/fidelity_study.md")
    )
    args = parser.parse_args()
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    rows, sections = [], []
    for name in arms:
        run = ROOT / args.runs / name
        budget = train_arm(name, run, args.data, args.minutes)
        report = fidelity(str(run), args.reference, args.n)
        m, shapes = report.model, report.diagnostics.get("G4 layers + model shapes")
        base = m.baseline
        failed = [c.name for c in report.checks if not c.ok]
        rows.append(
            f"| {name} | {budget['steps']:.0f} | {budget['minutes']:.0f} | "
            f"{m.auc_low.format() if m.auc_low else '-'} | "
            f"{m.auc_high.format() if m.auc_high else '-'} | "
            f"{m.fpd.format(1e3) if m.fpd else '-'} | "
            f"{base.fpd.format(1e3) if base and base.fpd else '-'} | "
            f"{shapes.auc_high.format() if shapes and shapes.auc_high else '-'} | "
            f"{len(report.checks) - len(failed)}/{len(report.checks)} |"
        )
        sections.append(report.text)
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "# Equal-budget study of shower models (issue 14)",
            "",
            (
                f"Command: `python benchmarks/fidelity_study.py --minutes {args.minutes:g} "
                f"--arms {args.arms} --data {' '.join(args.data)} --reference {args.reference} "
                f"-n {args.n}`. Training data: {', '.join(args.data)}; evaluation: "
                f"{args.n} held-out showers of {args.reference} (seed 2, never trained on), "
                "half A's conditions against half B. FPD x 10^3. 'G4 layers + shapes': the "
                "shape model alone, given Geant4's layer energies."
            ),
            "",
            (
                "| arm | steps | minutes | AUC low | AUC high | FPD | FPD G4 vs G4 | "
                "AUC high, G4 layers + shapes | checks passed |"
            ),
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            *sections,
        ]
    )
    out = ROOT / args.results
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
