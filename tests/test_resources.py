"""Numbers at the edge: seeds, limits, sizes that cannot fit, checked before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from caloforge.cli import main
from caloforge.errors import OutputError, SpecError
from caloforge.resources import available_memory, check_memory, check_space

SAMPLE = ["sample", "--detector", "par04-siw", "--energy", "10", "-n"]


def _error(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    assert main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("caloforge: error:")
    return err


def test_checks_name_what_is_needed_and_what_there_is(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"needs about .* of memory; .* is available"):
        check_memory(10 * available_memory() + 1, "a test")
    with pytest.raises(OutputError, match=r"needs up to .* is free"):
        check_space(tmp_path / "x.h5", 1e18, "x.h5")
    check_space(tmp_path / "x.h5", 1, "x.h5")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["sample", "--detector", "par04-siw", "--energy", "10", "-n", "2", "--seed", "-1"],
            "--seed",
        ),
        (["sample", "--detector", "par04-siw", "--energy", "10", "-n", "100000000000"], "memory"),
        (
            ["sample", "--detector", "par04-siw", "--energy", "10", "-n", "2", "--s-churn", "nan"],
            "S_churn",
        ),
        (
            ["sample", "--detector", "par04-siw", "--energy", "10", "-n", "2", "--batch-size", "0"],
            "--batch-size",
        ),
        (["evaluate", "--reference", "a.h5", "--generated", "b.h5", "--seed", "-1"], "--seed"),
        (["evaluate", "--reference", "a.h5", "--generated", "b.h5", "--limit", "0"], "--limit"),
        (["train", "--data", "a.h5", "--limit", "-5"], "--limit"),
        (["train", "--data", "a.h5", "--set", "train.seed=-1"], "train.seed"),
        (["calibrate", "--detector", "par04-siw", "--seed", "-3"], "--seed"),
        (["calibrate", "--detector", "par04-siw", "--cut", "nan"], "--cut"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    out = ["--out", str(tmp_path / "out")] if args[0] != "calibrate" else []
    assert words in _error(capsys, *args, *out)
    assert list(tmp_path.iterdir()) == []  # nothing written, no run folder left


def test_a_rejected_mesh_leaves_nothing_that_blocks_the_corrected_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim.h5"
    sim = ["simulate", "--detector", "par04-siw", "--energy", "1", "-n", "2", "--out", out]
    assert "--cells" in _error(capsys, *sim, "--cells", "45x16")
    assert list(tmp_path.iterdir()) == []  # no OUT.partial/ to refuse the corrected command
