"""``benchmarks/adapt_study.py``: studies side by side share their points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from adapt_study import save_point


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
