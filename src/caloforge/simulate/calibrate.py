"""Sampling fraction of a detector, measured with Geant4.

The sampling fraction is active / (active + passive) deposited energy, every step counted,
for photons at normal incidence (theta = pi/2). It is a property of the detector, kept in the
catalog and copied into every file; files are never calibrated by their own energy sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from caloforge.config import CALIBRATION, SIMULATION
from caloforge.data.specs import PrimarySpec, ValueSpec, draw_conditions
from caloforge.errors import DataError
from caloforge.geometry.detectors import DetectorSpec
from caloforge.geometry.mesh import MeshSpec
from caloforge.simulate.process import run_in_geant4_process


@dataclass(frozen=True)
class SamplingMeasurement:
    """Sampling fraction at one energy: mean and standard error over showers."""

    energy_gev: float
    n: int
    value: float
    error: float
    active_over_incident: float  # E_active / E_inc (includes leakage)


def _measure(
    detector: DetectorSpec,
    energies_gev: tuple[float, ...],
    ns: tuple[int, ...],
    seed: int,
    cut_mm: float,
) -> list[SamplingMeasurement]:
    from caloforge.simulate.application import ShowerSimulator

    sim = ShowerSimulator(detector, MeshSpec(), "gamma", cut_mm, score_passive=True)
    out = []
    for i, (energy, n) in enumerate(zip(energies_gev, ns, strict=True)):
        spec = PrimarySpec(
            "gamma",
            ValueSpec("fixed", energy, energy),
            ValueSpec("fixed", math.pi / 2, math.pi / 2),
            ValueSpec("fixed", 0.0, 0.0),
        )
        results = sim.simulate(draw_conditions(spec, seed + i, range(n)))
        active = np.array([r.active_mev for r in results])
        passive = np.array([r.passive_mev for r in results])
        ratio = active / (active + passive)
        out.append(
            SamplingMeasurement(
                energy,
                n,
                float(ratio.mean()),
                float(ratio.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
                float(active.mean() / (energy * 1000.0)),
            )
        )
    return out


def measure_sampling_fraction(
    detector: DetectorSpec,
    energies_gev: tuple[float, ...] = CALIBRATION.energies_gev,
    n: int | tuple[int, ...] = CALIBRATION.n,
    seed: int = CALIBRATION.seed,
    cut_mm: float = SIMULATION.cut_mm,
) -> list[SamplingMeasurement]:
    """Measure the sampling fraction of ``detector`` with photons of the given energies.

    Args:
        detector: the calorimeter.
        energies_gev: photon energies.
        n: showers per energy, one number for all or one per energy.
        seed: run seed (energy i uses seed + i).
        cut_mm: production cut.
    """
    ns = (n,) * len(energies_gev) if isinstance(n, int) else tuple(n)
    return run_in_geant4_process(_measure, detector, tuple(energies_gev), ns, seed, cut_mm)


def combine(measurements: list[SamplingMeasurement]) -> tuple[float, float]:
    """Inverse-variance weighted mean and error over energies.

    Raises:
        DataError: if a measurement is not a physical sampling fraction (not finite, or not
            in (0, 1)): the showers left no energy in the active layers, or none at all.
    """
    for m in measurements:
        if not (math.isfinite(m.value) and math.isfinite(m.error) and 0 < m.value < 1):
            why = (
                "the showers deposited nothing in the calorimeter"
                if not math.isfinite(m.value)
                else "the showers deposited nothing in the active layers"
                if m.value <= 0
                else "no energy reached the passive layers"
            )
            raise DataError(
                f"the sampling fraction measured with {m.n} photons of {m.energy_gev:g} GeV is "
                f"{m.value:g}: {why}; check the detector's slices and materials"
            )
    values = np.array([m.value for m in measurements])
    errors = np.array([max(m.error, 1e-12) for m in measurements])
    w = 1.0 / errors**2
    return float((w * values).sum() / w.sum()), float(1.0 / math.sqrt(w.sum()))
