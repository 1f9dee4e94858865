"""``benchmarks/adapt_study.py``: studies side by side share their points."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from adapt_study import save_point, write_results


def _point(arm: str, step: int, auc: float) -> dict:
    return {"arm": arm, "size": 1000, "step": step, "auc_high": auc}


def test_a_point_joins_what_another_study_wrote(tmp_path: Path) -> None:
    store = tmp_path / "points.json"
    save_point(store, _point("adapted", 100, 0.9))
    # another study, started before the first point existed, writes its own
    points = save_point(store, _point("scratch", 300, 0.95))
    assert [(p["arm"], p["step"]) for p in points] == [("adapted", 100), ("scratch", 300)]
    assert json.loads(store.read_text()) == points
    # the same point judged again replaces the old one, never doubles it
    points = save_point(store, _point("adapted", 100, 0.8))
    assert sorted((p["arm"], p["step"], p["auc_high"]) for p in points) == [
        ("adapted", 100, 0.8),
        ("scratch", 300, 0.95),
    ]


def test_only_names_known_stages(tmp_path: Path) -> None:
    args = ["--train", "t.h5", "--reference", "r.h5", "--sizes", "100", "--runs", str(tmp_path)]
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "adapt_study.py"), *args, "--only", "adapted:1000"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "--only takes ARM:SIZE among adapted:100, scratch:100" in run.stderr


def test_a_second_reference_needs_a_second_detector(tmp_path: Path) -> None:
    args = [
        "--train",
        "t.h5",
        "--reference",
        "r.h5",
        "--runs",
        str(tmp_path),
        "--second-reference",
        "o.h5",
    ]
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "adapt_study.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "--second-reference needs --second" in run.stderr


def test_a_point_on_the_second_detector_is_a_row_of_the_table(tmp_path: Path) -> None:
    """The figure shows quality on the first detector; a point judged on the second one is a
    row of the table only."""
    measured = {
        "auc_high_error": 0.01,
        "fpd": 1.0,
        "fpd_error": 0.02,
        "fpd_baseline": 0.6,
        "response": 0.001,
    }
    points = [
        {**_point("adapted", 1000, 0.9), **measured},
        {**_point("adapted, then other", 1000, 0.91), **measured},
        {
            **_point("adapted, then other; judged on other-test", 1000, 0.7),
            **measured,
            "reference": "other-test",
        },
    ]
    args = argparse.Namespace(
        parent="default", train="t.h5", reference=["r.h5"], sizes="1000", order=None, strategy="full",
        adapt_steps=1000, scratch_steps=3000, evaluate_at="1000", adapt_evaluate_at=None,
        scratch_evaluate_at=None, sampler_steps=16, n=5000, second="other.h5", second_of=1000,
        second_reference="other-test.h5", results=tmp_path / "study.md",
    )  # fmt: skip
    write_results(args, points)
    table = (tmp_path / "study.md").read_text()
    assert "| adapted, then other; judged on other-test | 1000 | 1000 | 0.700 ± 0.010 |" in table
    assert "--second-reference other-test.h5" in table
    assert (tmp_path / "study.png").stat().st_size > 0
