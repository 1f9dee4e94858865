"""Defaults of caloforge, in one place.

Library functions and the command line take their defaults from these frozen dataclasses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SimulationDefaults:
    """``caloforge simulate`` and the Geant4 application."""

    particle: str = "gamma"
    theta: str = repr(math.pi / 2)  # rad: normal incidence on the barrel
    phi: str = "0"  # rad
    seed: int = 1
    workers: int = 1
    cut_mm: float = 0.7  # production cut, as Par04
    cells: str = "45x16x9"  # mesh z x phi x r, CaloChallenge dataset 2
    chunk_size: int = 50  # showers per resumable chunk


@dataclass(frozen=True)
class CalibrationDefaults:
    """``caloforge calibrate``: photons at normal incidence."""

    energies_gev: tuple[float, ...] = (1.0, 10.0, 100.0)
    n: int = 20  # photons per energy
    seed: int = 1
    # A user detector without a sampling fraction gets one measured at run start with:
    run_start_energy_gev: float = 10.0
    run_start_n: int = 20


SIMULATION = SimulationDefaults()
CALIBRATION = CalibrationDefaults()
