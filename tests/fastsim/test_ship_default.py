"""scripts/ship_default_model.py: a run that trained one network of a pipeline (`--part`), a
run shipped with its consistency student as the default sampler."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from test_pipeline import DISTILL_TINY, TINY

from caloforge.cli import main
from caloforge.fastsim import load_model
from caloforge.fastsim.model import SamplerSettings

ROOT = Path(__file__).resolve().parents[2]


def _ship_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ship", ROOT / "scripts" / "ship_default_model.py")  # fmt: skip
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(folder: Path, auc_value: float) -> Path:
    """An evaluate report folder holding only its metrics.json."""
    folder.mkdir()
    side = {"n_reference": 10, "n_generated": 10, "separation_power": {}, "separation_power_summary": {"mean": 0.1}}  # fmt: skip
    auc = {"value": auc_value, "error": 0.01}
    metrics = {**side, "auc_low": auc, "auc_high": auc, "baseline": {**side, "auc_high": {"value": 0.5}}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_shipping_a_run_that_trained_the_energy_network_alone(
    teachers: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = teachers["factorized"]
    run = tmp_path / "energy-only"
    args = ["train", "--data", teachers["data"], "--out", run, *TINY, "--set", "energy.train.steps=3"]  # fmt: skip
    assert main([*map(str, args), "--init", str(parent), "--part", "energy", "--set", "energy.conditional=true"]) == 0  # fmt: skip
    assert not (run / "shape" / "metrics.csv").exists()
    report = _report(tmp_path / "report", 0.7)
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


def test_shipping_a_student_as_the_default_sampler_with_its_teacher_beside(
    teachers: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"  # distilled into the teacher's own folder, as distill-default.sh does
    shutil.copytree(teachers["factorized"], run)
    args = ["distill", "--model", run, "--data", teachers["data"], "--out", run, "--steps", "1"]
    assert main([*map(str, args), *DISTILL_TINY, "--no-progress"]) == 0
    ship = _ship_module()
    target = tmp_path / "default"
    monkeypatch.setattr(ship, "TARGET", target)
    student, teacher = _report(tmp_path / "student", 0.72), _report(tmp_path / "teacher", 0.7)
    argv = ["ship", "--run", str(run), "--evaluation", str(student), "--sampler", "cd"]
    monkeypatch.setattr(sys, "argv", [*argv, "--beside", f"heun (the teacher)={teacher}"])
    ship.main()
    shipped = load_model(target)
    assert shipped.record.sampler == "cd"
    assert "cd" in shipped.students  # its weights were copied and load
    assert shipped.record.quality is not None
    lines = shipped.record.quality.samplers
    assert list(lines) == ["cd (2 steps, shipped)", "heun (the teacher)"]
    assert lines["heun (the teacher)"] == (
        "classifier AUC, low level (voxels) 0.7 ± 0.01; classifier AUC, high level (features) "
        "0.7 ± 0.01 (10 vs 10 showers)"
    )
    card = (target / "MODEL_CARD.md").read_text()
    assert "| metric | cd (2 steps, shipped) | heun (the teacher) | Geant4 vs Geant4 |" in card
    assert "| classifier AUC, high level (features) | 0.72 ± 0.01 | 0.7 ± 0.01 | 0.5 ± 0 |" in card


def test_shipping_refuses_a_sampler_the_run_does_not_have(
    teachers: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ship = _ship_module()
    monkeypatch.setattr(ship, "TARGET", tmp_path / "default")
    report = _report(tmp_path / "report", 0.7)
    argv = ["ship", "--run", str(teachers["factorized"]), "--evaluation", str(report), "--sampler", "cd"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        ship.main()
    assert not (tmp_path / "default").exists()


def test_shipping_a_student_distilled_into_a_copy_of_a_shipped_model(
    teachers: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`distill --out NEW` copies the model files only: no metrics.csv; the card says so. The
    student ships sampling in 1 step by default (`--sampler-steps 1`)."""
    run = tmp_path / "run"
    args = ["distill", "--model", teachers["factorized"], "--data", teachers["data"], "--out", run, "--steps", "1"]  # fmt: skip
    assert main([*map(str, args), *DISTILL_TINY, "--no-progress"]) == 0
    assert not (run / "shape" / "metrics.csv").exists()
    ship = _ship_module()
    target = tmp_path / "default"
    monkeypatch.setattr(ship, "TARGET", target)
    report = _report(tmp_path / "student", 0.72)
    argv = ["ship", "--run", str(run), "--evaluation", str(report), "--sampler", "cd"]
    teacher = _report(tmp_path / "teacher", 0.7)
    argv += ["--sampler-steps", "1", "--beside", f"heun (the teacher)={teacher}"]
    monkeypatch.setattr(sys, "argv", argv)
    ship.main()
    shipped = load_model(target)
    assert shipped.record.sampler == "cd"
    assert SamplerSettings().resolve(shipped) == ("cd", 1)
    assert SamplerSettings(steps=2).resolve(shipped) == ("cd", 2)  # asked for: both levels
    assert shipped.record.quality is not None
    assert list(shipped.record.quality.samplers) == ["cd (1 step, shipped)", "heun (the teacher)"]
    card = (target / "MODEL_CARD.md").read_text()
    assert "networks trained before this run, which distilled them" in card
    assert f"- **Student `cd`**: cd of the shape network (`caloforge distill --method cd`), 1 steps on {teachers['data']}" in card  # fmt: skip


def test_shipping_refuses_more_default_steps_than_the_student_has(
    students: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = students["factorized"]
    ship = _ship_module()
    monkeypatch.setattr(ship, "TARGET", tmp_path / "default")
    report = _report(tmp_path / "report", 0.7)
    argv = ["ship", "--run", str(run), "--evaluation", str(report), "--sampler", "cd", "--sampler-steps", "3"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        ship.main()
    assert not (tmp_path / "default").exists()
