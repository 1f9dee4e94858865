"""The in-memory representation of a set of showers, whatever file they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from caloforge.errors import DataError
from caloforge.geometry.binning import Binning


@dataclass
class ShowerData:
    """Showers with their conditions and the binning of their voxels.

    Attributes:
        energies: incident energies in MeV, shape (N,).
        showers: voxel energies in MeV, shape (N, V), voxels in CaloChallenge order
            (layer, alpha, r) with r fastest.
        binning: the geometry of the V voxels.
        theta: polar angle of the incident particle in rad, shape (N,), or None if unknown.
        phi: azimuth of the incident particle in rad, shape (N,), or None if unknown.
        attrs: file-level metadata (detector, mesh, particle, calibration, ...).
    """

    energies: np.ndarray
    showers: np.ndarray
    binning: Binning
    theta: np.ndarray | None = None
    phi: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.energies)
        if self.energies.ndim != 1:
            raise DataError(f"incident energies must have shape (N,), got {self.energies.shape}")
        if self.showers.shape != (n, self.binning.n_voxels):
            raise DataError(
                f"showers have shape {self.showers.shape}, expected ({n}, {self.binning.n_voxels})"
            )
        for name in ("theta", "phi"):
            value = getattr(self, name)
            if value is not None and value.shape != (n,):
                raise DataError(f"{name} has shape {value.shape}, expected ({n},)")

    def __len__(self) -> int:
        return len(self.energies)
