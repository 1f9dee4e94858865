"""Ship a trained run as the package's default model, with its model card.

    python scripts/ship_default_model.py --run runs/default --evaluation runs/report-5k \
        --config configs/factorized-cpu.yaml --results benchmarks/results/fidelity_default_5k.md

Copies ``model.json`` and the weights of the run (and of its students) into
``src/caloforge/models/default/`` and writes ``MODEL_CARD.md`` beside them from the run's
records (data, steps, wall time) and the evaluation report of the model against held-out
Geant4 showers (``caloforge evaluate``'s ``metrics.json``).

A distilled run ships with a student as its default sampler (``--sampler cd``; the
evaluation is then the student's) and the other samplers' reports beside it, on the same
held-out showers (``--beside "heun (32 steps, the teacher)=runs/report-teacher"``): the card
gets a table of all of them, and ``caloforge demo`` prints their lines.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from dataclasses import asdict, replace
from pathlib import Path

from caloforge.evaluate.results import Comparison
from caloforge.fastsim.model import SamplerSettings, copy_model, load_model
from caloforge.fastsim.record import META_FILE, ModelRecord, Quality

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "src" / "caloforge" / "models" / "default"


def _wall_hours(rows: list[dict[str, str]]) -> float:
    """Training wall time: ``elapsed_s`` restarts at each resume, so sum each segment's last."""
    elapsed = [float(r["elapsed_s"]) for r in rows]
    ends = [a for a, b in itertools.pairwise(elapsed) if b < a]
    return (sum(ends) + elapsed[-1]) / 3600


def _comparison(report: Path) -> Comparison:
    return Comparison.from_metrics(json.loads((report / "metrics.json").read_text()))


def _line(result: Comparison) -> str:
    """One line of a sampler's headline numbers (``caloforge demo`` prints it)."""
    parts = [
        f"{label} {ours}"
        for label, ours, _ in result.rows()
        if ours != "-" and not label.startswith("separation")
    ]
    return "; ".join(parts) + f" ({result.n_generated} vs {result.n_reference} showers)"


def _samplers_table(results: dict[str, Comparison]) -> list[str]:
    """The samplers side by side on the same held-out showers, Geant4 vs Geant4 last."""
    first = next(iter(results.values()))
    rows = {label: [label] for label, _, _ in first.rows()}
    for result in results.values():
        for label, ours, _ in result.rows():
            rows.setdefault(label, [label] + ["-"] * (len(results) - 1)).append(ours)
    for label, _, base in first.rows():
        rows[label].append(base)
    head = ["metric", *results, "Geant4 vs Geant4"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows.values() if len(r) == len(head)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--evaluation", required=True, type=Path, help="report directory")
    parser.add_argument(
        "--limitations", type=Path, help="Markdown file: what limits the model, as measured"
    )
    parser.add_argument(
        "--config", default="configs/calodit-cpu.yaml", help="the config the run was trained with"
    )
    parser.add_argument(
        "--results",
        default="benchmarks/results/default_model.md",
        help="the recorded evaluation (Markdown) that the card points to",
    )
    parser.add_argument(
        "--reproduce",
        default="`scripts/make-datasets.sh && scripts/train-default.sh`",
        help="the commands that trained the run (Markdown), for the card",
    )
    parser.add_argument(
        "--sampler", help="the shipped default sampler: a student of the run (default: its own)"
    )
    parser.add_argument(
        "--sampler-steps",
        type=int,
        help="the student's steps when none are asked for (default: all its noise levels)",
    )
    parser.add_argument(
        "--beside",
        action="append",
        default=[],
        metavar="LABEL=REPORT",
        help="another sampler's report on the same showers, for the card (repeatable)",
    )
    args = parser.parse_args()
    model = load_model(args.run)  # checks that the run holds a complete model
    result = _comparison(args.evaluation)
    beside = {}
    for item in args.beside:
        label, sep, folder = item.rpartition("=")
        if not sep or not label:
            parser.error(f"--beside {item!r}: expected LABEL=REPORT")
        beside[label] = _comparison(Path(folder))
    if args.sampler is not None and args.sampler not in model.record.students:
        parser.error(f"--sampler {args.sampler}: {args.run} has no such student")
    sampler = args.sampler or model.record.sampler
    if args.sampler_steps is not None:
        if sampler not in model.record.students:
            parser.error("--sampler-steps: the shipped sampler is not a student")
        try:  # the student record checks the steps against its noise levels
            student = replace(model.record.students[sampler], default_steps=args.sampler_steps)
        except ValueError as exc:
            parser.error(f"--sampler-steps: {exc}")
        students = {**model.record.students, sampler: student}
        model.record = replace(model.record, students=students)
    shipped_with = SamplerSettings(sampler).describe(model)
    n_steps = shipped_with["steps"]
    shipped_label = (
        f"{shipped_with['sampler']} ({n_steps} step{'s' if n_steps > 1 else ''}, shipped)"
    )
    record = model.record
    init_from = record.extra.get("init_from")
    started = (
        f", started from {init_from['model']} (trained {init_from['steps']} steps before; "
        "`train --init`, a warm restart)"
        if init_from
        else ""
    )
    # the networks this run trained (`train --part` trains one; the other is the parent's)
    if len(record.networks) > 1:
        dirs = {part: args.run / part for part in record.networks}
        trained = {part: d for part, d in dirs.items() if (d / "metrics.csv").exists()}
    else:
        trained = {next(iter(record.networks)): args.run}
    if not trained and not record.students:
        raise SystemExit(f"error: {args.run} holds no metrics.csv of a trained network")
    runs = {
        part: list(csv.DictReader((d / "metrics.csv").read_text().splitlines()))
        for part, d in trained.items()
    }
    kept = [part for part in record.networks if part not in trained]
    training = record.training
    if kept and init_from:  # the shipped record counts the kept networks' steps too
        steps = {p: int(init_from["steps"][p]) for p in kept} | training.part_steps
        steps = {p: steps[p] for p in record.networks}
        training = replace(training, part_steps=steps, completed_steps=steps[list(steps)[-1]])
        started = (
            f"; this run trained {', '.join(trained)} only (`train --init {init_from['model']} "
            f"--part ...`); {', '.join(kept)} kept from {init_from['model']}, trained "
            f"{', '.join(str(steps[p]) for p in kept)} steps"
        )
    if trained:
        voxel_part = list(trained)[-1]  # the last trained network (the shape model's, if so)
        last = runs[voxel_part][-1]
        val = next((r["val_loss"] for r in reversed(runs[voxel_part]) if r["val_loss"]), "-")
        trained_here = (
            f"{sum(_wall_hours(r) for r in runs.values()):.2f} h of wall time on 2 CPU cores "
            f"for {' and '.join(trained)} (summed over the resumed segments; a shared machine "
            f"makes it vary); {voxel_part} network: final loss {last['loss']}, validation loss "
            f"{val}"
        )
    else:  # a model distilled in a copy of its folder: its networks were trained before
        started = ""
        trained_here = "networks trained before this run, which distilled them (see Students)"
    assert result.auc_high is not None, "the evaluation has no high-level AUC"
    measured = (
        f"classifier AUC low {result.auc_low.format() if result.auc_low else '-'}, high "
        f"{result.auc_high.format()} against {result.n_reference} held-out Geant4 par04-siw "
        "showers"
    )
    word = result.verdict()
    verdict = f"{word} MODEL: {measured} (GOOD: both AUCs <= 0.6, FAIR: <= 0.75, else POOR)"
    if word == "POOR":
        verdict += "; a classifier tells its showers from Geant4 easily: use it for demonstrations, not for physics"  # fmt: skip
    lines = [
        "# Model card: caloforge default model",
        "",
        f"- **Verdict**: {verdict}.",
        (
            f"- **Architecture**: family {record.family}: "
            + "; ".join(
                f"{part}: {n.preset} (overrides {n.options or 'none'})"
                for part, n in record.networks.items()
            )
            + f"; EDM preconditioning, {model.diffusion.steps}-step {model.diffusion.sampler} "
            f"sampler (S_churn {model.diffusion.s_churn:g})."
        ),
        (
            f"- **Particle**: {record.particle}; detectors (one-hot slots): "
            f"{', '.join(model.detectors)} (+1 spare slot for adaptation)."
        ),
        (
            f"- **Conditions**: E {model.preprocessing.conditions.energy_range_mev[0] / 1e3:g}-"
            f"{model.preprocessing.conditions.energy_range_mev[1] / 1e3:g} GeV, theta "
            f"{model.preprocessing.conditions.theta_range[0]:.3g}-"
            f"{model.preprocessing.conditions.theta_range[1]:.3g} rad, phi 0-2 pi."
        ),
        "- **Training data** (`scripts/make-datasets.sh`): "
        + "; ".join(
            f"{f['path']} ({f['detector']}, {f['n_train']} + {f['n_val']} held out)"
            for f in record.training.files
        ),
        (
            f"- **Training**: {training.completed_steps} steps "
            f"{' (per network: ' + str(training.part_steps) + ')' if training.part_steps else ''} "
            f"(`scripts/train-default.sh`, {args.config}){started}, {trained_here}."
        ),
        *(
            f"- **Student `{name}`**: {s.method} of the {s.part} network "
            f"(`caloforge distill --method {s.method}`), {s.trained_steps} steps on "
            f"{', '.join(s.data)}; samples at noise levels {', '.join(f'{v:g}' for v in s.sigmas)} "
            "(one network evaluation each)."
            for name, s in record.students.items()
        ),
        "",
        (
            f"## Against held-out Geant4 ({result.n_reference} vs {result.n_generated} "
            "par04-siw photons, same conditions)"
        ),
        "",
        result.markdown(),
        "",
        (
            "The baseline compares two disjoint parts of the held-out "
            f"Geant4 showers. Reproduce: {args.reproduce}, "
            f"then the evaluation recorded in {args.results} (its command is there)."
        ),
        "",
    ]
    if beside:
        lines += [
            "## The samplers, on the same held-out showers",
            "",
            *_samplers_table({shipped_label: result, **beside}),
            "",
            (
                f"`caloforge sample` uses {shipped_label.removesuffix(', shipped)')}) unless "
                "asked for another (`--sampler heun` is the teacher; `caloforge distill` made "
                "the students)."
            ),
            "",
        ]
    if args.limitations:
        lines += ["## Known limitations", "", args.limitations.read_text().strip(), ""]
    copy_model(args.run, TARGET)
    shipped = ModelRecord.read(TARGET / META_FILE)
    lines_at_release = {shipped_label: _line(result)} | {k: _line(v) for k, v in beside.items()}
    quality = Quality(
        verdict, asdict(result.auc_high), "MODEL_CARD.md", lines_at_release if beside else {}
    )
    shipped = replace(
        shipped,
        quality=quality,
        training=training,
        sampler=args.sampler or shipped.sampler,
        students=model.record.students,
    )
    shipped.write(TARGET / META_FILE)
    (TARGET / "MODEL_CARD.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
