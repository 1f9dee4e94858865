"""The shower-file contract: what a caloforge shower file holds and what its numbers mean.

One home, free of Geant4, for everything that writers (``simulate``, ``sample``, the demo,
``export``) and readers (``inspect``, ``evaluate``, training) must agree on:

- the layout (CaloChallenge's): ``incident_energies`` (N, 1) and ``showers`` (N, V) in MeV,
  ``incident_theta`` and ``incident_phi`` (N, 1) in rad;
- the format name and version, and the file attributes (built by :func:`shower_attributes`);
- the energy scale: *raw* energies deposited in the active material, as Geant4 scores them,
  or *calibrated* ones (divided by the sampling fraction, as CaloChallenge files);
- the voxel threshold rule of each energy scale (CaloChallenge's ``code/evaluate.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from caloforge import __version__

FORMAT_NAME = "caloforge-showers"
FORMAT_VERSION = 1
KEYS = ("incident_energies", "showers", "incident_theta", "incident_phi")
ENERGY_UNIT = "MeV"
ANGLE_UNIT = "rad"

THRESHOLD_RAW_MEV = 0.5e-3
"""Voxel threshold on raw active-material energies: the 0.5 keV read-out threshold."""
CALOCHALLENGE_SAMPLING_FRACTION = 0.033
"""The calibration CaloChallenge datasets 2/3 divide by (``code/evaluate.py``)."""
THRESHOLD_DATASETS_2_3_MEV = THRESHOLD_RAW_MEV / CALOCHALLENGE_SAMPLING_FRACTION
"""CaloChallenge datasets 2/3: the read-out threshold on calibrated energies (15.15 keV)."""
THRESHOLD_DATASET_1_MEV = 1.0
"""CaloChallenge dataset 1."""

# File attributes that describe a detector: a model keeps them, so that its samples carry the
# same description as the simulated files without rebuilding the detector in Geant4.
DETECTOR_ATTRS = (
    "detector_name",
    "detector",
    "detector_x0_mm",
    "detector_moliere_radius_mm",
    "sampling_fraction",
    "sampling_fraction_error",
    "sampling_fraction_source",
    "mesh",
    "physics_list",
    "production_cut_mm",
    "geant4_version",
)


def energy_scale(calibrated: bool) -> str:
    """The label of an energy scale, as reports and messages name it."""
    return "calibrated energies" if calibrated else "raw active-material energies"


def is_calibrated(attrs: Mapping[str, Any], *, caloforge_file: bool) -> bool:
    """Whether a file's voxels hold calibrated energies.

    caloforge files say so in their ``calibrated`` attribute (raw if absent); files of the
    CaloChallenge layout without it hold calibrated energies, as the CaloChallenge datasets.
    """
    value = attrs.get("calibrated")
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    return not caloforge_file


def voxel_threshold(calibrated: bool, *, dataset_1: bool = False) -> tuple[float, str]:
    """CaloChallenge's voxel threshold for an energy scale in MeV, and where it comes from.

    Args:
        calibrated: the energy scale of the voxels.
        dataset_1: the showers are in CaloChallenge dataset 1's binning (threshold 1 MeV).
    """
    if dataset_1:
        return THRESHOLD_DATASET_1_MEV, "1 MeV (CaloChallenge dataset 1)"
    if calibrated:
        return THRESHOLD_DATASETS_2_3_MEV, "15.15 keV = 0.5 keV / 0.033 (calibrated energies)"
    return THRESHOLD_RAW_MEV, "0.5 keV (raw active-material energies)"


def file_sampling_fraction(attrs: Mapping[str, Any]) -> float | None:
    """The ``sampling_fraction`` attribute if it is a finite number > 0, else None."""
    value = attrs.get("sampling_fraction")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def shower_attributes(
    *,
    detector: Mapping[str, Any],
    particle: str,
    energy_spec_gev: str,
    theta_spec_rad: str,
    phi_spec_rad: str,
    seed: int,
    n_showers: int,
    calibrated: bool,
    content: str,
    **extra: Any,
) -> dict[str, Any]:
    """The attributes of a shower file (the format name and version are added on writing).

    Args:
        detector: the detector's attributes (see :data:`DETECTOR_ATTRS`).
        particle: the incident particle (``gamma``, ``e-``, ``e+``).
        energy_spec_gev, theta_spec_rad, phi_spec_rad: the condition specs the showers were
            drawn from (see :mod:`caloforge.data.specs`).
        seed: the run seed.
        n_showers: the number of showers.
        calibrated: the energy scale of the voxels.
        content: one sentence on what the voxels hold and who made them.
        **extra: further attributes of the writer (e.g. ``generator``, ``physics_list``).
    """
    return {
        **{key: detector[key] for key in DETECTOR_ATTRS if key in detector},
        "particle": particle,
        "energy_spec_gev": energy_spec_gev,
        "theta_spec_rad": theta_spec_rad,
        "phi_spec_rad": phi_spec_rad,
        "caloforge_version": __version__,
        "seed": seed,
        "n_showers": n_showers,
        "energy_unit": ENERGY_UNIT,
        "angle_unit": ANGLE_UNIT,
        "calibrated": calibrated,
        "content": content,
        **extra,
    }
