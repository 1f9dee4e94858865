"""One meaning per flag across commands: deprecated spellings, and library errors named by flag."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from caloforge.cli import _message, main
from caloforge.config import TrainConfig
from caloforge.errors import OutputError, SpecError
from caloforge.geometry.mesh import MeshSpec
from caloforge.train.distributed import Distributed
from caloforge.train.loop import train


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _warned(err: str, old: str, new: str) -> None:
    first = err.splitlines()[0]
    assert first.startswith("caloforge: warning:"), err
    assert old in first
    assert new in first
    assert "deprecated" in first


def test_inspect_calochallenge_is_a_deprecated_dataset(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.h5"
    make_caloforge_file(path, n=2, mesh=MeshSpec(n_z=5, n_phi=10, n_r=7))
    # a foreign file of 368 voxels reads as dataset 1-photons under either spelling
    with h5py.File(path, "r+") as f:
        del f.attrs["format"]
        del f["showers"]
        f["showers"] = np.ones((2, 368), dtype="f4")
    new = _run(capsys, "inspect", path, "--dataset", "1-photons")
    old = _run(capsys, "inspect", path, "--calochallenge", "1-photons")
    assert new[0] == old[0] == 0
    assert new[1] == old[1]
    assert new[2] == ""
    _warned(old[2], "--calochallenge", "--dataset")


def test_export_input_is_positional_and_the_old_flag_still_works(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_caloforge_file(tmp_path / "raw.h5", n=3)
    code, _, err = _run(capsys, "export", src, "--out", tmp_path / "a.h5")
    assert (code, err) == (0, "")
    code, _, err = _run(capsys, "export", "--calochallenge", src, "--out", tmp_path / "b.h5")
    assert code == 0
    _warned(err, "--calochallenge", "first argument")
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        np.testing.assert_array_equal(a["showers"][:], b["showers"][:])
    code, _, err = _run(capsys, "export", "--out", tmp_path / "c.h5")
    assert code == 1
    assert "give one input file" in err


def test_old_threshold_and_steps_spellings_warn_and_mean_the_new_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the options are validated before any file is read: the errors name the new flags
    code, _, err = _run(
        capsys, "evaluate", "--reference", "a", "--generated", "b", "--out", tmp_path / "r",
        "--threshold", "-1",
    )  # fmt: skip
    assert code == 1
    _warned(err, "--threshold", "--threshold-kev")
    assert err.splitlines()[1] == "caloforge: error: --threshold-kev must be a finite energy >= 0, got -1 keV"  # fmt: skip
    sample = ["sample", "--detector", "par04-siw", "--energy", "10", "-n", "1"]
    code, _, err = _run(capsys, *sample, "--steps", "0", "--out", tmp_path / "s.h5")
    assert code == 1
    _warned(err, "--steps", "--sampler-steps")
    assert err.splitlines()[1].startswith("caloforge: error: --sampler-steps must be >= 1")


def test_library_errors_name_flags_only_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    error = SpecError("must be at least 1, got 0", subject="chunk_size")
    assert str(error) == "chunk_size must be at least 1, got 0"  # the library's words
    assert _message(error, {"chunk_size": "--chunk-size"}) == "--chunk-size must be at least 1, got 0"  # fmt: skip
    refused = OutputError("x.h5 already exists", override="overwrite", action="replace it")
    assert "--" not in str(refused)
    assert _message(refused, {"overwrite": "--overwrite"}).endswith(
        "pass --overwrite to replace it"
    )
    code, _, err = _run(
        capsys, "simulate", "--detector", "par04-siw", "--energy", "10", "-n", "2",
        "--chunk-size", "0", "--out", tmp_path / "x.h5",
    )  # fmt: skip
    assert code == 1
    assert err == "caloforge: error: --chunk-size must be at least 1, got 0\n"


def test_a_batch_that_does_not_divide_over_the_processes_is_a_clear_error(tmp_path: Path) -> None:
    net = torch.nn.Linear(2, 2)
    with pytest.raises(SpecError, match="10 must divide evenly over the 3") as info:
        train(
            net,
            lambda *a, **k: torch.zeros(1),  # type: ignore[arg-type]
            torch.zeros(4, 2),
            torch.zeros(4, 1),
            torch.zeros(0, 2),
            torch.zeros(0, 1),
            TrainConfig(steps=1, batch_size=10),
            tmp_path,
            dist=Distributed(rank=0, world_size=3),
            progress=False,
        )
    assert info.value.subject == "batch_size"
