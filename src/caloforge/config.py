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


@dataclass(frozen=True)
class ClassifierConfig:
    """The classifier network and its training."""

    hidden: int = 256  # units per hidden layer (CaloChallenge: 2048)
    hidden_layers: int = 2  # hidden layers of the MLP
    epochs: int = 30  # training epochs; the best one on the test set is kept (CaloChallenge: 50)
    batch_size: int = 1000  # CaloChallenge's; smaller when the training set is small
    lr: float = 2e-4  # Adam learning rate
    repeats: int = 3  # independent trainings averaged (CaloChallenge: 10)
    float64: bool = False  # CaloChallenge trains in float64
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / test / validation

    def describe(self) -> str:
        """One line for the report."""
        dtype = "float64" if self.float64 else "float32"
        return (
            f"MLP {self.hidden_layers} x {self.hidden} LeakyReLU, {self.epochs} epochs, "
            f"batch {self.batch_size}, Adam lr {self.lr:g}, {dtype}, {self.repeats} repeats"
        )


PUBLISHED_CLASSIFIER = ClassifierConfig(hidden=2048, epochs=50, repeats=10, float64=True)
"""The network and training of the published CaloChallenge results."""


@dataclass(frozen=True)
class EvaluationConfig:
    """``caloforge evaluate``: what to compute and how."""

    threshold_mev: float | None = None  # voxel threshold; None: CaloChallenge's for the scale
    classifier: ClassifierConfig = ClassifierConfig()
    low_level: bool = True  # train the low-level (voxel) classifier too
    seed: int = 0  # seeds the reference split, classifiers, bootstraps, isolation forest
    n_boot: int = 50  # bootstrap resamples for separation-power errors
    theta_bins: int = 3  # equal theta bins over the reference's range (continuous sets)
    max_points: int = 20  # a reference with at most this many distinct conditions is "fixed"
    min_bin: int = 50  # condition bins with fewer showers per sample are skipped
    min_baseline: int = 50  # the reference is split for the baseline if each half has this many
    limit: int | None = None  # read only the first showers of each file
    n_anomalies: int = 6  # most anomalous generated showers drawn
    plots: bool = True  # draw the PNGs (metrics.json and index.html are always written)


SIMULATION = SimulationDefaults()
CALIBRATION = CalibrationDefaults()
