"""Geant4 in spawned processes.

Geant4 is set up once per process and cannot be torn down cleanly (its static destructors
segfault), and its multithreading deadlocks with Python callbacks; so every Geant4 job runs in
a process started with ``spawn`` that ends with :func:`hard_exit`. Failures travel back to the
parent as one line plus the traceback (logged at debug level), never as a crash of the parent.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import sys
import traceback
from typing import Any

from caloforge.config import SIMULATION
from caloforge.errors import CaloforgeError
from caloforge.geometry.detectors import DetectorSpec
from caloforge.geometry.mesh import MeshSpec

log = logging.getLogger(__name__)


def silence_output(log_path: str | os.PathLike[str] = os.devnull) -> None:
    """Send this process's stdout and stderr (Geant4's banner, tables, warnings) to a file."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def hard_exit(code: int = 0, *queues: Any) -> None:
    """End a Geant4 process without running its static destructors.

    Multiprocessing queues are flushed first: their feeder threads would die with the process.
    """
    for q in queues:
        q.close()
        q.join_thread()
    os._exit(code)


def report_failure(results: Any, exc: BaseException) -> None:
    """Send an exception to the parent and end the process."""
    results.put(("error", f"{exc.__class__.__name__}: {exc}\n{traceback.format_exc()}"))
    hard_exit(1, results)


def raise_failure(what: str, report: str) -> None:
    """In the parent: turn a worker's report into one clear error."""
    log.debug("%s failed:\n%s", what, report)
    raise CaloforgeError(f"{what} failed: {report.splitlines()[0]}")


def _child(fn: Any, args: tuple[Any, ...], results: Any) -> None:
    silence_output()
    try:
        results.put(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001 (report everything, the parent decides)
        report_failure(results, exc)
    hard_exit(0, results)


def run_in_geant4_process(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` in a spawned process and return its (picklable) result.

    Raises:
        CaloforgeError: if ``fn`` raised or the process died.
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, results), daemon=True)
    proc.start()
    try:
        while True:
            try:
                kind, value = results.get(timeout=1.0)
                break
            except queue.Empty:
                if not proc.is_alive() and results.empty():
                    raise CaloforgeError(
                        f"Geant4 process died (exit code {proc.exitcode})"
                    ) from None
    finally:
        proc.join(timeout=10)
    if kind != "ok":
        raise_failure("Geant4 process", value)
    return value


def _simulate(
    detector: DetectorSpec,
    mesh: MeshSpec,
    particle: str,
    conditions: list[Any],
    cut_mm: float,
    options: dict[str, Any],
) -> list[Any]:
    from caloforge.simulate.application import ShowerSimulator

    return ShowerSimulator(detector, mesh, particle, cut_mm, **options).simulate(conditions)


def simulate_showers(
    detector: DetectorSpec,
    mesh: MeshSpec,
    particle: str,
    conditions: list[Any],
    cut_mm: float = SIMULATION.cut_mm,
    **options: Any,
) -> list[Any]:
    """Simulate showers of the given conditions in a Geant4 process; a list of ShowerResult.

    ``options`` go to :class:`~caloforge.simulate.application.ShowerSimulator`.
    """
    return run_in_geant4_process(
        _simulate, detector, mesh, particle, list(conditions), cut_mm, options
    )
