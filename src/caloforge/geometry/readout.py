"""A detector's own readout: fixed global cells of the barrel, whatever the particle.

The mesh of :mod:`caloforge.geometry.mesh` follows each particle; a detector's readout does not.
Here the cells are the calorimeter's layers (one per sampling layer, by radius) x ``n_phi``
equal azimuthal segments x z segments of ``z_cell_mm`` along the barrel, as Par04's readout
geometry has. Full and fast simulation fill them the same way: every deposit, a Geant4 step's
or a generated voxel's, lands in the cell that holds its position. An event's readout is
sparse: the indices of the cells hit and their energies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from caloforge.errors import SpecError
from caloforge.geometry.detectors import DetectorSpec

DEFAULT_N_PHI = 256  # ~7.6 mm at par04-siw's inner radius: finer than its Moliere radius
DEFAULT_Z_CELL_MM = 10.0


@dataclass(frozen=True)
class ReadoutSpec:
    """The global cells of a barrel: ``n_layers`` x ``n_phi`` x ``n_z`` (lengths in mm)."""

    inner_radius_mm: float
    layer_thickness_mm: float
    n_layers: int
    length_mm: float
    n_phi: int = DEFAULT_N_PHI
    z_cell_mm: float = DEFAULT_Z_CELL_MM

    def __post_init__(self) -> None:
        if self.n_phi < 1 or self.n_layers < 1:
            raise SpecError("a readout needs at least one layer and one phi segment")
        if not (self.z_cell_mm > 0 and self.layer_thickness_mm > 0 and self.length_mm > 0):
            raise SpecError("readout cell sizes must be positive")

    @classmethod
    def of(
        cls,
        detector: DetectorSpec,
        n_phi: int = DEFAULT_N_PHI,
        z_cell_mm: float = DEFAULT_Z_CELL_MM,
    ) -> ReadoutSpec:
        """The readout of a detector: its layers, ``n_phi`` segments, z cells of ``z_cell_mm``."""
        return cls(
            detector.inner_radius_mm,
            detector.layer_thickness_mm,
            detector.n_layers,
            detector.length_mm,
            n_phi,
            z_cell_mm,
        )

    @property
    def n_z(self) -> int:
        return math.ceil(self.length_mm / self.z_cell_mm)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_layers, self.n_phi, self.n_z)

    @property
    def n_cells(self) -> int:
        return self.n_layers * self.n_phi * self.n_z

    def cells(self, points: np.ndarray) -> np.ndarray:
        """The flat cell index of every point, -1 outside the calorimeter.

        Args:
            points: global positions in mm, shape (H, 3).

        Returns:
            Shape (H,), int64, index ``(layer * n_phi + phi) * n_z + z``.
        """
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        layer = np.floor((np.hypot(x, y) - self.inner_radius_mm) / self.layer_thickness_mm)
        phi = np.floor((np.arctan2(y, x) + math.pi) * (self.n_phi / (2 * math.pi)))
        iz = np.floor((z + self.length_mm / 2) / self.z_cell_mm)
        inside = (layer >= 0) & (layer < self.n_layers) & (iz >= 0) & (iz < self.n_z)
        flat = (layer * self.n_phi + phi % self.n_phi) * self.n_z + iz
        return np.where(inside, flat, -1).astype(np.int64)

    def fill(self, points: np.ndarray, energies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum deposits into cells: the cells hit (sorted) and their energies.

        Args:
            points: global positions in mm, shape (H, 3).
            energies: deposited energies, shape (H,).

        Returns:
            (cells, energies), shapes (C,) int64 and (C,) float64; deposits outside dropped.
        """
        index = self.cells(points)
        keep = index >= 0
        cells, inverse = np.unique(index[keep], return_inverse=True)
        summed = np.bincount(inverse, weights=energies[keep], minlength=len(cells))
        return cells, summed.astype(np.float64, copy=False)

    def layer_profile(self, cells: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Energy per layer (the longitudinal profile in the detector), shape (n_layers,)."""
        layer = cells // (self.n_phi * self.n_z)
        return np.bincount(layer, weights=energies, minlength=self.n_layers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge(
    *parts: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Sum several sparse readouts (cells, energies) of one event into one."""
    cells = np.concatenate([c for c, _ in parts]) if parts else np.zeros(0, np.int64)
    energies = np.concatenate([e for _, e in parts]) if parts else np.zeros(0)
    unique, inverse = np.unique(cells.astype(np.int64, copy=False), return_inverse=True)
    summed = np.bincount(inverse, weights=energies, minlength=len(unique))
    return unique, summed.astype(np.float64, copy=False)
