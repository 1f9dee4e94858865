"""The command line as a user runs it: simulation, determinism, resume and bad input."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from caloforge.cli import main

SIM = [
    "simulate",
    "--detector",
    "par04-siw",
    "--energy",
    "log:1:4",
    "--theta",
    "0.87:2.27",
    "--phi",
    "0:6.2832",
    "--seed",
    "3",
    "--no-progress",
]


def _read(path: Path) -> dict:
    with h5py.File(path) as f:
        data = {k: f[k][()] for k in f}
        data["attrs"] = dict(f.attrs)
    return data


def _assert_same(a: Path, b: Path) -> None:
    da, db = _read(a), _read(b)
    assert da.keys() == db.keys()
    for key in da:
        if key == "attrs":
            assert da[key].keys() == db[key].keys()
            for k in da[key]:
                assert np.array_equal(da[key][k], db[key][k]) or da[key][k] == db[key][k], k
        else:
            assert np.array_equal(da[key], db[key]), key


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w1") / "w1.h5"
    assert main([*SIM, "-n", "8", "--chunk-size", "3", "--workers", "1", "--out", str(out)]) == 0
    return out


@pytest.mark.geant4
def test_simulate_writes_calochallenge_layout(one_worker):
    d = _read(one_worker)
    assert d["incident_energies"].shape == (8, 1)
    assert d["showers"].shape == (8, 6480)
    assert d["incident_theta"].shape == d["incident_phi"].shape == (8, 1)
    assert np.all((d["incident_energies"] >= 1000) & (d["incident_energies"] < 4000))
    ratio = d["showers"].sum(axis=1) / d["incident_energies"][:, 0]
    assert np.all((ratio > 0.015) & (ratio < 0.045))  # raw active energy, ~0.03 E_inc
    attrs = d["attrs"]
    for key in (
        "detector",
        "mesh",
        "particle",
        "physics_list",
        "production_cut_mm",
        "geant4_version",
        "caloforge_version",
        "seed",
        "sampling_fraction",
    ):
        assert key in attrs
    assert attrs["detector_name"] == "par04-siw"
    assert not attrs["calibrated"]
    assert not Path(str(one_worker) + ".partial").exists()


@pytest.mark.geant4
def test_same_seed_gives_identical_showers_for_one_and_two_workers(one_worker, tmp_path):
    out = tmp_path / "w2.h5"
    assert main([*SIM, "-n", "8", "--chunk-size", "3", "--workers", "2", "--out", str(out)]) == 0
    _assert_same(one_worker, out)


# Interrupted runs: 20 showers of 10 GeV in chunks of 2 take ~2 s after the first chunk, so
# the signal sent when the first chunk appears lands well before the end.
LONG = ["simulate", "--detector", "par04-siw", "--energy", "10", "--theta", "0.87:2.27",
        "--phi", "0:6.2832", "--seed", "3", "--no-progress", "-n", "20", "--chunk-size", "2",
        "--workers", "1"]  # fmt: skip


def _start_and_signal_after_first_chunk(out: Path, sig: int) -> subprocess.Popen:
    partial = Path(str(out) + ".partial")
    cmd = [sys.executable, "-m", "caloforge.cli", *LONG, "--out", str(out)]
    # A shell that starts jobs in the background ignores SIGINT in them, and Python then keeps
    # it ignored: restore the default so that this test sees what a terminal's Ctrl-C does.
    proc = subprocess.Popen(
        cmd,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    deadline = time.time() + 120
    while not list(partial.glob("chunk-*.npz")) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, sig)
    return proc


@pytest.mark.geant4
def test_resume_after_kill_gives_the_same_file(tmp_path):
    out = tmp_path / "killed.h5"
    partial = Path(str(out) + ".partial")
    proc = _start_and_signal_after_first_chunk(out, signal.SIGKILL)
    proc.communicate(timeout=60)
    done = len(list(partial.glob("chunk-*.npz")))
    assert 1 <= done < 10, "the kill should land between the first and the last chunk"
    assert not out.exists()
    assert main([*LONG, "--out", str(out)]) == 0
    assert not partial.exists()
    reference = tmp_path / "reference.h5"
    assert main([*LONG, "--out", str(reference)]) == 0
    _assert_same(reference, out)


@pytest.mark.geant4
def test_ctrl_c_stops_cleanly_and_keeps_finished_chunks(tmp_path):
    out = tmp_path / "int.h5"
    proc = _start_and_signal_after_first_chunk(out, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted; run the same command again to resume" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert list(Path(str(out) + ".partial").glob("chunk-*.npz"))


def test_resume_with_other_arguments_is_refused(tmp_path, capsys):
    out = tmp_path / "x.h5"
    partial = Path(str(out) + ".partial")
    partial.mkdir()
    (partial / "request.json").write_text('{"n": 1}')
    assert main([*SIM, "-n", "8", "--out", str(out)]) == 1
    assert "interrupted run with other arguments" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--detector", "atlas"], "unknown detector 'atlas'"),
        (["--energy", "lots"], "--energy 'lots': expected numbers"),
        (["--energy", "0.1:10"], "outside [1, 1000] GeV"),
        (["--energy", "5000"], "outside [1, 1000] GeV"),
        (["--theta", "0.2"], "outside [0.87, 2.27] rad"),
        (["--particle", "muon"], "unknown particle 'muon'"),
        (["--out", "/nonexistent/dir/x.h5"], "directory /nonexistent/dir does not exist"),
        (["--cells", "45x16"], "--cells must look like 45x16x9"),
    ],
)
def test_bad_simulate_input_gets_one_clear_message(args, message, tmp_path, capsys):
    base = {"--detector": "par04-siw", "--energy": "10", "--out": str(tmp_path / "o.h5")}
    extra = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in base:
            base[flag] = value
        else:
            extra += [flag, value]
    argv = ["simulate", "-n", "2", "--no-progress", *extra]
    for flag, value in base.items():
        argv += [flag, value]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("caloforge: error: ")
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def _read_only_directory(path: Path) -> bool:
    """Make ``path`` unwritable, even for root (immutable flag) where chmod is not enough."""
    path.chmod(0o500)
    if os.access(path, os.W_OK):
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    return not os.access(path, os.W_OK)


@pytest.mark.parametrize("case", ["read-only", "parent is a file"])
def test_unwritable_output(tmp_path, capsys, case):
    target = tmp_path / "ro"
    if case == "parent is a file":
        target.write_text("a file")
    else:
        target.mkdir()
    try:
        if case == "read-only" and not _read_only_directory(target):
            pytest.skip("cannot make a directory read-only here")
        argv = ["simulate", "--detector", "par04-siw", "--energy", "10", "-n", "1"]
        assert main([*argv, "--out", str(target / "x.h5")]) == 1
        err = capsys.readouterr().err
        assert ("is not writable" if case == "read-only" else "is not a directory") in err
        assert "Traceback" not in err
    finally:
        subprocess.run(["chattr", "-i", str(target)], capture_output=True, check=False)
        target.chmod(0o700)


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "x.h5"
    out.write_bytes(b"precious")
    assert main([*SIM, "-n", "1", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


def test_detectors_lists_the_catalog(capsys):
    assert main(["detectors"]) == 0
    out = capsys.readouterr().out
    for name in ("par04-siw", "par04-scipb", "cld-like", "allegro-like", "pbwo4"):
        assert name in out


@pytest.mark.geant4
def test_user_detector_from_yaml_gets_its_sampling_fraction_measured(tmp_path, capsys):
    detector = tmp_path / "mine.yaml"
    detector.write_text(
        "name: my-pbsi\n"
        "inner_radius_mm: 1000\n"
        "length_mm: 3000\n"
        "n_layers: 30\n"
        "slices:\n"
        "  - {material: G4_Pb, thickness_mm: 3.0, active: false}\n"
        "  - {material: G4_Si, thickness_mm: 0.5, active: true}\n"
    )
    out = tmp_path / "mine.h5"
    argv = ["simulate", "--detector", str(detector), "--energy", "2", "-n", "2", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    attrs = _read(out)["attrs"]
    assert attrs["detector_name"] == "my-pbsi"
    assert attrs["sampling_fraction_source"].startswith("measured by caloforge simulate")
    assert 0.005 < attrs["sampling_fraction"] < 0.05
    assert main(["inspect", str(out)]) == 0
    assert "my-pbsi" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate", "--detector", "par04-siw", "--energies", "1,ten"], "--energies '1,ten'"),
        (["calibrate", "--detector", "par04-siw", "-n", "1"], "-n >= 2"),
        (["calibrate", "--detector", "nope"], "unknown detector 'nope'"),
        (["detectors", "--yaml", "nope"], "unknown detector 'nope'"),
        (
            ["simulate", "--detector", "par04-siw", "--energy", "10", "-n", "0", "--out", "x.h5"],
            "-n must be at least 1",
        ),
        (
            [
                "simulate",
                "--detector",
                "par04-siw",
                "--energy",
                "10",
                "-n",
                "1",
                "--workers",
                "0",
                "--out",
                "x.h5",
            ],
            "--workers must be at least 1",
        ),
    ],
)
def test_other_bad_arguments(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.geant4
def test_a_damaged_chunk_is_removed_and_simulated_again(tmp_path, capsys, monkeypatch):
    out = tmp_path / "d.h5"
    partial = Path(str(out) + ".partial")
    argv = [*SIM, "-n", "4", "--chunk-size", "2", "--out", str(out)]
    monkeypatch.setattr(shutil, "rmtree", lambda *_, **__: None)  # keep the finished chunks
    assert main(argv) == 0
    monkeypatch.undo()
    reference = _read(out)["showers"]
    out.unlink()
    (partial / "chunk-000001.npz").write_bytes(b"garbage")
    assert main(argv) == 1
    assert "was unreadable" in capsys.readouterr().err
    assert not out.exists()
    assert not (partial / "chunk-000001.npz").exists()
    assert main(argv) == 0
    assert np.array_equal(_read(out)["showers"], reference)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["simulate", "--detector", "par04-siw", "--energy", "10", "-n", "abc", "--out", "x.h5"],
            "simulate: argument -n: invalid int value",
        ),
        (
            ["simulate", "--energy", "10", "-n", "1", "--out", "x.h5"],
            "the following arguments are required: --detector",
        ),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_1(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("caloforge: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_theta_that_misses_the_barrel_is_refused_even_when_forced(tmp_path, capsys):
    argv = ["simulate", "--detector", "par04-siw", "--energy", "10", "-n", "1",
            "--theta", "0.3", "--allow-out-of-range", "--out", str(tmp_path / "x.h5")]  # fmt: skip
    assert main(argv) == 1
    assert "beyond its half-length 1000 mm" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_on_the_same_output_is_refused(tmp_path, capsys):
    import fcntl

    out = tmp_path / "x.h5"
    partial = Path(str(out) + ".partial")
    assert main([*SIM, "-n", "1", "--out", str(out), "--workers", "0"]) == 1  # nothing started
    capsys.readouterr()
    partial.mkdir()
    with (partial / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main([*SIM, "-n", "1", "--out", str(out)]) == 1
    assert "another caloforge run is writing" in capsys.readouterr().err
