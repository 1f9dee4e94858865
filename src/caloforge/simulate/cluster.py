"""Simulation chunks as Dask tasks (``caloforge simulate --dask``).

Every missing chunk of a run is one task. A Dask worker process holds one Geant4 instance
(Geant4 is set up once per process and cannot be torn down), built by its first task and driven
from one dedicated thread, whichever of the worker's threads runs the task. The task returns
the chunk's rows; the client writes them into the run's partial directory, so the workers need
no shared file system, and the file is assembled by :func:`~caloforge.simulate.runner.run` as for
local workers: the same seed and number of showers give the same file.

Faults are Dask's to handle: a task whose worker dies is run again elsewhere (up to the
scheduler's ``distributed.scheduler.allowed-failures``); a chunk that still fails is named in
one error, after every other chunk has been written.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caloforge import __version__
from caloforge.errors import CaloforgeError, SpecError
from caloforge.simulate.chunks import chunk_path, simulate_chunk, write_chunk

log = logging.getLogger(__name__)
LOCAL = re.compile(r"local:(\d+)")
CONNECT_TIMEOUT_S = 30  # to reach a scheduler given by its address


@dataclass(frozen=True)
class DaskTarget:
    """Where the tasks run: a scheduler address, or a local cluster of ``local_workers``."""

    address: str | None = None
    local_workers: int = 0

    @classmethod
    def parse(cls, text: str) -> DaskTarget:
        """``local:N`` (N single-threaded worker processes here) or a scheduler address."""
        text = text.strip()
        if m := LOCAL.fullmatch(text):
            n = int(m.group(1))
            if n < 1:
                raise SpecError(
                    f"{text!r}: a local cluster needs at least 1 worker", subject="dask"
                )
            return cls(local_workers=n)
        if not text or text.startswith("local"):
            raise SpecError(
                f"{text!r} is neither local:N nor a scheduler address (tcp://host:8786)",
                subject="dask",
            )
        return cls(address=text)

    def __str__(self) -> str:
        return self.address or f"local:{self.local_workers}"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise CaloforgeError(
            "simulating on a Dask cluster needs dask.distributed: pip install 'caloforge[dask]'"
        ) from None
    if not log.isEnabledFor(logging.DEBUG):
        # Dask's own progress talk (workers starting, connections) only with --verbose; set
        # after the import, which configures Dask's loggers
        logging.getLogger("distributed").setLevel(logging.WARNING)
    return distributed


@contextmanager
def dask_client(target: DaskTarget) -> Iterator[Any]:
    """A ``distributed.Client`` of the target; a local cluster lives as long as the client."""
    distributed = _distributed()
    if target.address is None:
        import dask

        # The worker's statistical profiler takes the GIL every 10 ms, which Geant4 holds
        # between its Python callbacks: it cost 9-20 % of the throughput
        # (benchmarks/dask_simulate.py). The workers get this configuration from their nanny;
        # their logging is set up on import, from the environment.
        quiet = {} if log.isEnabledFor(logging.DEBUG) else {"DASK_LOGGING__DISTRIBUTED": "warning"}
        # A worker holds only the chunk it runs: when Geant4 kills it, no other chunk is
        # blamed (a chunk is given up after its workers died `allowed-failures` + 1 times)
        settings = {
            "distributed.worker.profile.enabled": False,
            "distributed.scheduler.worker-saturation": 1.0,
        }
        with dask.config.set(settings):
            # one Geant4 per process: single-threaded workers, no memory-based spilling or pausing
            cluster = distributed.LocalCluster(
                n_workers=target.local_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                memory_limit=0,
                env=quiet,
            )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(target.address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise CaloforgeError(
            f"cannot reach the Dask scheduler at {target.address}: {exc}"
        ) from None
    with client:
        yield client


def _check_workers(client: Any) -> int:
    """Raise unless the workers run this caloforge version; the number of workers."""
    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # noqa: BLE001 (a worker without caloforge fails to unpickle)
        raise CaloforgeError(
            f"the Dask workers cannot run caloforge ({exc.__class__.__name__}: {exc}); "
            "install the same caloforge on them"
        ) from None
    other = {v for v in versions.values() if v != __version__}
    if other:
        raise CaloforgeError(
            f"the Dask workers run caloforge {', '.join(sorted(other))}, this is {__version__}: "
            "the showers would differ; install the same version on them"
        )
    return len(versions)


def _worker_version() -> str:
    return __version__


# --------------------------------------------------------------------------------------------
# Worker side: one Geant4 per process, driven from one thread


class _Geant4:
    """The process's Geant4 instance, its setup and the thread that owns it."""

    lock = threading.Lock()
    executor: ThreadPoolExecutor | None = None
    setup: tuple[Any, ...] | None = None
    sim: Any = None


def _log_path() -> str:
    try:
        from distributed import get_worker

        return str(Path(get_worker().local_directory) / "geant4.log")
    except (ImportError, ValueError):
        return os.devnull


def _in_geant4_thread(request: Any, k: int) -> dict[str, np.ndarray]:
    from caloforge.simulate.application import ShowerSimulator
    from caloforge.simulate.process import silence_output

    setup = (request.detector, request.mesh, request.primary.particle, request.cut_mm)
    if _Geant4.sim is None:
        silence_output(_log_path())
        _Geant4.sim = ShowerSimulator(*setup)
        _Geant4.setup = setup
    elif setup != _Geant4.setup:
        raise CaloforgeError(
            f"this Dask worker already holds Geant4 for {_Geant4.setup[0].name} "  # type: ignore[index]
            "(Geant4 is set up once per process): give every run fresh workers "
            "(e.g. client.restart())"
        )
    return simulate_chunk(_Geant4.sim, request, k)


def simulate_chunk_task(request: Any, k: int) -> dict[str, np.ndarray]:
    """The Dask task: the rows of chunk ``k`` of ``request``, simulated in this worker."""
    with _Geant4.lock:
        if _Geant4.executor is None:
            _Geant4.executor = ThreadPoolExecutor(1, thread_name_prefix="geant4")
    return _Geant4.executor.submit(_in_geant4_thread, request, k).result()


# --------------------------------------------------------------------------------------------
# Client side


def simulate_with_dask(
    request: Any,
    partial: Path,
    client: Any,
    progress: Callable[[int, int], None] | None = None,
    task: Callable[[Any, int], dict[str, np.ndarray]] = simulate_chunk_task,
) -> None:
    """Simulate every chunk of ``request`` missing from ``partial`` on a Dask cluster.

    Args:
        request: the run (a :class:`~caloforge.simulate.runner.RunRequest`).
        partial: the run's partial directory; finished chunks are written there as they come.
        client: a ``distributed.Client`` (from :func:`dask_client`).
        progress: called as ``progress(done_showers, total)`` after every chunk.
        task: the function a worker runs for one chunk (tests replace it).

    Raises:
        CaloforgeError: naming the chunks that failed, once every other chunk is written.
    """
    todo = [k for k in range(request.n_chunks) if not chunk_path(partial, k).exists()]
    done = request.n - sum(len(request.chunk_range(k)) for k in todo)
    if progress:
        progress(done, request.n)
    if not todo:
        return
    distributed = _distributed()
    n_workers = _check_workers(client)
    log.info("Dask cluster: %d workers, dashboard %s", n_workers, client.dashboard_link)
    futures = {client.submit(task, request, k, pure=False): k for k in todo}
    failed: dict[int, str] = {}
    for future in distributed.as_completed(futures):
        k = futures.pop(future)
        try:
            rows = future.result()
        except Exception as exc:
            failed[k] = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
            log.debug("chunk %d failed", k, exc_info=True)
            continue
        write_chunk(partial, k, rows)
        done += len(request.chunk_range(k))
        if progress:
            progress(done, request.n)
    if failed:
        first = min(failed)
        rng = request.chunk_range(first)
        raise CaloforgeError(
            f"{len(failed)} chunk(s) failed on the Dask cluster, first chunk {first} (showers "
            f"{rng.start}-{rng.stop - 1}): {failed[first]}; the {request.n_chunks - len(failed)} "
            f"other chunks are kept in {partial}: run the same command again to retry"
        )
