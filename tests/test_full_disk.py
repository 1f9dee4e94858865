"""A full disk, as each command meets it: one clear line, exit code 1, nothing half-written.

The disk is made "full" for a child process by a file-size limit (RLIMIT_FSIZE, with SIGXFSZ
ignored): every write past the limit fails with EFBIG, as a full disk fails with ENOSPC,
through the same code paths (HDF5, numpy, safetensors, matplotlib, json).
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from caloforge.fastsim.demo import reference_path
from caloforge.geometry.mesh import MeshSpec


def _caloforge(*args: str | Path, limit: int = 150_000) -> subprocess.CompletedProcess[str]:
    """The command in a child whose files may not exceed ``limit`` bytes."""

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "caloforge", *map(str, args)],
        preexec_fn=limited,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _fails_cleanly(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, result.stderr
    progress = ("evaluate: ", "training set: ")  # log lines
    lines = [x for x in result.stderr.strip().splitlines() if not x.startswith(progress)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("caloforge: error: cannot write")
    assert "File too large" in lines[0]


def _nothing_left(directory: Path, allowed: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    left = {p.name for p in directory.iterdir()} - set(allowed)
    assert left == set(), left


@pytest.fixture(scope="module")
def reference() -> Path:
    return reference_path()


def test_export(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _fails_cleanly(_caloforge("export", reference, "--out", out / "cc.h5"))
    _nothing_left(out)


def test_sample(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = _caloforge(
        "sample", "--detector", "par04-siw", "--energy", "10", "-n", "200",
        "--sampler-steps", "1", "--out", out / "s.h5", "--no-progress",
    )  # fmt: skip
    _fails_cleanly(result)
    _nothing_left(out)


def test_evaluate(tmp_path: Path, make_caloforge_file) -> None:  # type: ignore[no-untyped-def]
    small = MeshSpec(n_z=6, n_phi=4, n_r=3)
    data = make_caloforge_file(tmp_path / "g4.h5", n=120, mesh=small)
    out = tmp_path / "out"
    out.mkdir()
    result = _caloforge(
        "evaluate", "--reference", data, "--generated", data, "--out", out / "report",
        "--classifier-epochs", "1", "--classifier-repeats", "1", "--no-low-level",
        "--no-plots", "--no-progress", limit=2_000,
    )  # fmt: skip
    _fails_cleanly(result)
    _nothing_left(out)


@pytest.mark.geant4
def test_simulate_keeps_its_finished_work_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "sim.h5"
    args = ["simulate", "--detector", "par04-siw", "--energy", "1", "-n", "40"]
    result = _caloforge(*args, "--chunk-size", "20", "--out", out, "--no-progress")
    assert result.returncode == 1, result.stderr
    assert "File too large" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    partial = out.with_name(out.name + ".partial")
    assert not [p for p in partial.iterdir() if p.name.startswith(".")]  # no temporaries
    # with room again, the same command finishes the run
    done = subprocess.run(
        [sys.executable, "-m", "caloforge", *args, "--chunk-size", "20", "--out", str(out),
         "--no-progress"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.exists()
    assert not partial.exists()


def test_train_keeps_its_checkpoints_and_resumes(tmp_path: Path, make_caloforge_file) -> None:  # type: ignore[no-untyped-def]
    small = MeshSpec(n_z=6, n_phi=4, n_r=3)
    data = make_caloforge_file(
        tmp_path / "g4.h5",
        n=60,
        mesh=small,
        attrs={"energy_spec_gev": "log:1:1000", "theta_spec_rad": "1.0:2.0"},
    )
    run = tmp_path / "run"
    args = [
        "train", "--data", data, "--out", run, "--steps", "4", "--batch-size", "8",
        "--set", "model.embed_dim=16", "--set", "model.depth=1", "--set", "model.num_heads=2",
        "--set", "train.checkpoint_every=2", "--no-progress",
    ]  # fmt: skip
    _fails_cleanly(_caloforge(*args, limit=20_000))
    assert not [p for p in run.rglob(".*") if p.name != ".lock"]  # no temporaries left
    done = subprocess.run(
        [sys.executable, "-m", "caloforge", *map(str, args), "--resume"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
