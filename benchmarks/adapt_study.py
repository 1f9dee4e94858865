"""Adaptation study (issue 17): the pretrained default fine-tuned to a detector it never saw,
against the same pipeline trained from scratch on the same showers.

For every training-set size (``--sizes``, the first N showers of ``--train``):

- ``adapted``: ``caloforge adapt`` of ``--parent`` (``--strategy``, ``--adapt-steps`` per
  network, the adaptation's learning rate, no early stopping);
- ``scratch``: ``caloforge train --config configs/factorized-cpu.yaml`` on the new detector alone
  (``--scratch-steps`` per network, the configuration's learning rate).

Both keep the checkpoints of every ``--every`` steps. At each step of ``--evaluate-at`` that a
run reached, the model of that step (every network at that step, or at its last one if it
trained fewer) is judged by ``benchmarks/fidelity.py`` against the same held-out showers of
``--reference`` (``-n``: half A gives the conditions, half B the comparison): AUC high, FPD
with its Geant4-vs-Geant4 baseline, and the response (mean E_tot/E_inc against Geant4's).
Every point is sampled with the same ``--sampler-steps`` (16 Heun steps by default, half the
trained 32: a point of 2500 showers then takes ~15 minutes instead of ~30; the study
compares the arms with each other, at one sampler).
With ``--second``, the adapted model of ``--second-of`` showers (at its last step) is adapted
again, with the same settings, to the detector of another file, and judged again on the first
detector's held-out showers (row ``adapted, then NAME``): does the second adaptation break the
first? And once more with the first adaptation's showers replayed beside the second's
(``caloforge adapt --replay``; row ``adapted, then NAME, replaying the first``). With
``--second-reference``, both are judged as well on the second detector's held-out showers
(rows ``...; judged on NAME``): did the second adaptation learn the second detector?
Every stage resumes: run the same command again after an interruption; an evaluated point is
not sampled again (``RUNS/points.json``), and the table and figure are rewritten after every
point, so an interrupted study leaves what it measured. With ``--only ARM:SIZE,...`` (and
``second``, ``second-replay``) a study runs only those stages: two such studies on the same
``--runs`` (different stages) run side by side, one per core, and share ``points.json``; with
``--judge-only`` a study trains nothing and judges the steps already kept, beside one that
trains them.

    python benchmarks/adapt_study.py --train data/pbwo4-train.h5 --reference data/pbwo4-test.h5
        [--parent default] [--sizes 100,1000,10000] [--order adapted:1000,scratch:10000]
        [--only adapted:1000,second,second-replay] [--judge-only]
        [--adapt-steps 1000] [--scratch-steps 3000]
        [--evaluate-at 200,1000,3000] [--adapt-evaluate-at S,...] [--scratch-evaluate-at S,...]
        [--sampler-steps 16] [-n 5000] [--second OTHER.h5 [--second-of 1000] [--second-reference OTHER-TEST.h5]] [--runs runs/adapt-study]
        [--results benchmarks/results/adapt_study.md]

Writes the table (markdown + JSON) and the figure (quality against SGD steps, one panel per
metric, one colour per data size, solid adapted, dashed scratch).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from fidelity import fidelity  # benchmarks/fidelity.py
from safetensors.torch import load_file

from caloforge.atomic import write_text_atomic
from caloforge.evaluate.results import Measured
from caloforge.fastsim import load_model
from caloforge.fastsim.adapt import ADAPT_TRAINING, adapt
from caloforge.fastsim.model import SamplerSettings

ROOT = Path(__file__).resolve().parents[1]


def _run_dirs(arm: str, out: Path, parts: list[str]) -> dict[str, Path]:
    """The run folder of every network of a model in ``out``."""
    if arm == "adapted":
        return {p: out / f"adapt-{p}" for p in parts}
    return {p: out / p for p in parts} if len(parts) > 1 else {parts[0]: out}


def _steps_done(run: Path) -> int:
    kept = [int(p.name.removeprefix("step-")) for p in (run / "checkpoints").glob("step-*")]
    return max(kept, default=0)


def _reached(arm: str, out: Path, step: int) -> bool:
    """Whether every network of the model in ``out`` has kept a checkpoint at ``step`` (or
    finished before it)."""
    if not (out / "model.json").exists():
        return False
    model = load_model(out)
    return all(
        _steps_done(run) >= step for run in _run_dirs(arm, out, list(model.networks)).values()
    )


def snapshot(arm: str, out: Path, step: int, dest: Path) -> Path:
    """The model of ``out`` with every network's EMA weights of ``step`` (or of its last
    checkpoint, if it trained fewer steps), written to ``dest``."""
    model = load_model(out)
    for part, run in _run_dirs(arm, out, list(model.networks)).items():
        at = min(step, _steps_done(run))
        ema = load_file(run / "checkpoints" / f"step-{at:07d}" / "ema.safetensors")
        net = model.networks[part]
        net.load_state_dict(ema)
        model = model.with_trained(part, net, at)
    shutil.rmtree(dest, ignore_errors=True)
    model.save(dest)
    return dest


def _measured(name: str, found: Measured | None) -> dict[str, float]:
    """``{name: value, name_error: error}`` (NaN where the metric was not computed)."""
    value, error = (found.value, found.error) if found else (math.nan, math.nan)
    return {name: value, f"{name}_error": error}


def train_arm(arm: str, out: Path, train: str, size: int, steps: int, every: int, strategy: str, parent: str, replay: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Train (or resume) one arm on the first ``size`` showers of ``train`` (and of ``replay``,
    files of detectors the parent knows: the adapted arm only)."""
    if arm == "adapted":
        settings = replace(ADAPT_TRAINING, checkpoint_every=every, keep_every=every, patience=0)
        resume = (out / "run.json").exists()
        adapt(parent, [train], out, strategy=strategy, steps=steps, resume=resume, limit=size,
              replay=replay, training=settings, progress=False)  # fmt: skip
        return
    keep = [f"--set={p}train.{k}={every}" for p in ("", "energy.") for k in ("checkpoint_every", "keep_every")]  # fmt: skip
    cmd = ["train", "--config", "configs/factorized-cpu.yaml", "--data", train, "--limit", size,
           "--steps", steps, "--set", f"energy.train.steps={steps}", *keep, "--out", out,
           "--no-progress"]  # fmt: skip
    if (out / "config.yaml").exists():
        cmd.append("--resume")
    subprocess.run([sys.executable, "-m", "caloforge", *map(str, cmd)], cwd=ROOT, check=True)


def _figure(points: list[dict], path: Path) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    sizes = sorted({p["size"] for p in points})
    colours = dict(zip(sizes, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False))
    panels = (("auc_high", "AUC high", 1), ("fpd", "FPD (x1e-3)", 1e3), ("response", "E_tot/E_inc vs Geant4 (%)", 100))  # fmt: skip
    for (key, label, scale), ax in zip(panels, axes, strict=True):
        for size in sizes:
            for arm, style in (("adapted", "-"), ("scratch", "--")):
                pts = sorted((p for p in points if p["size"] == size and p["arm"] == arm), key=lambda p: p["step"])  # fmt: skip
                if pts:
                    ax.errorbar([p["step"] for p in pts], [p[key] * scale for p in pts], [p.get(f"{key}_error", 0) * scale for p in pts], ls=style, marker="o", capsize=2, color=colours[size], label=f"{arm}, {size} showers")  # fmt: skip
        # the second adaptation, judged on the first detector
        again = [p for p in points if p["arm"].startswith("adapted, then") and "reference" not in p]
        for p in again:
            second = p["arm"].removeprefix("adapted, then ")
            ax.errorbar(p["step"], p[key] * scale, p.get(f"{key}_error", 0) * scale, marker="P" if "replaying" in second else "*", ms=12, capsize=2, color=colours[p["size"]], mec="k", label=f"{p['size']} adapted, then {second}")  # fmt: skip
        if key == "fpd" and any(p["fpd"] > 0 for p in points):  # NaN where not computed
            base = [p["fpd_baseline"] * 1e3 for p in points]
            g4 = ax.axhline(sum(base) / len(base), color="grey", lw=1, label="Geant4 vs Geant4")
            ax.set_yscale("log")
            ax.legend(handles=[g4], fontsize=7, loc="lower left")  # the arms: the AUC panel's
        if key == "auc_high":
            ax.axhline(0.5, color="grey", lw=1)
            ax.legend(fontsize=7)
        if key == "response":
            ax.axhline(0, color="grey", lw=1)
            ax.set_title(f"{label}; issue 17 asks ±2 %", fontsize=10)
        else:
            ax.set_title(label)
        ax.set_xscale("log")
        ax.set_xlabel("SGD steps per network")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _load(store: Path) -> list[dict]:
    return json.loads(store.read_text()) if store.exists() else []


def save_point(store: Path, point: dict) -> list[dict]:
    """Add ``point`` to the points of ``store`` and return them all. Studies running side by
    side (``--only``) share the store: each adds to what is on disk, under a lock."""
    with store.with_name(f".{store.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        points = _load(store)
        key = (point["arm"], point["size"], point["step"])
        points = [p for p in points if (p["arm"], p["size"], p["step"]) != key] + [point]
        write_text_atomic(store, json.dumps(points, indent=1))
    return points


def judge(args: argparse.Namespace, model: str, arm: str, size: int, step: int, reference: list[str] | None = None) -> dict:  # fmt: skip
    """One point of the study: ``model`` against the held-out showers (``--reference``, or
    ``reference``)."""
    report = fidelity(
        model, reference or args.reference, args.n, diagnostics=False, settings=SamplerSettings(steps=args.sampler_steps)
    )  # fmt: skip
    m = report.model
    base = m.baseline.fpd if m.baseline else None
    return {
        "arm": arm, "size": size, "step": step,
        **_measured("auc_high", m.auc_high), **_measured("fpd", m.fpd),
        "fpd_baseline": base.value if base else math.nan,
        "response": report.response,
    }  # fmt: skip


def second_adaptation(args: argparse.Namespace, points: list[dict], replay: bool) -> list[dict]:
    """The adapted model of ``--second-of`` showers (at its last step), adapted again to the
    detector of ``--second`` with the same settings, judged again on the first detector's
    held-out showers: does the second adaptation break the first? With ``replay``, the first
    adaptation's showers train beside the second's (``caloforge adapt --replay``; the first
    ``--second-of`` showers of each file)."""
    runs = ROOT / args.runs
    name = Path(args.second).stem
    arm = f"adapted, then {name}" + (", replaying the first" if replay else "")
    size, steps = args.second_of, args.adapt_steps
    out = runs / f"second-{size}-{name}" if not replay else runs / f"second-{size}-{name}-replay"
    if not any(p["arm"] == arm and p["size"] == size for p in points):
        _adapt_again(args, runs, out, replay)
        points = save_point(runs / "points.json", judge(args, str(out), arm, size, steps))
    if args.second_reference:  # the second detector's own quality, on its held-out showers
        on = Path(args.second_reference).stem
        again = f"{arm}; judged on {on}"
        if not any(p["arm"] == again and p["size"] == size for p in points):
            point = judge(args, str(out), again, size, steps, reference=[args.second_reference])
            points = save_point(runs / "points.json", {**point, "reference": on})
    return points


def _adapt_again(args: argparse.Namespace, runs: Path, out: Path, replay: bool) -> None:
    """Adapt the adapted model of ``--second-of`` showers to ``--second`` in ``out``."""
    size, steps = args.second_of, args.adapt_steps
    first = runs / f"first-{size}"
    with (runs / ".first.lock").open("a") as lock:  # both second stages may start at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (first / "model.json").exists():  # written once: the second runs resume on it
            snapshot("adapted", runs / f"adapted-{size}", steps, first)
    kept = (args.train,) if replay else ()
    limit = size if replay else 10**9
    train_arm("adapted", out, args.second, limit, steps, args.every, args.strategy, str(first), kept)  # fmt: skip


def write_results(args: argparse.Namespace, points: list[dict]) -> None:
    """The table (markdown + JSON) and the figure of the points judged so far."""
    per_arm = "".join(
        f" --{arm}-evaluate-at {steps}"
        for arm, steps in (("adapt", args.adapt_evaluate_at), ("scratch", args.scratch_evaluate_at))
        if steps
    )
    order = f" --order {args.order}" if args.order else ""
    second = f" --second {args.second} --second-of {args.second_of}" if args.second else ""
    if args.second_reference:
        second += f" --second-reference {args.second_reference}"
    lines = [
        "# Adaptation study (issue 17)",
        "",
        (
            f"Command: `python benchmarks/adapt_study.py --parent {args.parent} --train "
            f"{args.train} --reference {' '.join(args.reference)} --sizes {args.sizes}{order} "
            f"--strategy {args.strategy} --adapt-steps {args.adapt_steps} --scratch-steps "
            f"{args.scratch_steps} --evaluate-at {args.evaluate_at}{per_arm} --sampler-steps "
            f"{args.sampler_steps} -n {args.n}{second}`."
        ),
        "",
        "| arm | showers | steps | AUC high | FPD (x1e-3) | G4 vs G4 FPD | E_tot/E_inc vs G4 |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: (p["size"], p["arm"], p["step"])):
        lines.append(
            f"| {p['arm']} | {p['size']} | {p['step']} | {p['auc_high']:.3f} ± "
            f"{p['auc_high_error']:.3f} | {p['fpd'] * 1e3:.0f} ± {p['fpd_error'] * 1e3:.0f} | "
            f"{p['fpd_baseline'] * 1e3:.0f} | {p['response']:+.2%} |"
        )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(lines) + "\n")
    args.results.with_suffix(".json").write_text(json.dumps(points, indent=1))
    _figure(points, args.results.with_suffix(".png"))
    print("\n".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", default="default")
    parser.add_argument("--train", required=True, help="the new detector's training showers")
    parser.add_argument("--reference", nargs="+", required=True, help="its held-out showers")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--order", help="ARM:SIZE,... trained and judged first, e.g. adapted:1000,scratch:10000")  # fmt: skip
    parser.add_argument("--only", help="ARM:SIZE,... (and 'second', 'second-replay'): run only these stages, e.g. to run two studies side by side on the same --runs")  # fmt: skip
    parser.add_argument("--strategy", default="full")
    parser.add_argument("--adapt-steps", type=int, default=1000)
    parser.add_argument("--scratch-steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=100, help="checkpoints kept every N steps")
    parser.add_argument("--evaluate-at", default="200,1000,3000")
    parser.add_argument("--adapt-evaluate-at", help="the adapted arm's steps (default: --evaluate-at)")  # fmt: skip
    parser.add_argument("--scratch-evaluate-at", help="the scratch arm's steps (default: --evaluate-at)")  # fmt: skip
    parser.add_argument("--sampler-steps", type=int, default=16, help="sampler steps of every judged model")  # fmt: skip
    parser.add_argument("-n", type=int, default=5000, help="held-out showers (A + B)")
    parser.add_argument("--second", help="showers of a second new detector: the adapted model of --second-of showers is adapted again to it, then judged again on the first")  # fmt: skip
    parser.add_argument("--second-of", type=int, default=1000, help="the adapted arm adapted again")  # fmt: skip
    parser.add_argument("--second-reference", help="held-out showers of the second detector: the models adapted again are judged on them too")  # fmt: skip
    parser.add_argument("--judge-only", action="store_true", help="train nothing: judge the steps that the arms' runs have kept so far (e.g. beside a study that trains them)")  # fmt: skip
    parser.add_argument("--runs", type=Path, default=Path("runs/adapt-study"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/adapt_study.md"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    at = {
        arm: [int(s) for s in (given or args.evaluate_at).split(",")]
        for arm, given in (
            ("adapted", args.adapt_evaluate_at),
            ("scratch", args.scratch_evaluate_at),
        )
    }
    if any(s % args.every for steps in at.values() for s in steps):
        parser.error("every evaluated step must be a multiple of --every")
    runs = ROOT / args.runs
    store = runs / "points.json"
    points = _load(store)
    plan = [(arm, size) for size in sizes for arm in ("adapted", "scratch")]
    if args.order:  # the arms that decide first
        names = {f"{a}:{n}": (a, n) for a, n in plan}
        if any(item not in names for item in args.order.split(",")):
            parser.error(f"--order takes ARM:SIZE among {', '.join(names)}")
        first = [names[item] for item in args.order.split(",")]
        plan = [*first, *(p for p in plan if p not in first)]
    if args.second_reference and not args.second:
        parser.error("--second-reference needs --second")
    if args.second and args.second_of not in sizes:
        parser.error(f"--second-of must be one of --sizes ({args.sizes})")
    only = args.only.split(",") if args.only else None
    if only:
        names = {f"{a}:{n}" for a, n in plan} | ({"second", "second-replay"} if args.second else set())  # fmt: skip
        if any(item not in names for item in only):
            parser.error(f"--only takes ARM:SIZE among {', '.join(sorted(names))}")
        plan = [(a, n) for a, n in plan if f"{a}:{n}" in only]
    for arm, size in plan:
        steps = args.adapt_steps if arm == "adapted" else args.scratch_steps
        out = runs / f"{arm}-{size}"
        if not args.judge_only:
            train_arm(arm, out, args.train, size, steps, args.every, args.strategy, args.parent)
        for step in (s for s in at[arm] if s <= steps):
            if args.judge_only and not _reached(arm, out, step):
                continue
            if any(p["arm"] == arm and p["size"] == size and p["step"] == step for p in _load(store)):  # fmt: skip
                continue
            # one folder per step: two studies may judge steps of one arm side by side
            snap = snapshot(arm, out, step, runs / f"snapshot-{arm}-{size}-{step}")
            points = save_point(store, judge(args, str(snap), arm, size, step))
            shutil.rmtree(snap)
            write_results(args, points)  # the table so far
    for stage, replay in (("second", False), ("second-replay", True)):
        if args.second and not args.judge_only and (only is None or stage in only):
            points = second_adaptation(args, _load(store), replay)
    write_results(args, _load(store))


if __name__ == "__main__":
    main()
