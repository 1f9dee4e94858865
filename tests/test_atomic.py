"""Atomic outputs: complete at the final path, or nothing there and nothing left behind."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from caloforge.atomic import (
    atomic_directory,
    atomic_file,
    check_output,
    write_json_atomic,
    write_text_atomic,
)
from caloforge.errors import OutputError


def test_a_file_appears_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "a.npz"
    with atomic_file(out) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.suffix == ".npz"  # writers that infer the format keep it
        np.savez(tmp, x=np.arange(3))
        assert not out.exists()
    assert np.load(out)["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    write_json_atomic(out, {"old": 1})

    def fail_halfway() -> None:
        with atomic_file(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_halfway()
    assert json.loads(out.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_file_system_errors_become_one_output_error(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    with pytest.raises(OutputError, match=r"cannot write .*a.txt: No space left"), atomic_file(out):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match="cannot write"):
        write_text_atomic(tmp_path / "missing" / "a.txt", "x")


def test_a_directory_replaces_the_old_one_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with atomic_directory(out) as work:
        (work / "a").write_text("1")
    with pytest.raises(OutputError, match="already exists"):
        check_output(out, directory=True)

    def fail_halfway() -> None:
        with atomic_directory(out, overwrite=True) as work:
            (work / "b").write_text("2")
            raise KeyError

    with pytest.raises(KeyError):
        fail_halfway()
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    with atomic_directory(out, overwrite=True) as work:
        (work / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]


def test_outputs_are_checked_before_the_work(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="is not a directory"):
        check_output(tmp_path / "f" / "x.h5")
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "no" / "x.h5")
    with pytest.raises(OutputError, match="it is a directory"):
        check_output(tmp_path)
    with pytest.raises(OutputError, match="already exists") as info:
        check_output(tmp_path / "f")
    assert info.value.override == "overwrite"
    check_output(tmp_path / "f", overwrite=True)
    check_output(tmp_path / "new" / "deeper" / "report", directory=True)  # parents get made


def test_an_atomic_output_has_the_permissions_of_a_new_file(tmp_path: Path) -> None:
    import stat

    mask = os.umask(0o027)
    try:
        with atomic_file(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
        assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o640
        with atomic_directory(tmp_path / "report") as work:
            (work / "a").write_text("x")
        assert stat.S_IMODE((tmp_path / "report").stat().st_mode) == 0o750
    finally:
        os.umask(mask)
