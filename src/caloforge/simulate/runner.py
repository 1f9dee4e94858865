"""Sharded, resumable simulation runs.

A run of N showers is cut into chunks of ``chunk_size`` showers. Worker processes (``spawn``,
one single-threaded Geant4 each) take chunk indices from a queue, simulate them and write each
finished chunk atomically to ``<out>.partial/chunk-XXXXXX.npz``. The resolved request is kept
beside the chunks in ``request.json``; run again with the same arguments after a kill, only
missing chunks are simulated. When every chunk exists they are merged in order into the
output file, which appears atomically; the partial directory is then removed. Shower i always
gets the conditions and Geant4 seed of stream (seed, i), so the result does not depend on the
number of workers or on interruptions.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import multiprocessing as mp
import os
import queue
import shutil
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from caloforge import __version__
from caloforge.atomic import check_output
from caloforge.config import SIMULATION
from caloforge.data.contract import shower_attributes
from caloforge.data.specs import PrimarySpec
from caloforge.errors import CaloforgeError, OutputError, SpecError
from caloforge.geometry.detectors import DetectorSpec
from caloforge.geometry.mesh import MeshSpec
from caloforge.resources import check_space
from caloforge.simulate.chunks import (
    chunk_path,
    open_partial,
    simulate_chunk,
    write_chunk,
)
from caloforge.simulate.cluster import DaskTarget, dask_client, simulate_with_dask
from caloforge.simulate.process import hard_exit, raise_failure, report_failure, silence_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """Everything that determines the showers of a run."""

    detector: DetectorSpec
    mesh: MeshSpec
    primary: PrimarySpec
    n: int
    seed: int
    cut_mm: float = SIMULATION.cut_mm
    chunk_size: int = SIMULATION.chunk_size

    def __post_init__(self) -> None:
        if self.n < 1:
            raise SpecError(f"must be at least 1, got {self.n}", subject="n")
        if self.chunk_size < 1:
            raise SpecError(f"must be at least 1, got {self.chunk_size}", subject="chunk_size")
        if not self.cut_mm > 0:
            raise SpecError(f"must be positive, got {self.cut_mm} mm", subject="cut")
        if not 0 <= self.seed < 2**63:
            raise SpecError(f"must be a non-negative integer, got {self.seed}", subject="seed")
        half_length = self.detector.length_mm / 2
        for theta in (self.primary.theta.low, self.primary.theta.high):
            z = self.detector.inner_radius_mm / math.tan(theta)
            if abs(z) >= half_length:
                raise SpecError(
                    f"{self.primary.theta}: at theta = {theta:g} rad the particle enters "
                    f"{self.detector.name} at z = {z:.0f} mm, beyond its half-length "
                    f"{half_length:g} mm",
                    subject="theta",
                )

    @staticmethod
    def check_workers(workers: int) -> None:
        """Raise SpecError unless ``workers`` >= 1."""
        if workers < 1:
            raise SpecError(f"must be at least 1, got {workers}", subject="workers")

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    def chunk_range(self, k: int) -> range:
        return range(k * self.chunk_size, min(self.n, (k + 1) * self.chunk_size))

    def identity(self) -> dict[str, Any]:
        """JSON-able description compared on resume (a different request cannot resume)."""
        d = asdict(self)
        # the per-shower random streams come from numpy's generators
        d["versions"] = {"caloforge": __version__, "numpy": np.__version__}
        return json.loads(json.dumps(d))


# --------------------------------------------------------------------------------------------
# Worker side (runs in a spawned process that owns one Geant4 instance)


def _worker_main(request: RunRequest, partial: Path, tasks: Any, results: Any, parent: int) -> None:
    from caloforge.simulate.application import ShowerSimulator

    silence_output(partial / f"geant4-{os.getpid()}.log")
    try:
        sim = ShowerSimulator(
            request.detector, request.mesh, request.primary.particle, request.cut_mm
        )

        def on_shower() -> None:
            if os.getppid() != parent:  # the parent was killed: stop, finished chunks are safe
                hard_exit(1)
            results.put(("tick", 1))

        sim.on_shower = on_shower
        while (k := tasks.get()) is not None:
            write_chunk(partial, k, simulate_chunk(sim, request, k))
            results.put(("done", k))
    except BaseException as exc:  # noqa: BLE001 (report everything, the parent decides)
        report_failure(results, exc)
    hard_exit(0, results)


# --------------------------------------------------------------------------------------------
# Parent side


def simulate_to_chunks(
    request: RunRequest,
    partial: Path,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Simulate every chunk of ``request`` missing from the partial directory.

    Args:
        request: the run.
        partial: the run's partial directory (from :func:`~caloforge.simulate.chunks.open_partial`).
        workers: number of Geant4 processes.
        progress: called as ``progress(done_showers, total)`` after every shower.

    Raises:
        CaloforgeError: if a worker fails.
    """
    todo = [k for k in range(request.n_chunks) if not chunk_path(partial, k).exists()]
    done = request.n - sum(len(request.chunk_range(k)) for k in todo)
    if progress:
        progress(done, request.n)
    if not todo:
        return
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    n_workers = max(1, min(workers, len(todo)))
    for k in todo:
        tasks.put(k)
    for _ in range(n_workers):
        tasks.put(None)
    procs = [
        ctx.Process(
            target=_worker_main, args=(request, partial, tasks, results, os.getpid()), daemon=True
        )
        for _ in range(n_workers)
    ]
    for p in procs:
        p.start()
    remaining = set(todo)
    try:
        while remaining:
            try:
                kind, value = results.get(timeout=1.0)
            except queue.Empty:
                crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if crashed or not any(p.is_alive() for p in procs):
                    # a worker may have died after writing its chunk but before saying so
                    remaining = {k for k in remaining if not chunk_path(partial, k).exists()}
                    if remaining and results.empty():
                        raise CaloforgeError(
                            f"a Geant4 worker stopped unexpectedly (exit codes {crashed}); "
                            "run the same command again to resume"
                        ) from None
                continue
            if kind == "tick":
                done += value
                if progress:
                    progress(done, request.n)
            elif kind == "done":
                remaining.discard(value)
            else:
                raise_failure("a Geant4 worker", value)
    finally:
        for p in procs:
            if remaining:
                p.terminate()
            p.join(timeout=10)


def merge_chunks(request: RunRequest, partial: Path, out: Path, attrs: dict[str, Any]) -> None:
    """Write the chunks, in order, into ``out`` (atomically) and remove ``partial``."""
    from caloforge.data.io import ShowerWriter

    with ShowerWriter(out, request.n, request.mesh.n_voxels, attrs, tmp_dir=partial) as writer:
        for k in range(request.n_chunks):
            path = chunk_path(partial, k)
            try:
                with np.load(path) as chunk:
                    rows = {key: chunk[key] for key in ("index", "energy", "showers", "theta", "phi")}  # fmt: skip
                if not np.array_equal(rows["index"], np.asarray(request.chunk_range(k))):
                    raise ValueError("showers of another chunk")
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                path.unlink(missing_ok=True)  # simulated again by the next run
                raise OutputError(
                    f"{path} was unreadable ({exc.__class__.__name__}) and was removed; "
                    "run the same command again to simulate it anew"
                ) from None
            writer.write(rows["energy"], rows["showers"], rows["theta"], rows["phi"])
    shutil.rmtree(partial, ignore_errors=True)


class Progress:
    """A tqdm bar fed by :func:`simulate_to_chunks` (showers/s and ETA)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="shower", disable=not enabled, smoothing=0.05)
        self.resumed = False

    def __call__(self, done: int, _total: int) -> None:
        if not self.resumed:  # showers of an earlier, interrupted run do not count in the rate
            self.resumed = True
            self.bar.n = self.bar.last_print_n = done
            self.bar.refresh()
            return
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def file_attributes(request: RunRequest, x0_mm: float, moliere_radius_mm: float) -> dict[str, Any]:
    """The attributes of a simulated file (:func:`~caloforge.data.contract.shower_attributes`)."""
    from caloforge.simulate.application import PHYSICS_LIST
    from caloforge.simulate.g4 import geant4_version

    sf = request.detector.sampling_fraction
    detector = {
        "detector_name": request.detector.name,
        "detector": request.detector.to_dict(),
        "detector_x0_mm": x0_mm,
        "detector_moliere_radius_mm": moliere_radius_mm,
        "sampling_fraction": sf.value if sf else float("nan"),
        "sampling_fraction_error": sf.error if sf else float("nan"),
        "sampling_fraction_source": sf.measured_with if sf else "unknown",
        "mesh": request.mesh.to_dict(),
        "physics_list": PHYSICS_LIST,
        "production_cut_mm": request.cut_mm,
        "geant4_version": geant4_version(),
    }
    return shower_attributes(
        detector=detector,
        particle=request.primary.particle,
        energy_spec_gev=str(request.primary.energy),
        theta_spec_rad=str(request.primary.theta),
        phi_spec_rad=str(request.primary.phi),
        seed=request.seed,
        n_showers=request.n,
        calibrated=False,
        content="energy deposited in the active material, as scored by Geant4 (raw)",
    )


@contextmanager
def _exclusive(partial: Path, out: Path) -> Iterator[None]:
    """Hold a lock on the partial directory: one run per output at a time."""
    try:
        handle = (partial / "lock").open("w")
    except OSError as exc:
        raise OutputError(f"cannot write next to {out}: {exc.strerror}") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"another caloforge run is writing {out} right now") from None
        yield


def with_sampling_fraction(request: RunRequest) -> RunRequest:
    """The request, its detector given a sampling fraction measured now if it has none."""
    from caloforge.config import CALIBRATION
    from caloforge.geometry.detectors import SamplingFraction
    from caloforge.simulate.calibrate import combine, measure_sampling_fraction

    if request.detector.sampling_fraction is not None:
        return request
    energy, n = CALIBRATION.run_start_energy_gev, CALIBRATION.run_start_n
    log.info("%s has no sampling fraction: measuring it (%d photons of %g GeV)", request.detector.name, n, energy)  # fmt: skip
    value, error = combine(
        measure_sampling_fraction(request.detector, (energy,), n, CALIBRATION.seed, request.cut_mm)
    )
    how = f"measured by caloforge simulate: {n} photons of {energy:g} GeV"
    detector = replace(request.detector, sampling_fraction=SamplingFraction(value, error, how))
    return replace(request, detector=detector)


def run(
    request: RunRequest,
    out: Path,
    *,
    x0_mm: float,
    moliere_radius_mm: float,
    workers: int = 1,
    dask: DaskTarget | None = None,
    show_progress: bool = True,
) -> None:
    """Simulate ``request`` into ``out``, resuming an interrupted run with the same request.

    The chunks are simulated by ``workers`` local processes, or by a Dask cluster if ``dask``
    is given. A detector without a sampling fraction gets one measured once all showers
    exist, just before the file is written (its showers do not depend on it). The output and
    the workers are checked by the caller (:func:`simulate_file`), before the detector is built.
    """
    with ExitStack() as stack:
        # the cluster first: a scheduler that cannot be reached leaves nothing behind
        client = stack.enter_context(dask_client(dask)) if dask is not None else None
        partial = open_partial(out, request.identity())
        stack.enter_context(_exclusive(partial, out))
        bar = Progress(request.n, enabled=show_progress)
        try:
            if client is None:
                simulate_to_chunks(request, partial, workers, bar)
            else:
                simulate_with_dask(request, partial, client, bar)
        finally:
            bar.close()
        request = with_sampling_fraction(request)
        attrs = file_attributes(request, x0_mm, moliere_radius_mm)
        merge_chunks(request, partial, out, attrs)


def simulate_file(
    detector: str,
    primary: PrimarySpec,
    n: int,
    out: str | Path,
    *,
    seed: int = SIMULATION.seed,
    cut_mm: float = SIMULATION.cut_mm,
    cells: str = SIMULATION.cells,
    chunk_size: int = SIMULATION.chunk_size,
    workers: int = SIMULATION.workers,
    dask: str | None = None,
    allow_out_of_range: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
) -> Path:
    """``caloforge simulate``: Geant4 showers of a detector into a shower file, resumably.

    Everything that can be checked is checked before Geant4 starts: the conditions and their
    ranges, the mesh, the workers and the output; then the detector is built.

    Args:
        detector: a built-in detector name or a YAML file.
        primary: the particle and the specs of its energy and angles.
        n: number of showers.
        out: the output file.
        seed: the run seed.
        cut_mm: production cut.
        cells: mesh cells ``z x phi x r``.
        chunk_size: showers per resumable chunk.
        workers: parallel Geant4 processes.
        dask: run the chunks on a Dask cluster instead: a scheduler address, or ``local:N``
            for a local cluster of N single-threaded worker processes.
        allow_out_of_range: allow energies and theta outside the supported ranges.
        overwrite: replace an existing ``out``.
        show_progress: show a progress bar.

    Returns:
        ``out``.
    """
    from caloforge.geometry.detectors import load_detector
    from caloforge.geometry.mesh import parse_cells
    from caloforge.simulate.materials import detector_mesh

    out = Path(out)
    primary.check_ranges(allow_out_of_range=allow_out_of_range)
    mesh_cells = parse_cells(cells)
    RunRequest.check_workers(workers)
    target = DaskTarget.parse(dask) if dask is not None else None
    check_output(out, overwrite=overwrite)
    spec = load_detector(detector)
    mesh, props = detector_mesh(spec, mesh_cells)
    request = RunRequest(spec, mesh, primary, n, seed, cut_mm, chunk_size)
    # the chunks are stored uncompressed until merged; the file is at most as big again
    check_space(out, 2.0 * n * mesh.n_voxels * 4 + 1e6, f"{out} ({n} showers and their chunks)")
    run(
        request,
        out,
        x0_mm=props.x0_mm,
        moliere_radius_mm=props.moliere_radius_mm,
        workers=workers,
        dask=target,
        show_progress=show_progress,
    )
    return out
