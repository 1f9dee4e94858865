"""The detector-agnostic cylindrical scoring mesh.

The mesh is a cylinder of ``n_z`` x ``n_phi`` x ``n_r`` cells whose axis is the particle's
direction at the calorimeter entrance and whose origin is the entry point. Its extent is
Par04's (45 z-cells of 3.4 mm, 9 r-cells of 4.65 mm) for ``par04-siw`` and the same extent in
units of X0 (depth) and Moliere radius (radius) for every other detector, so a shower of any
detector lands on the same cells. Other cell counts divide the same extent: 45 x 50 x 18 gives
CaloChallenge dataset 3's 2.325 mm radial cells.

Local coordinates of a point x, with e the entry point and d the direction, as in Geant4's
Par04 (the CaloChallenge dataset 2/3 geometry): z = (x - e).d, and in the transverse plane
the basis (u, v) = (e_theta, e_phi) of the spherical unit vectors at d, i.e. the frame that
rotating by -phi about z and then -theta about y brings onto d; alpha = atan2(v-component,
u-component) in [-pi, pi). Cell indices: z // dz, r // dr, (alpha + pi) // (2 pi / n_phi).
Voxels are flattened (z, phi, r) with r fastest, as in the CaloChallenge.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from caloforge.errors import SpecError
from caloforge.geometry.binning import Binning

# Par04's mesh (CaloChallenge dataset 2), the reference for every detector.
REFERENCE_N_Z, REFERENCE_N_PHI, REFERENCE_N_R = 45, 16, 9
REFERENCE_DZ_MM, REFERENCE_DR_MM = 3.4, 4.65
REFERENCE_DETECTOR = "par04-siw"


@dataclass(frozen=True)
class MeshSpec:
    """Cell counts and sizes of the cylindrical mesh (lengths in mm)."""

    n_z: int = REFERENCE_N_Z
    n_phi: int = REFERENCE_N_PHI
    n_r: int = REFERENCE_N_R
    dz_mm: float = REFERENCE_DZ_MM
    dr_mm: float = REFERENCE_DR_MM

    def __post_init__(self) -> None:
        for name in ("n_z", "n_phi", "n_r"):
            if getattr(self, name) < 1:
                raise SpecError(f"mesh {name} must be >= 1, got {getattr(self, name)}")
        if not (self.dz_mm > 0 and self.dr_mm > 0):
            raise SpecError("mesh cell sizes must be positive")

    @classmethod
    def scaled(
        cls,
        x0_mm: float,
        moliere_radius_mm: float,
        reference_x0_mm: float,
        reference_moliere_radius_mm: float,
        counts: tuple[int, int, int] = (REFERENCE_N_Z, REFERENCE_N_PHI, REFERENCE_N_R),
    ) -> MeshSpec:
        """The reference mesh extent in units of X0 and R_M, divided into ``counts`` cells.

        Args:
            x0_mm: radiation length of the detector.
            moliere_radius_mm: Moliere radius of the detector.
            reference_x0_mm: radiation length of par04-siw.
            reference_moliere_radius_mm: Moliere radius of par04-siw.
            counts: (n_z, n_phi, n_r).
        """
        n_z, n_phi, n_r = counts
        depth = REFERENCE_N_Z * REFERENCE_DZ_MM * x0_mm / reference_x0_mm
        radius = REFERENCE_N_R * REFERENCE_DR_MM * moliere_radius_mm / reference_moliere_radius_mm
        return cls(n_z, n_phi, n_r, depth / n_z, radius / n_r)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_z, self.n_phi, self.n_r)

    @property
    def n_voxels(self) -> int:
        return self.n_z * self.n_phi * self.n_r

    def binning(self) -> Binning:
        """The mesh as a (regular) CaloChallenge-style binning, one layer per z-cell."""
        return Binning.regular(self.n_z, self.n_phi, self.n_r, self.dr_mm)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_cells(text: str) -> tuple[int, int, int]:
    """Parse mesh cell counts such as ``45x16x9`` into (n_z, n_phi, n_r)."""
    parts = text.lower().replace("\u00d7", "x").split("x")
    try:
        counts = tuple(int(p) for p in parts)
    except ValueError:
        counts = ()
    if len(counts) != 3 or min(counts) < 1:
        raise SpecError(f"must look like 45x16x9 (z x phi x r), got {text!r}", subject="cells")
    return counts


def direction(theta: float, phi: float) -> np.ndarray:
    """Unit vector of polar angle ``theta`` and azimuth ``phi`` (rad), shape (3,)."""
    return np.array(
        [math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)]
    )


def transverse_basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's transverse axes (u, v) = (e_theta, e_phi) for the unit direction ``d``."""
    z_axis = np.array([0.0, 0.0, 1.0])
    u = d * float(d @ z_axis) - z_axis  # e_theta: the beam axis projected, reversed
    norm = float(np.linalg.norm(u))
    # along the beam axis any perpendicular axis will do
    u = np.array([1.0, 0.0, 0.0]) if norm < 1e-9 else u / norm
    return u, np.cross(d, u)


def barrel_entry(theta: float, phi: float, inner_radius_mm: float) -> np.ndarray:
    """Where a particle from the origin enters a barrel of the given inner radius, shape (3,)."""
    return direction(theta, phi) * (inner_radius_mm / math.sin(theta))


def deposit(
    mesh: MeshSpec,
    points: np.ndarray,
    energies: np.ndarray,
    origin: np.ndarray,
    d: np.ndarray,
) -> np.ndarray:
    """Bin energy deposits into the mesh.

    Args:
        mesh: the mesh.
        points: global positions of the deposits in mm, shape (H, 3).
        energies: deposited energies, shape (H,).
        origin: the mesh origin (entry point), shape (3,).
        d: the mesh axis (unit direction), shape (3,).

    Returns:
        Voxel energies, shape (n_z * n_phi * n_r,), float64. Deposits outside the mesh are
        dropped.
    """
    u, v = transverse_basis(d)
    rel = points - origin  # (H, 3)
    z = rel @ d  # (H,)
    a = rel @ u
    b = rel @ v
    iz = np.floor(z / mesh.dz_mm).astype(np.int64)
    ir = np.floor(np.hypot(a, b) / mesh.dr_mm).astype(np.int64)
    alpha = np.arctan2(b, a)  # (-pi, pi]
    iphi = np.floor((alpha + math.pi) * (mesh.n_phi / (2 * math.pi))).astype(np.int64) % mesh.n_phi
    inside = (iz >= 0) & (iz < mesh.n_z) & (ir < mesh.n_r)
    flat = (iz[inside] * mesh.n_phi + iphi[inside]) * mesh.n_r + ir[inside]
    return np.bincount(flat, weights=energies[inside], minlength=mesh.n_voxels)


def voxel_points(
    mesh: MeshSpec, origin: np.ndarray, d: np.ndarray, split: tuple[int, int, int] = (1, 1, 1)
) -> np.ndarray:
    """Global positions (mm) of points inside the voxels of a mesh placed at ``origin`` along
    ``d``: each voxel cut into ``split`` = (z, phi, r) equal parts, one point at the centre of
    each part; (1, 1, 1) gives the voxel centres. Voxels come in the order of :func:`deposit`
    (which bins every point into its own voxel); a voxel's energy spread evenly over its
    points lands where the voxel lies, e.g. over the detector layers that one voxel spans.

    Args:
        mesh: the mesh.
        origin: the mesh origin (entry point), shape (3,).
        d: the mesh axis (unit direction), shape (3,).
        split: parts per voxel along z, phi and r.

    Returns:
        Shape (n_voxels * prod(split), 3), the points of voxel k at rows
        ``k * prod(split) ... (k + 1) * prod(split) - 1``.
    """
    u, v = transverse_basis(d)
    sz, sp, sr = split
    z = (np.arange(mesh.n_z * sz) + 0.5) * (mesh.dz_mm / sz)  # (Z*sz,)
    alpha = (np.arange(mesh.n_phi * sp) + 0.5) * (2 * math.pi / (mesh.n_phi * sp)) - math.pi
    r = (np.arange(mesh.n_r * sr) + 0.5) * (mesh.dr_mm / sr)  # (R*sr,)
    zz, aa, rr = np.meshgrid(z, alpha, r, indexing="ij")  # (Z*sz, P*sp, R*sr) each
    a, b = rr * np.cos(aa), rr * np.sin(aa)
    points = origin + zz[..., None] * d + a[..., None] * u + b[..., None] * v
    # (Z, sz, P, sp, R, sr, 3) -> (Z, P, R, sz, sp, sr, 3): a voxel's points together
    points = points.reshape(mesh.n_z, sz, mesh.n_phi, sp, mesh.n_r, sr, 3)
    return points.transpose(0, 2, 4, 1, 3, 5, 6).reshape(-1, 3)
