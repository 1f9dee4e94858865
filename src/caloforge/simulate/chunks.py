"""The chunks of a simulation run: what a worker (local process or Dask task) simulates and
writes, ``OUT.partial/chunk-XXXXXX.npz`` (see :mod:`caloforge.simulate.runner`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from caloforge.atomic import atomic_file
from caloforge.data.specs import draw_conditions


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
