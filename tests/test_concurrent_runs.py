"""Two runs on one output: the second is refused with one line, the first is not disturbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from caloforge.atomic import output_lock
from caloforge.cli import main
from caloforge.fastsim.demo import reference_path


def _refused(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    assert main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "another caloforge run is writing" in err
    return err


def test_sample_export_and_evaluate_refuse_an_output_being_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = reference_path()
    out = tmp_path / "x.h5"
    with output_lock(out):  # as another process would hold it
        _refused(capsys, "sample", "--detector", "par04-siw", "--energy", "10", "-n", "2",
                 "--sampler-steps", "1", "--out", out, "--no-progress")  # fmt: skip
        _refused(capsys, "export", ref, "--out", out)
    report = tmp_path / "report"
    with output_lock(report):
        _refused(capsys, "evaluate", "--reference", ref, "--generated", ref, "--out", report,
                 "--limit", "60", "--no-progress")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # locks released and removed
    # free again: the same command works
    assert main(["export", str(ref), "--out", str(out)]) == 0


def test_two_trainings_in_one_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with output_lock(run):
        _refused(capsys, "train", "--data", reference_path(), "--out", run, "--steps", "1")
    assert (run / ".lock").exists()  # a run folder's lock stays in it


def test_a_refused_training_leaves_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    code = main(["train", "--data", str(tmp_path / "missing.h5"), "--out", str(run)])
    assert code == 1
    assert "missing.h5" in capsys.readouterr().err
    assert not run.exists()


def test_the_lock_is_free_once_its_holder_is_gone(tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    with output_lock(out):
        pass
    with output_lock(out):  # taken again at once: nothing stale
        pass
