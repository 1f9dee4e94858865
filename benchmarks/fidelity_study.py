"""Equal-budget study of shower models (issue 14): same data, same CPU time, same held-out set.

Arms (``--arms``, comma-separated):

- ``control``: today's model, one CaloDiT of the whole shower (configs/calodit-cpu.yaml);
- ``factorized-343``: energy model + shape model with today's 3x4x3 patches;
- ``factorized-layers``: energy model + shape model with one radial bin per token
  (configs/factorized-cpu.yaml: calodit-layers, 3x16x1, position-aware final layer);
- ``factorized-layers-nopos``: the same without the position-aware final layer;
- ``factorized-layers-occupancy``: factorized-layers with occupancy codes (an occupancy bit
  beside each layer energy and each voxel fraction, ``caloforge.data.factorized``), the
  default since this arm; the other factorised arms are run without them;
- ``factorized-log-energy``: factorized-layers-occupancy with the log of each occupied voxel's
  energy in the shape code instead of the logit of its fraction (``voxel_values=log-energy``);
- ``factorized-by-layer``: factorized-layers-occupancy with the logit standardised about a
  line in the log of its layer's energy (``voxel_values=fraction-by-layer``).

The last two train the energy model on the conditional code (``energy.conditional``, the
config's since the default shipped with it); the arms recorded before are run with the
global code, as they were.

Each arm gets the same compute: ``--minutes`` of this machine's time, its energy model's
training included. The time of one training step of each arm's networks is measured first,
side by side (alternating, median of 3 rounds of 5 steps, batch as configured), so the budget
does not depend on what else ran while an arm trained; the arm then trains for the steps that
fill its budget. Then ``benchmarks/fidelity.py`` evaluates every arm on the same held-out
showers. Every stage resumes: run the same command again after an interruption.

    python benchmarks/fidelity_study.py [--minutes 40] [--arms control,factorized-layers]
        [--data data/siw-train-a.h5 ...] [--reference data/siw-test.h5] [-n 10000]
        [--runs runs/fidelity-study] [--results benchmarks/results/fidelity_study.md]

The step times are recorded with the results (and in ``RUNS/step_seconds.json``, so that a
resumed study keeps the budgets it started with); the wall time each arm took is recorded too.
An evaluated arm keeps its tables in ``RUNS/ARM/fidelity-N.json`` and is not sampled again.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from fidelity import fidelity  # benchmarks/fidelity.py

ROOT = Path(__file__).resolve().parents[1]
# the arms recorded before the conditional energy code became the config's (factorized-cpu.yaml)
GLOBAL = ["--set", "energy.conditional=false"]
CLASSIC = ["--set", "occupancy=false", *GLOBAL]  # the codes before the occupancy bits
ARMS = {
    "control": ["--config", "configs/calodit-cpu.yaml"],
    "factorized-343": [
        "--config",
        "configs/factorized-cpu.yaml",
        "--preset",
        "calodit-cpu",
        *CLASSIC,
    ],
    "factorized-layers": ["--config", "configs/factorized-cpu.yaml", *CLASSIC],
    "factorized-layers-nopos": [
        "--config",
        "configs/factorized-cpu.yaml",
        "--set",
        "model.final_position=false",
        *CLASSIC,
    ],
    "factorized-layers-occupancy": ["--config", "configs/factorized-cpu.yaml", *GLOBAL],
    "factorized-log-energy": [
        "--config",
        "configs/factorized-cpu.yaml",
        "--set",
        "voxel_values=log-energy",
    ],
    "factorized-by-layer": [
        "--config",
        "configs/factorized-cpu.yaml",
        "--set",
        "voxel_values=fraction-by-layer",
    ],
}
PROBE_STEPS = 100  # the least any network trains


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


def _step_seconds(arms: list[str], rounds: int = 3, steps: int = 5) -> dict[str, dict[str, float]]:
    """Seconds per training step of each arm's networks, timed side by side on random data of
    the 45 x 16 x 9 mesh (the cost does not depend on the values)."""
    import statistics

    import torch

    from caloforge.config import RunConfig, load_config
    from caloforge.diffusion.loss import EDMLoss
    from caloforge.diffusion.precond import EDMPrecond
    from caloforge.models.registry import build_model
    from caloforge.train.loop import make_optimizer

    mesh, n_cond = (45, 16, 9), 7
    nets = {}
    for name in arms:
        args = ARMS[name]
        overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        if "--preset" in args:
            overrides.append(f"preset={args[args.index('--preset') + 1]}")
        config = load_config(RunConfig, ROOT / args[1], overrides)
        factorized = config.family == "factorized"
        codes = 2 if factorized and config.occupancy else 1  # values per voxel and layer
        shape = {"mesh_shape": mesh, "n_cond": n_cond + (45 if factorized else 0)}
        if factorized:
            shape["channels"] = codes
        nets[name, "voxels"] = (build_model(config.preset, **shape, **config.model), config.train)
        if factorized:
            energy = build_model(config.energy.preset, dim=45 * codes, n_cond=n_cond, **config.energy.model)  # fmt: skip
            nets[name, "energy"] = (energy, config.energy.train)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in nets}
    for _ in range(rounds):
        for key, (backbone, train) in nets.items():
            net = EDMPrecond(backbone, sigma_data=1.0)
            opt = make_optimizer(net, train)
            loss_fn = EDMLoss(sigma_data=1.0)
            dims = (int(backbone.config.dim),) if key[1] == "energy" else (int(backbone.config.channels), *mesh)  # type: ignore[union-attr,arg-type]  # fmt: skip
            x = torch.randn(train.batch_size, *dims)
            cond = torch.randn(train.batch_size, int(backbone.config.n_cond))  # type: ignore[union-attr,arg-type]
            start = time.perf_counter()
            for _ in range(steps):
                loss = loss_fn(net, x, cond).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            times[key].append((time.perf_counter() - start) / steps)
    out: dict[str, dict[str, float]] = {name: {} for name in arms}
    for (name, part), values in times.items():
        out[name][part] = statistics.median(values)
    return out


def train_arm(
    name: str, run: Path, data: list[str], minutes: float, seconds: dict[str, float]
) -> dict[str, float]:
    """Train one arm for its budget of compute; returns its steps and wall minutes."""
    base = ["train", *ARMS[name], "--data", *data, "--out", run, "--no-progress"]
    factorized = "energy" in seconds
    energy_steps = 0
    if factorized:  # the energy model's schedule, as configured (a no-op once done)
        resume = ["--resume"] if (run / "config.yaml").exists() else []
        _caloforge(*base, *resume, "--part", "energy", "--steps", PROBE_STEPS)
        energy_steps = _progress(run / "energy" / "metrics.csv")[0]
    budget = minutes * 60 - energy_steps * seconds.get("energy", 0.0)
    steps = max(PROBE_STEPS, round(budget / seconds["voxels"]))
    voxel_dir = run / "shape" if factorized else run
    resume = ["--resume"] if (run / "config.yaml").exists() else []
    part = ["--part", "shape"] if factorized else []
    if _progress(voxel_dir / "metrics.csv")[0] < steps:
        _caloforge(*base, *resume, *part, "--steps", steps)
    done, wall = _progress(voxel_dir / "metrics.csv")
    energy_wall = _progress(run / "energy" / "metrics.csv")[1] if factorized else 0.0
    return {"steps": done, "minutes": (wall + energy_wall) / 60}


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
    timing = ROOT / args.runs / "step_seconds.json"  # measured once: a resumed study keeps it
    known = json.loads(timing.read_text()) if timing.exists() else {}
    missing = [name for name in arms if name not in known]
    if missing:
        known |= _step_seconds(missing)
        timing.parent.mkdir(parents=True, exist_ok=True)
        timing.write_text(json.dumps(known, indent=1))
    seconds = {name: known[name] for name in arms}
    print(f"seconds per training step: {seconds}", flush=True)
    rows, sections = [], []
    for name in arms:
        run = ROOT / args.runs / name
        budget = train_arm(name, run, args.data, args.minutes, seconds[name])
        done = run / f"fidelity-{args.n}.json"  # an evaluated arm is not sampled again
        if done.exists():
            rows.append(json.loads(done.read_text())["row"])
            sections.append(json.loads(done.read_text())["text"])
            print(rows[-1], flush=True)
            continue
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
        done.write_text(json.dumps({"row": rows[-1], "text": report.text}))
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
                "shape model alone, given Geant4's layer energies. Seconds per training step, "
                f"timed side by side: {seconds}; 'minutes' is the wall time each arm took."
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
