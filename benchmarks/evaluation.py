"""Acceptance and wall time of ``caloforge evaluate`` on real Geant4 files (issue 3).

Needs the datasets of ``scripts/make-datasets.sh`` (par04-siw seeds 2 and 1, par04-scipb seed
3; 10k photons each, log-uniform 1-100 GeV, theta 0.87-2.27, phi 0-2 pi). Runs, with the
default settings of ``caloforge evaluate``:

1. Geant4 par04-siw (seed 2) vs Geant4 par04-siw (seed 1): AUCs should be consistent with 0.5
   and separation powers with the Geant4-vs-Geant4 baseline; its wall time is the benchmark
   of a full 10k vs 10k evaluation;
2. Geant4 par04-siw vs Geant4 par04-scipb: the classifiers should reach AUC ~ 1.

Usage: ``python benchmarks/evaluation.py [--cases siw-vs-siw siw-vs-scipb]``; writes
``benchmarks/results/evaluation_<case>.md``. Run it on an idle machine: it is a timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

from caloforge.config import EvaluationConfig
from caloforge.evaluate.metrics import format_value
from caloforge.evaluate.report import evaluate
from caloforge.evaluate.results import HEADLINE

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "siw-vs-siw": ("data/siw-test.h5", "data/siw-train-a.h5"),
    "siw-vs-scipb": ("data/siw-test.h5", "data/scipb.h5"),
}


def _pm(entry: dict[str, Any] | None, scale: float = 1.0) -> str:
    return format_value(entry, scale, value_format=".4f", error_format=".4f")


def _table(name: str, metrics: dict[str, Any], wall: float) -> list[str]:
    base = metrics.get("baseline", {})
    sep, sep_base = metrics["separation_power"], base.get("separation_power", {})
    err = metrics["separation_power_error"]
    lines = [
        f"### {name}: {metrics['reference']['path']} vs {metrics['generated']['path']}",
        "",
        (
            f"{metrics['n_reference']} vs {metrics['n_generated']} showers; baseline: two disjoint parts "
            f"of the reference ({base.get('n_reference', '-')} vs {base.get('n_generated', '-')}). "
            f"Wall time {wall:.0f} s; stages (s): {metrics['timing_s']}."
        ),
        "",
        "| metric | vs Geant4 | Geant4 vs Geant4 |",
        "|---|---|---|",
    ]
    for m in HEADLINE:
        lines.append(
            f"| {m.label}{m.unit} | {_pm(metrics.get(m.key), m.scale)} | "
            f"{_pm(base.get(m.key), m.scale)} |"
        )
    for feature in ("e_ratio", "voxel_spectrum", "profile_z", "profile_r"):
        lines.append(
            f"| separation power {feature} | {sep[feature]:.5f} ± {err[feature]:.5f} | "
            f"{sep_base.get(feature, float('nan')):.5f} |"
        )
    summary, base_summary = (
        metrics["separation_power_summary"],
        base.get("separation_power_summary"),
    )
    lines.append(
        f"| separation power, mean of {len(sep)} | {summary['mean']:.5f} (max {summary['max']:.4f}, "
        f"{summary['max_feature']}) | "
        + (f"{base_summary['mean']:.5f} (max {base_summary['max']:.4f})" if base_summary else "-")
        + " |"
    )
    lines += [
        "",
        "| condition bin | showers | AUC high | baseline | mean sep. power | baseline |",
        "|---|---|---|---|---|---|",
    ]
    for entry in metrics["conditions"]["bins"]:
        if "skipped" in entry:
            lines.append(
                f"| {entry['label']} | {entry['n_reference']} / {entry['n_generated']} | skipped | | | |"
            )
            continue
        b = entry.get("baseline", {})
        b_sep = b.get("separation_power_summary", {}).get("mean")
        lines.append(
            f"| {entry['label']} | {entry['n_reference']} / {entry['n_generated']} | "
            f"{_pm(entry['auc_high'])} | {_pm(b.get('auc_high'))} | "
            f"{entry['separation_power_summary']['mean']:.5f} | "
            + (f"{b_sep:.5f}" if b_sep is not None else "-")
            + " |"
        )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/benchmark-evaluation", help="report directories")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    out = ROOT / args.out
    lines = [
        "# `caloforge evaluate` on real Geant4 files",
        "",
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}."
            " Default settings (`caloforge evaluate --reference A --generated B --out DIR`):"
        ),
        f"classifier {EvaluationConfig().classifier.describe()}.",
        "Reproduce: `scripts/make-datasets.sh && python benchmarks/evaluation.py`.",
        "",
    ]
    for name in args.cases:
        reference, generated = (ROOT / p for p in CASES[name])
        start = time.perf_counter()
        metrics = evaluate(reference, generated, out / name, overwrite=True).metrics
        wall = time.perf_counter() - start
        text = "\n".join([*lines, *_table(name, metrics, wall)])
        results = ROOT / "benchmarks" / "results" / f"evaluation_{name}.md"
        results.write_text(text)
        print(text)
        print(f"wrote {results}")


if __name__ == "__main__":
    main()
