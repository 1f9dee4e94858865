"""``caloforge simulate --dask``: the same showers as local workers, through faults."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from caloforge.cli import main
from caloforge.errors import CaloforgeError

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from caloforge.simulate import cluster
from caloforge.simulate.chunks import chunk_path
from caloforge.simulate.cluster import DaskTarget, dask_client, simulate_with_dask
from caloforge.simulate.runner import RunRequest

# the fake tasks below travel to the worker processes by value, not by module name
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SIM = ["simulate", "--detector", "par04-siw", "--energy", "log:1:4", "--theta", "0.87:2.27",
       "--phi", "0:6.2832", "--seed", "3", "--no-progress", "-n", "8", "--chunk-size", "3"]  # fmt: skip
# 24 showers of 10 GeV in chunks of 2, ~0.2 s per chunk and worker: a signal sent when the
# first chunk appears lands well before the end
LONG = ["simulate", "--detector", "par04-siw", "--energy", "10", "--theta", "0.87:2.27",
        "--phi", "0:6.2832", "--seed", "5", "--no-progress", "-n", "24", "--chunk-size", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "reference.h5"
    assert main([*LONG, "--workers", "2", "--out", str(out)]) == 0
    return out


def _start(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "caloforge.cli", *LONG, "--dask", "local:2", "--out", str(out)]
    return subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE, text=True)


def _wait_for_first_chunk(out: Path) -> int:
    partial = Path(str(out) + ".partial")
    deadline = time.time() + 120
    while not list(partial.glob("chunk-*.npz")) and time.time() < deadline:
        time.sleep(0.02)
    return len(list(partial.glob("chunk-*.npz")))


@pytest.mark.geant4
def test_local_cluster_gives_the_file_of_two_local_workers(tmp_path):
    workers, dask = tmp_path / "workers.h5", tmp_path / "dask.h5"
    assert main([*SIM, "--workers", "2", "--out", str(workers)]) == 0
    assert main([*SIM, "--dask", "local:2", "--out", str(dask)]) == 0
    assert filecmp.cmp(workers, dask, shallow=False), "the files differ byte for byte"
    assert not Path(str(dask) + ".partial").exists()


@pytest.mark.geant4
def test_a_worker_killed_mid_run_still_gives_the_same_file(tmp_path, long_reference):
    import psutil

    out = tmp_path / "killed-worker.h5"
    proc = _start(out)
    assert _wait_for_first_chunk(out) < 12
    # the worker processes are spawned children of the client (the resource tracker is not one)
    workers = [
        p
        for p in psutil.Process(proc.pid).children(recursive=True)
        if "spawn_main" in " ".join(p.cmdline())
    ]
    assert len(workers) == 2
    workers[0].kill()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert filecmp.cmp(long_reference, out, shallow=False)


@pytest.mark.geant4
def test_a_killed_client_resumes_from_its_finished_chunks(tmp_path, long_reference):
    out = tmp_path / "killed-client.h5"
    proc = _start(out)
    _wait_for_first_chunk(out)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    kept = len(list(Path(str(out) + ".partial").glob("chunk-*.npz")))
    assert 1 <= kept < 12, "the kill should land between the first and the last chunk"
    assert not out.exists()
    assert main([*LONG, "--dask", "local:2", "--out", str(out)]) == 0
    assert filecmp.cmp(long_reference, out, shallow=False)


# --------------------------------------------------------------------------------------------
# Failing chunks, without Geant4: fake tasks that fail or kill their worker on chunk 1


def _rows(request: RunRequest, k: int) -> dict[str, np.ndarray]:
    rows = request.chunk_range(k)
    zeros = np.zeros(len(rows))
    return {"index": np.asarray(rows), "energy": zeros, "theta": zeros, "phi": zeros,
            "showers": np.zeros((len(rows), 4), np.float32)}  # fmt: skip


def _raises_on_chunk_one(request: RunRequest, k: int) -> dict[str, np.ndarray]:
    if k == 1:
        raise RuntimeError("G4Exception: fell over")
    return _rows(request, k)


def _dies_on_chunk_one(request: RunRequest, k: int) -> dict[str, np.ndarray]:
    if k == 1:
        os._exit(1)  # as a Geant4 abort or segfault ends the worker process
    return _rows(request, k)


@pytest.fixture
def request_of_five_chunks() -> RunRequest:
    from caloforge.data.specs import PrimarySpec, parse_spec
    from caloforge.geometry.detectors import load_detector
    from caloforge.geometry.mesh import parse_cells
    from caloforge.simulate.materials import detector_mesh

    spec = load_detector("par04-siw")
    mesh, _ = detector_mesh(spec, parse_cells("45x16x9"))
    primary = PrimarySpec(
        "gamma", parse_spec("10", "energy"), parse_spec("1.5", "theta"), parse_spec("0", "phi")
    )
    return RunRequest(spec, mesh, primary, n=10, seed=1, chunk_size=2)


@pytest.mark.parametrize("task", [_raises_on_chunk_one, _dies_on_chunk_one])
def test_a_failing_chunk_is_named_and_the_others_are_kept(tmp_path, request_of_five_chunks, task):
    import dask

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        dask_client(DaskTarget(local_workers=2)) as client,
        pytest.raises(CaloforgeError, match=r"first chunk 1 \(showers 2-3\)") as info,
    ):
        simulate_with_dask(request_of_five_chunks, tmp_path, client, task=task)
    assert "the 4 other chunks are kept" in str(info.value)
    kept = sorted(p.name for p in tmp_path.glob("chunk-*.npz"))
    assert kept == [chunk_path(tmp_path, k).name for k in (0, 2, 3, 4)]


# --------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("local:0", "a local cluster needs at least 1 worker"),
        ("local:two", "neither local:N nor a scheduler address"),
        ("", "neither local:N nor a scheduler address"),
    ],
)
def test_bad_dask_targets_are_refused_before_anything_starts(tmp_path, capsys, value, message):
    out = tmp_path / "x.h5"
    assert main([*SIM, "--dask", value, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "--dask" in err
    assert not out.exists()
    assert not Path(str(out) + ".partial").exists()


def test_workers_and_dask_exclude_each_other(tmp_path, capsys):
    out = tmp_path / "x.h5"
    assert_exit = pytest.raises(SystemExit)
    with assert_exit as info:
        main([*SIM, "--workers", "2", "--dask", "local:2", "--out", str(out)])
    assert info.value.code == 1
    assert "not allowed with argument" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    out = tmp_path / "x.h5"
    assert main([*SIM, "--dask", "tcp://127.0.0.1:9", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_without_dask_installed_the_message_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    out = tmp_path / "x.h5"
    assert main([*SIM, "--dask", "local:2", "--out", str(out)]) == 1
    assert "pip install 'caloforge[dask]'" in capsys.readouterr().err
    assert not out.exists()


def test_a_worker_holding_another_detector_refuses_the_chunk(request_of_five_chunks, monkeypatch):
    from dataclasses import replace

    other = replace(request_of_five_chunks.detector, name="other-calo")
    monkeypatch.setattr(cluster._Geant4, "sim", object())
    monkeypatch.setattr(cluster._Geant4, "setup", (other, None, "gamma", 0.7))
    with pytest.raises(CaloforgeError, match="already holds Geant4 for other-calo"):
        cluster._in_geant4_thread(request_of_five_chunks, 0)
