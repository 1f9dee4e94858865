"""The chunks of a simulation run: what a worker (local process or Dask task) simulates and
writes, ``OUT.partial/chunk-XXXXXX.npz`` (see :mod:`caloforge.simulate.runner`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.atomic import atomic_file, write_text_atomic
from caloforge.data.specs import draw_conditions
from caloforge.errors import OutputError, SpecError

REQUEST_FILE = "request.json"


def open_partial(out: Path, identity: dict[str, Any]) -> Path:
    """The folder of a run's finished chunks, ``OUT.partial``: created with the run's identity
    (its arguments, as JSON), or reopened to resume when it holds the same run.

    Raises:
        SpecError: the folder holds an interrupted run with other arguments.
        OutputError: the folder cannot be created.
    """
    partial = out.with_name(out.name + ".partial")
    identity = json.loads(json.dumps(identity))  # as it reads back: tuples become lists
    request_file = partial / REQUEST_FILE
    if request_file.exists():
        try:
            previous = json.loads(request_file.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != identity:
            raise SpecError(
                f"{partial} holds an interrupted run with other arguments; run again with the "
                "same arguments to resume it, or delete that directory to start afresh"
            )
        return partial
    try:
        partial.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write next to {out}: {exc.strerror}") from None
    write_text_atomic(request_file, json.dumps(identity, indent=1, sort_keys=True))
    return partial


def chunk_path(partial: Path, k: int) -> Path:
    """Where chunk ``k`` of a run is kept until the file is assembled."""
    return partial / f"chunk-{k:06d}.npz"


def simulate_chunk(sim: Any, request: Any, k: int) -> dict[str, np.ndarray]:
    """The rows of chunk ``k`` of ``request`` (a :class:`~caloforge.simulate.runner.RunRequest`),
    simulated by ``sim`` (a ShowerSimulator of the request)."""
    conditions = draw_conditions(request.primary, request.seed, request.chunk_range(k))
    out = sim.simulate(conditions)
    return {
        "index": np.array([r.index for r in out]),
        "energy": np.array([c.energy_mev for c in conditions]),
        "theta": np.array([c.theta for c in conditions]),
        "phi": np.array([c.phi for c in conditions]),
        "showers": np.stack([r.voxels for r in out]),
    }


def write_chunk(partial: Path, k: int, rows: dict[str, np.ndarray]) -> None:
    """Write chunk ``k`` into the partial directory, atomically."""
    with atomic_file(chunk_path(partial, k)) as tmp:
        np.savez(tmp, **rows)  # type: ignore[arg-type]  # the stub mistakes **rows for allow_pickle
