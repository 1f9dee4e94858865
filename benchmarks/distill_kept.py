"""The students of a distillation run's kept checkpoints, judged on the same held-out showers.

A consistency student's validation loss is a poor guide to its showers (the target it is pulled
towards moves): a run distilled with ``--set train.keep_every=K`` keeps a checkpoint every
``K`` steps, and this script gives each kept checkpoint's student a model directory of its own
(``RUN/kept-NAME/step-S``, :func:`caloforge.fastsim.distill.student_at`) and judges it with
``benchmarks/fidelity.py`` (the model only, no diagnostics), so the best can be picked (e.g.
for ``scripts/ship_default_model.py --run RUN/kept-NAME/step-S``).

    python benchmarks/distill_kept.py --run RUN [--name cd] [--at 500 1000 ...]
        [--reference data/siw-test.h5 data/siw-test-b.h5] [-n 20000] [--sampler-steps 1 2]
        [--results benchmarks/results/distill_kept_LABEL.md]

Each judgement is kept in ``RUN/kept-NAME/step-S/``: ``fidelity-N-STEPS.json`` (the table's
numbers), ``fidelity-N-STEPS.md`` (``fidelity.py``'s tables), ``report-STEPS/`` (the
``evaluate`` report that ``scripts/ship_default_model.py --evaluation`` takes) and
``samples-STEPS.npz``; a judged student is not judged again:
run the same command again after an interruption, or while the run goes on, to add the newer
checkpoints. The table gives the run's validation loss at each step beside the metrics, and the
Geant4-vs-Geant4 baseline.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from fidelity import fidelity  # benchmarks/fidelity.py

from caloforge.errors import CaloforgeError
from caloforge.fastsim.distill import kept_steps, run_folder, student_at
from caloforge.fastsim.model import SamplerSettings


def _val_losses(run: Path, name: str) -> dict[int, float]:
    path = run_folder(run, name) / "metrics.csv"
    if not path.exists():
        return {}
    with path.open() as f:
        return {int(r["step"]): float(r["val_loss"]) for r in csv.DictReader(f) if r["val_loss"]}


def _judge(model: Path, args: argparse.Namespace, steps: int) -> dict[str, float | None]:
    """The student's metrics at ``steps`` sampling steps (kept in the model directory)."""
    kept = model / f"fidelity-{args.n}-{steps}.json"
    if kept.exists():
        return json.loads(kept.read_text())
    settings = SamplerSettings(args.name, steps)
    found = fidelity(
        str(model), args.reference, args.n, diagnostics=False, settings=settings,
        samples=model / f"samples-{steps}.npz", report=model / f"report-{steps}",
    )  # fmt: skip
    (model / f"fidelity-{args.n}-{steps}.md").write_text(found.text)
    result, base = found.model, found.model.baseline
    radial = [c for c in found.checks if c.name.startswith("radial profile")]
    row: dict[str, float | None] = {
        "auc_low": None if result.auc_low is None else result.auc_low.value,
        "auc_high": None if result.auc_high is None else result.auc_high.value,
        "fpd": None if result.fpd is None else result.fpd.value,
        "fpd_error": None if result.fpd is None else result.fpd.error,
        "kpd": None if result.kpd is None else result.kpd.value,
        "response": found.response,
        "radial_ok": float(all(c.ok for c in radial)),
        "base_auc_high": None if base is None or base.auc_high is None else base.auc_high.value,
        "base_fpd": None if base is None or base.fpd is None else base.fpd.value,
    }
    kept.write_text(json.dumps(row, indent=1))
    return row


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=Path, required=True, help="the model directory distilled into"
    )
    parser.add_argument("--name", default="cd", help="the student (default: cd)")
    parser.add_argument("--at", type=int, nargs="+", help="kept steps to judge (default: all)")
    parser.add_argument("--reference", nargs="+", default=["data/siw-test.h5", "data/siw-test-b.h5"])  # fmt: skip
    parser.add_argument("-n", type=int, default=20_000, help="held-out showers used (A + B)")
    parser.add_argument("--sampler-steps", type=int, nargs="+", default=[1], help="default: 1")
    parser.add_argument("--results", type=Path, help="Markdown file for the table")
    args = parser.parse_args()
    try:
        kept = kept_steps(args.run, args.name)
        chosen = args.at or kept
        missing = sorted(set(chosen) - set(kept))
        if missing:
            raise SystemExit(f"error: no kept checkpoint of steps {missing} (kept: {kept})")
        val = _val_losses(args.run, args.name)
        rows = []
        for step in chosen:
            model = args.run / f"kept-{args.name}" / f"step-{step}"
            if not (model / "model.json").exists():
                student_at(args.run, args.name, step, model)
            for steps in args.sampler_steps:
                row = _judge(model, args, steps)
                rows.append((step, steps, row))
                print(f"step {step}, {steps} sampling step(s): {row}", flush=True)
    except CaloforgeError as exc:
        raise SystemExit(f"error: {exc}") from None
    flags = " ".join(str(s) for s in args.sampler_steps)
    at = f" --at {' '.join(map(str, args.at))}" if args.at else ""
    lines = [
        (
            f"## The kept students {args.name!r} of {args.run}, {args.n // 2} vs {args.n // 2} "
            f"held-out showers ({' '.join(args.reference)})"
        ),
        "",
        (
            f"Command: `python benchmarks/distill_kept.py --run {args.run} --name {args.name}"
            f"{at} -n {args.n} --sampler-steps {flags}`"
        ),
        "",
        (
            "| distillation step | val. loss | sampling steps | AUC low | AUC high | FPD x1e3 "
            "| KPD x1e3 | E_tot/E_inc mean vs G4 | radial profile within 10 % |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for step, steps, row in rows:
        fpd = f"{_fmt(row['fpd'], 1e3, 1)} ± {_fmt(row['fpd_error'], 1e3, 1)}"
        lines.append(
            f"| {step} | {_fmt(val.get(step), digits=4)} | {steps} | {_fmt(row['auc_low'])} | "
            f"{_fmt(row['auc_high'])} | {fpd} | {_fmt(row['kpd'], 1e3, 2)} | "
            f"{_fmt(row['response'], 100, 2)} % | {'yes' if row['radial_ok'] else 'no'} |"
        )
    base = rows[0][2] if rows else None
    if base is not None:
        lines.append(
            f"| Geant4 vs Geant4 | | | | {_fmt(base['base_auc_high'])} | "
            f"{_fmt(base['base_fpd'], 1e3, 1)} | | | |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        args.results.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
