"""Invertible preprocessing of showers and conditions for the generative models.

Fitted on the training set and saved with the model (:meth:`Preprocessing.to_dict`), so that
sampling undoes exactly what training did.

Showers (voxel energies ``E_v`` in MeV, incident energy ``E_inc`` in MeV)::

    u = E_v / E_inc                      # dimensionless, shower by shower
    y = (ln(u + eps) - mean) / std       # log transform, then one global normalisation

with ``eps`` a fixed floor below the smallest deposit of interest (zeros map to
``(ln eps - mean) / std``) and ``mean``, ``std`` the mean and standard deviation of
``ln(u + eps)`` over every voxel of the training set. The inverse is
``E_v = clip(exp(y std + mean) - eps, 0, 1) E_inc`` (a voxel holds at most the incident energy).
The largest ``y`` of the training set (``max_value``) is kept too: the sampler keeps its
denoised estimates within ``[(ln eps - mean) / std, max_value]``, the range the data span.

Conditions, one row per shower::

    [ (ln E_inc - ln E_min) / (ln E_max - ln E_min),   # energy: linear in ln E over the range
      (theta - theta_min) / (theta_max - theta_min),   # theta: linear over the range
      sin(phi), cos(phi),                              # phi: periodic
      one-hot detector (K + 1 slots) ]                 # slot K is kept free for adaptation

The ranges are those of the training specification; asking for a condition outside them is an
error unless extrapolation is allowed explicitly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from caloforge.data.factorized import FractionTransform, LayerTransform
from caloforge.errors import SpecError

DEFAULT_EPS = 1e-9
"""Floor of ``u = E_v / E_inc``: below the 0.5 keV threshold at 100 GeV (5e-9)."""
FIT_CHUNK = 1000
"""Showers per chunk when fitting the shower transform."""
CHECK_TOLERANCE = 1e-4
"""Relative slack of the energy range and absolute slack (rad) of the theta range: the
specifications in the files' attributes are rounded (e.g. "1.5708" for pi/2)."""


@dataclass(frozen=True)
class ShowerTransform:
    """``y = (ln(E_v / E_inc + eps) - mean) / std`` and its inverse."""

    mean: float
    std: float
    eps: float = DEFAULT_EPS
    max_value: float | None = None  # largest y of the training set (None: not recorded)

    @classmethod
    def fit(
        cls, showers: np.ndarray, energies: np.ndarray, eps: float = DEFAULT_EPS
    ) -> ShowerTransform:
        """Fit mean and std of ``ln(u + eps)`` over every voxel of ``showers`` (N, V), and the
        largest normalised value."""
        energies = energies.reshape(-1, 1)
        total = total_sq = 0.0
        largest = -math.inf
        for start in range(0, len(showers), FIT_CHUNK):  # chunks: no float64 copy of the set
            chunk = slice(start, start + FIT_CHUNK)
            logs = np.log(np.clip(showers[chunk], 0.0, None) / energies[chunk] + eps)
            total += float(logs.sum())
            total_sq += float(np.square(logs).sum())
            largest = max(largest, float(logs.max(initial=-math.inf)))
        n = showers.size
        mean = total / n if n else math.nan
        std = math.sqrt(max(total_sq / n - mean * mean, 0.0)) if n else math.nan
        if not math.isfinite(std) or std <= 1e-9 * max(1.0, abs(mean)):  # rounding of a constant
            raise SpecError("cannot fit the shower transform: the showers are constant")
        return cls(mean, std, eps, (largest - mean) / std)

    def forward(self, showers: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Voxel energies (N, V) in MeV -> normalised values (N, V), float32.

        Negative voxels (none from Geant4) are taken as 0.
        """
        u = np.clip(showers, 0.0, None) / energies.reshape(-1, 1)  # (N, V)
        return ((np.log(u + self.eps) - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Normalised values (N, V) -> voxel energies (N, V) in MeV, never negative."""
        y = np.asarray(values, dtype=np.float64) * self.std + self.mean
        u = np.exp(np.minimum(y, 1.0)) - self.eps  # no overflow
        # a voxel never holds more than the incident energy: bound what a model may produce
        return np.clip(u, 0.0, 1.0) * energies.reshape(-1, 1)

    @property
    def zero_level(self) -> float:
        """The normalised value of an empty voxel."""
        return (math.log(self.eps) - self.mean) / self.std


@dataclass(frozen=True)
class ConditionTransform:
    """Energy, theta, phi and detector -> the condition vector of the model, and back.

    Attributes:
        energy_range_mev: (E_min, E_max) of the training specification.
        theta_range: (theta_min, theta_max) in rad of the training specification.
        detectors: names of the K detectors trained on; slot K (the last) is spare.
    """

    energy_range_mev: tuple[float, float]
    theta_range: tuple[float, float]
    detectors: tuple[str, ...]

    def __post_init__(self) -> None:
        lo, hi = self.energy_range_mev
        if not (0 < lo <= hi < math.inf):
            raise SpecError(
                f"energy range must satisfy 0 < min <= max, got {self.energy_range_mev}"
            )
        t_lo, t_hi = self.theta_range
        if not (0 <= t_lo <= t_hi <= math.pi):
            raise SpecError(f"theta range must lie in [0, pi], got {self.theta_range}")
        if not self.detectors or len(set(self.detectors)) != len(self.detectors):
            raise SpecError(f"detectors must be distinct names, got {self.detectors}")
        object.__setattr__(self, "energy_range_mev", (float(lo), float(hi)))
        object.__setattr__(self, "theta_range", (float(t_lo), float(t_hi)))
        object.__setattr__(self, "detectors", tuple(self.detectors))

    @property
    def n_slots(self) -> int:
        """One-hot width: the K training detectors plus one spare slot."""
        return len(self.detectors) + 1

    @property
    def n_cond(self) -> int:
        """Width of the condition vector."""
        return 4 + self.n_slots

    @property
    def spare_slot(self) -> int:
        """The slot reserved for adapting to a detector the model has never seen."""
        return len(self.detectors)

    def slot(self, detector: str, *, allow_spare: bool = False) -> int:
        """The one-hot slot of a detector name.

        Raises:
            SpecError: for a detector the model was not trained on (unless ``allow_spare``,
                which returns the spare slot).
        """
        if detector in self.detectors:
            return self.detectors.index(detector)
        if allow_spare:
            return self.spare_slot
        raise SpecError(
            f"the model was not trained on detector {detector!r} (it knows "
            f"{', '.join(self.detectors)}); adapt it to the new detector first"
        )

    def check(
        self, energies: np.ndarray, theta: np.ndarray, *, allow_extrapolation: bool = False
    ) -> None:
        """Refuse conditions outside the training ranges (energies in MeV, theta in rad).

        ``allow_extrapolation`` lifts the training ranges, never the physical ones
        (energies > 0, theta in [0, pi]).
        """
        if len(energies) == 0:
            return
        if not (np.isfinite(energies).all() and energies.min() > 0):
            raise SpecError("energies must be finite and positive")
        if not (np.isfinite(theta).all() and theta.min() >= 0 and theta.max() <= math.pi):
            raise SpecError("theta must lie in [0, pi] rad")
        if allow_extrapolation:
            return
        lo, hi = self.energy_range_mev
        tol = CHECK_TOLERANCE
        if energies.min() < lo * (1 - tol) or energies.max() > hi * (1 + tol):
            raise SpecError(
                f"energies {energies.min() / 1e3:.6g}-{energies.max() / 1e3:.6g} GeV leave the "
                f"trained range {lo / 1e3:.6g}-{hi / 1e3:.6g} GeV",
                override="allow_extrapolation",
                action="force it",
            )
        t_lo, t_hi = self.theta_range
        if theta.min() < t_lo - tol or theta.max() > t_hi + tol:
            raise SpecError(
                f"theta {theta.min():.6g}-{theta.max():.6g} rad leaves the trained range "
                f"{t_lo:.6g}-{t_hi:.6g} rad",
                override="allow_extrapolation",
                action="force it",
            )

    def forward(
        self, energies: np.ndarray, theta: np.ndarray, phi: np.ndarray, slots: np.ndarray
    ) -> np.ndarray:
        """Conditions of N showers -> (N, 4 + K + 1) float32.

        Args:
            energies: incident energies in MeV, (N,).
            theta, phi: angles in rad, (N,).
            slots: one-hot slot of each shower, (N,) integers.
        """
        lo, hi = (math.log(v) for v in self.energy_range_mev)
        t_lo, t_hi = self.theta_range
        n = len(energies)
        out = np.zeros((n, self.n_cond), dtype=np.float32)
        out[:, 0] = (np.log(energies) - lo) / (hi - lo) if hi > lo else 0.0
        out[:, 1] = (theta - t_lo) / (t_hi - t_lo) if t_hi > t_lo else 0.0
        out[:, 2] = np.sin(phi)
        out[:, 3] = np.cos(phi)
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        if slots.min(initial=0) < 0 or slots.max(initial=0) >= self.n_slots:
            raise SpecError(f"detector slots must lie in [0, {self.n_slots}), got {slots}")
        out[np.arange(n), 4 + slots] = 1.0
        return out

    def inverse(self, cond: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(N, 4 + K + 1) -> energies (MeV), theta, phi in [0, 2 pi), slots."""
        lo, hi = (math.log(v) for v in self.energy_range_mev)
        t_lo, t_hi = self.theta_range
        cond = np.asarray(cond, dtype=np.float64)
        energies = np.exp(cond[:, 0] * (hi - lo) + lo)
        theta = cond[:, 1] * (t_hi - t_lo) + t_lo
        phi = np.mod(np.arctan2(cond[:, 2], cond[:, 3]), 2 * np.pi)
        return energies, theta, phi, np.argmax(cond[:, 4:], axis=1)


@dataclass(frozen=True)
class Preprocessing:
    """Everything a model needs to go between physical showers and its tensors.

    The ``calodit`` family transforms whole showers (``shower``); the factorised family
    transforms layer energies (``layers``) and within-layer fractions (``fractions``,
    :mod:`caloforge.data.factorized`).
    """

    shower: ShowerTransform | None
    conditions: ConditionTransform
    mesh_shape: tuple[int, int, int]  # (Z, A, R) of the showers
    layers: LayerTransform | None = None
    fractions: FractionTransform | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (saved beside the weights)."""
        return {
            **({"shower": asdict(self.shower)} if self.shower else {}),
            "conditions": {
                "energy_range_mev": list(self.conditions.energy_range_mev),
                "theta_range": list(self.conditions.theta_range),
                "detectors": list(self.conditions.detectors),
            },
            "mesh_shape": list(self.mesh_shape),
            **({"layers": self.layers.to_dict()} if self.layers else {}),
            **({"fractions": self.fractions.to_dict()} if self.fractions else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`.

        Raises:
            SpecError: for a malformed description.
        """
        try:
            cond = data["conditions"]
            return cls(
                ShowerTransform(**data["shower"]) if "shower" in data else None,
                ConditionTransform(
                    tuple(cond["energy_range_mev"]),
                    tuple(cond["theta_range"]),
                    tuple(cond["detectors"]),
                ),
                tuple(int(v) for v in data["mesh_shape"]),  # type: ignore[arg-type]
                LayerTransform.from_dict(data["layers"]) if "layers" in data else None,
                FractionTransform.from_dict(data["fractions"]) if "fractions" in data else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"malformed preprocessing description: {exc}") from None
