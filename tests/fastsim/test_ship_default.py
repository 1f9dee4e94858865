"""scripts/ship_default_model.py: a run that trained one network of a pipeline (`--part`)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from test_pipeline import TINY

from caloforge.cli import main
from caloforge.fastsim import load_model

ROOT = Path(__file__).resolve().parents[2]


def _ship_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ship", ROOT / "scripts" / "ship_default_model.py")  # fmt: skip
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipping_a_run_that_trained_the_energy_network_alone(
    teachers: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = teachers["factorized"]
    run = tmp_path / "energy-only"
    args = ["train", "--data", teachers["data"], "--out", run, *TINY, "--set", "energy.train.steps=3"]  # fmt: skip
    assert main([*map(str, args), "--init", str(parent), "--part", "energy", "--set", "energy.conditional=true"]) == 0  # fmt: skip
    assert not (run / "shape" / "metrics.csv").exists()
    report = tmp_path / "report"
    report.mkdir()
    side = {"n_reference": 10, "n_generated": 10, "separation_power": {}, "separation_power_summary": {"mean": 0.1}}  # fmt: skip
    auc = {"value": 0.7, "error": 0.01}
    metrics = {**side, "auc_low": auc, "auc_high": auc, "baseline": {**side, "auc_high": {"value": 0.5}}}  # fmt: skip
    (report / "metrics.json").write_text(json.dumps(metrics))
    ship = _ship_module()
    target = tmp_path / "default"
    monkeypatch.setattr(ship, "TARGET", target)
    argv = ["ship", "--run", str(run), "--evaluation", str(report), "--reproduce", "`do it`"]
    monkeypatch.setattr(sys, "argv", argv)
    ship.main()
    shipped = load_model(target)
    steps = load_model(parent).record.training.part_steps
    # the kept shape network counts the steps it had; the energy network this run's
    assert shipped.record.training.part_steps == {"energy": 3, "shape": steps["shape"]}
    assert shipped.record.training.completed_steps == steps["shape"]
    card = (target / "MODEL_CARD.md").read_text()
    assert "FAIR MODEL" in card
    assert "this run trained energy only" in card
    assert f"shape kept from {parent}" in card
    assert "Reproduce: `do it`" in card
