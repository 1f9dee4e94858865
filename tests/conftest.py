"""Shared fixtures: small shower files built in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from caloforge.data.io import ShowerWriter
from caloforge.geometry.mesh import MeshSpec


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Small tensors are fastest on one thread, and do not stall when the cores are busy."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def caloforge_attrs(
    n: int, mesh: MeshSpec, sampling_fraction: float, *, calibrated: bool = False
) -> dict[str, Any]:
    """Attributes like those ``caloforge.simulate.runner.file_attributes`` writes."""
    return {
        "detector_name": "par04-siw",
        "detector": {"name": "par04-siw", "n_layers": 90},
        "detector_x0_mm": 6.3,
        "detector_moliere_radius_mm": 15.4,
        "sampling_fraction": sampling_fraction,
        "sampling_fraction_error": 0.0002,
        "sampling_fraction_source": "caloforge calibrate --detector par04-siw (test)",
        "mesh": mesh.to_dict(),
        "particle": "gamma",
        "energy_spec_gev": "log:1:1000",
        "theta_spec_rad": "1.0:2.0",
        "phi_spec_rad": "0",
        "physics_list": "FTFP_BERT",
        "production_cut_mm": 0.7,
        "geant4_version": "11.2 (test)",
        "caloforge_version": "test",
        "seed": 1,
        "n_showers": n,
        "energy_unit": "MeV",
        "angle_unit": "rad",
        "calibrated": calibrated,
        "content": "energy deposited in the active material, as scored by Geant4 (raw)",
    }


def write_caloforge_file(
    path: str | Path,
    n: int = 8,
    mesh: MeshSpec | None = None,
    sampling_fraction: float = 0.03,
    *,
    showers: np.ndarray | None = None,
    energies: np.ndarray | None = None,
    theta: np.ndarray | None = None,
    phi: np.ndarray | None = None,
    calibrated: bool = False,
    attrs: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """Write a caloforge shower file with ShowerWriter and return its path.

    Defaults: energies log-uniform in [1, 1000] GeV (in MeV), theta uniform in [1, 2] rad, phi
    uniform in [-pi, pi); showers with ~20% non-zero voxels whose sum is exactly
    ``sampling_fraction * E_inc`` (``E_inc`` if ``calibrated``) before the float32 cast.
    ``attrs`` override the default attributes; a key mapped to None is removed.
    """
    mesh = mesh or MeshSpec()
    rng = np.random.default_rng(seed)
    if energies is None:
        energies = 10.0 ** rng.uniform(3.0, 6.0, n)
    energies = np.asarray(energies, dtype=np.float64)
    n = len(energies)
    if showers is None:
        weights = rng.exponential(size=(n, mesh.n_voxels)) * (rng.random((n, mesh.n_voxels)) < 0.2)
        weights[:, 0] += 1e-3  # no empty shower
        scale = 1.0 if calibrated else sampling_fraction
        showers = weights / weights.sum(axis=1, keepdims=True) * (scale * energies)[:, None]
    theta = rng.uniform(1.0, 2.0, n) if theta is None else np.asarray(theta)
    phi = rng.uniform(-np.pi, np.pi, n) if phi is None else np.asarray(phi)
    file_attrs = caloforge_attrs(n, mesh, sampling_fraction, calibrated=calibrated)
    for key, value in (attrs or {}).items():
        if value is None:
            file_attrs.pop(key, None)
        else:
            file_attrs[key] = value
    with ShowerWriter(path, n, mesh.n_voxels, file_attrs) as writer:
        writer.write(energies, np.asarray(showers, dtype=np.float32), theta, phi)
    return Path(path)


@pytest.fixture(scope="session")
def make_caloforge_file() -> Callable[..., Path]:
    """The :func:`write_caloforge_file` helper, as a fixture."""
    return write_caloforge_file
