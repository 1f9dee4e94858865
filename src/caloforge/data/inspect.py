"""Summarise and validate a shower file without loading it: ``caloforge inspect``.

Statistics are accumulated chunk by chunk, so memory stays at one chunk whatever the file size.
Layout errors (missing datasets, wrong shapes, a voxel count that fits no binning) raise
:class:`~caloforge.errors.DataError`; invalid content (NaN or inf, negative voxel energies,
non-positive incident energies) is collected in ``Report.problems`` with the showers affected.

Sparsity as in the CaloChallenge evaluation (``code/HighLevelFeatures.py`` of
``CaloChallenge/homepage``): ``1 - mean(voxel > threshold)``, the fraction of voxels at or
below the threshold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.data.contract import (
    KEYS,
    THRESHOLD_DATASET_1_MEV,
    THRESHOLD_DATASETS_2_3_MEV,
    file_sampling_fraction,
)
from caloforge.data.io import iter_chunks
from caloforge.data.readers import describe_file
from caloforge.errors import SpecError
from caloforge.geometry.binning import Binning

log = logging.getLogger(__name__)
_DATASET_PARTICLE = {"1-photons": "gamma", "1-pions": "pi+", "2": "e-", "3": "e-"}


@dataclass
class Report:
    """What :func:`inspect_file` found in a shower file.

    Attributes:
        path: the file.
        kind: ``"caloforge"``, ``"calochallenge-<dataset>"`` or ``"custom binning"``.
        n: number of showers N.
        n_voxels: voxels per shower V.
        binning: the binning the voxels were read with.
        detector_name: detector of a caloforge file, else None.
        particle: incident particle, None if unknown.
        calibrated: whether voxels were divided by the sampling fraction (None: unknown).
        sampling_fraction: the file's sampling fraction attribute if valid, else None.
        energy_range_gev: (min, max) of the finite incident energies in GeV, or None.
        theta_range: (min, max) of the finite polar angles in rad, None without angles.
        phi_range: (min, max) of the finite azimuths in rad, None without angles.
        response_mean: mean of E_vis / E_inc (voxel sum over incident energy) over the showers
            with finite data and E_inc > 0; NaN if there are none.
        response_std: its standard deviation (ddof=0).
        zero_fraction: mean over showers of the fraction of voxels exactly 0.
        sparsity: fraction of voxels at or below ``threshold_mev`` (None without threshold).
        threshold_mev: the threshold used for ``sparsity``, in the file's energy units.
        threshold_note: where that threshold comes from.
        problems: one sentence per kind of invalid content, with the number of showers.
    """

    path: Path
    kind: str
    n: int
    n_voxels: int
    binning: Binning
    detector_name: str | None
    particle: str | None
    calibrated: bool | None
    sampling_fraction: float | None
    energy_range_gev: tuple[float, float] | None
    theta_range: tuple[float, float] | None
    phi_range: tuple[float, float] | None
    response_mean: float
    response_std: float
    zero_fraction: float
    sparsity: float | None
    threshold_mev: float | None
    threshold_note: str
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def _showers(count: int) -> str:
    return f"{count} shower has" if count == 1 else f"{count} showers have"


class _Accumulator:
    """Running statistics and problem counts over chunks of showers."""

    def __init__(self, threshold_mev: float | None) -> None:
        self.threshold_mev = threshold_mev
        self.nonfinite = dict.fromkeys(KEYS, 0)  # showers with NaN/inf, per dataset
        self.negative, self.lowest_voxel = 0, math.inf
        self.nonpositive, self.lowest_energy = 0, math.inf
        self.ranges: dict[str, tuple[float, float]] = {}
        self.count, self.mean, self.m2 = 0, 0.0, 0.0  # of E_vis / E_inc
        self.rows, self.zero_sum, self.sparse_sum = 0, 0.0, 0.0

    def _range(self, key: str, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = self.ranges.get(key, (math.inf, -math.inf))
            self.ranges[key] = (min(lo, float(values.min())), max(hi, float(values.max())))

    def add(self, energies: np.ndarray, showers: np.ndarray, angles: dict[str, Any]) -> None:
        """Account for one chunk: energies (k,), showers (k, V), angles name -> (k,) or None."""
        finite_e = np.isfinite(energies)  # (k,)
        finite_v = np.isfinite(showers).all(axis=1)  # (k,)
        self.nonfinite["incident_energies"] += int((~finite_e).sum())
        self.nonfinite["showers"] += int((~finite_v).sum())
        for key, values in angles.items():
            if values is not None:
                self.nonfinite[key] += int((~np.isfinite(values)).sum())
                self._range(key, values)
        self._range("energy_gev", energies / 1000.0)

        negative = (showers < 0).any(axis=1)  # (k,); NaN compares False
        if negative.any():
            self.negative += int(negative.sum())
            self.lowest_voxel = min(self.lowest_voxel, float(np.nanmin(showers[negative])))
        nonpositive = finite_e & (energies <= 0)
        if nonpositive.any():
            self.nonpositive += int(nonpositive.sum())
            self.lowest_energy = min(self.lowest_energy, float(energies[nonpositive].min()))

        rows = showers if finite_v.all() else showers[finite_v]
        self.rows += len(rows)
        self.zero_sum += float((rows == 0).sum()) / showers.shape[1]
        if self.threshold_mev is not None:
            self.sparse_sum += float((rows <= self.threshold_mev).sum()) / showers.shape[1]

        good = finite_v & finite_e & (energies > 0)
        response = showers.sum(axis=1, dtype=np.float64)[good] / energies[good]  # (k_good,)
        if response.size:  # Chan et al.'s pairwise update of (count, mean, M2)
            n_b, mean_b = response.size, float(response.mean())
            total, delta = self.count + n_b, mean_b - self.mean
            self.m2 += float(((response - mean_b) ** 2).sum()) + delta**2 * self.count * n_b / total
            self.mean += delta * n_b / total
            self.count = total

    def problems(self) -> list[str]:
        """One sentence per kind of invalid content found."""
        out = [f"{_showers(c)} NaN or inf in {key}" for key, c in self.nonfinite.items() if c]
        if self.negative:
            out.append(
                f"{_showers(self.negative)} negative voxel energies "
                f"(lowest {self.lowest_voxel:.4g} MeV)"
            )
        if self.nonpositive:
            out.append(
                f"{_showers(self.nonpositive)} a non-positive incident energy "
                f"(lowest {self.lowest_energy:.4g} MeV)"
            )
        return out


def _threshold(
    kind: str, calibrated: bool | None, sampling_fraction: float | None, attrs: Mapping[str, Any]
) -> tuple[float | None, str]:
    """The sparsity threshold in the file's energy units, and where it comes from."""
    if kind in ("calochallenge-1-photons", "calochallenge-1-pions"):
        return THRESHOLD_DATASET_1_MEV, "1 MeV (CaloChallenge dataset 1)"
    base = f"{THRESHOLD_DATASETS_2_3_MEV * 1e3:.2f} keV"
    if calibrated is False:  # raw active-material energies: scale the threshold down
        if sampling_fraction is None:
            return None, "no threshold: raw energies and no valid sampling fraction"
        value = THRESHOLD_DATASETS_2_3_MEV * sampling_fraction
        note = f"CaloChallenge datasets 2/3: {base} x sampling fraction {sampling_fraction:.4g}"
        return value, f"{value * 1e3:.4g} keV ({note})"
    exported = attrs.get("threshold_mev")
    if kind == "caloforge" and isinstance(exported, int | float) and exported >= 0:
        return float(exported), f"{exported * 1e3:.4g} keV (the file's export threshold)"
    return THRESHOLD_DATASETS_2_3_MEV, f"{base} (CaloChallenge datasets 2/3)"


def inspect_file(
    path: str | Path,
    dataset: str | None = None,
    binning_xml: str | Path | None = None,
    chunk_size: int = 1000,
) -> Report:
    """Summarise and validate a shower file, streaming it in chunks.

    A caloforge file (attribute ``format == "caloforge-showers"``) is read on the mesh of its
    attributes; ``dataset`` and ``binning_xml`` are then ignored. Any other file is read with
    ``binning_xml`` if given, else as CaloChallenge ``dataset``, else as the CaloChallenge
    dataset that its voxel count identifies.

    Args:
        path: the HDF5 file.
        dataset: CaloChallenge dataset, ``"1-photons"``, ``"1-pions"``, ``"2"`` or ``"3"``.
        binning_xml: a CaloChallenge-style binning XML file.
        chunk_size: showers read at a time.

    Returns:
        The report; ``report.problems`` lists invalid content.

    Raises:
        DataError: for a missing, unreadable, corrupt or foreign file, wrong shapes, or a
            voxel count that fits no binning.
        SpecError: for an unknown dataset name or chunk_size < 1.
    """
    path = Path(path)
    if chunk_size < 1:
        raise SpecError(f"chunk_size must be >= 1, got {chunk_size}")
    info = describe_file(path, dataset, binning_xml)
    attrs, kind, binning, n, n_voxels = info.attrs, info.kind, info.binning, info.n, info.n_voxels
    is_caloforge = info.is_caloforge
    calibrated: bool | None
    if is_caloforge:
        calibrated = bool(attrs.get("calibrated", False))
    else:
        calibrated = attrs.get("calibrated", True if kind != "custom binning" else None)
        calibrated = calibrated if isinstance(calibrated, bool) else None
    sampling_fraction = file_sampling_fraction(attrs)
    threshold_mev, threshold_note = _threshold(kind, calibrated, sampling_fraction, attrs)

    acc = _Accumulator(threshold_mev)
    for energies, showers, theta, phi in iter_chunks(path, chunk_size):
        acc.add(energies, showers, {"incident_theta": theta, "incident_phi": phi})
    log.debug("inspected %d showers of %s", n, path)

    problems = ([] if n else ["the file holds no showers"]) + acc.problems()
    if is_caloforge and attrs.get("n_showers", n) != n:
        problems.append(f"the attribute n_showers is {attrs['n_showers']} but the file holds {n}")
    particle = attrs.get("particle")
    if not isinstance(particle, str):
        particle = _DATASET_PARTICLE.get(kind.removeprefix("calochallenge-"))
    rows = acc.rows or math.nan  # NaN statistics for a file without clean showers
    return Report(
        path=path,
        kind=kind,
        n=n,
        n_voxels=n_voxels,
        binning=binning,
        detector_name=attrs.get("detector_name") if is_caloforge else None,
        particle=particle,
        calibrated=calibrated,
        sampling_fraction=sampling_fraction,
        energy_range_gev=acc.ranges.get("energy_gev"),
        theta_range=acc.ranges.get("incident_theta"),
        phi_range=acc.ranges.get("incident_phi"),
        response_mean=acc.mean if acc.count else math.nan,
        response_std=math.sqrt(acc.m2 / acc.count) if acc.count else math.nan,
        zero_fraction=acc.zero_sum / rows,
        sparsity=None if threshold_mev is None else acc.sparse_sum / rows,
        threshold_mev=threshold_mev,
        threshold_note=threshold_note,
        problems=problems,
    )


def _span(values: tuple[float, float] | None, unit: str) -> str:
    return f"{values[0]:.4g} - {values[1]:.4g} {unit}" if values else "not stored"


def format_report(report: Report) -> str:
    """A compact human-readable summary, ending with ``valid`` or the list of problems."""
    origin = report.kind
    if report.kind == "caloforge":
        origin += f", detector {report.detector_name or 'unknown'}"
    scale = {None: "calibration unknown", True: "calibrated", False: "raw (active material)"}
    energies = scale[report.calibrated]
    if report.sampling_fraction is not None:
        energies += f", sampling fraction {report.sampling_fraction:.5g}"
    binning = report.binning
    if binning.is_regular:
        layout = "{} layers x {} alpha x {} r".format(*binning.grid_shape)
    else:
        layout = f"{binning.n_layers} layers, {len(binning.readout_layers)} read out, irregular"
    if report.sparsity is None:
        sparsity = f"not computed ({report.threshold_note})"
    else:
        sparsity = f"{100 * report.sparsity:.2f} % at or below {report.threshold_note}"
    lines = [
        f"{report.path}: {origin}, particle {report.particle or 'unknown'}",
        f"  showers      {report.n} x {report.n_voxels} voxels ({layout})",
        f"  energies     {energies}",
        f"  E_inc        {_span(report.energy_range_gev, 'GeV')}",
        f"  theta        {_span(report.theta_range, 'rad')}",
        f"  phi          {_span(report.phi_range, 'rad')}",
        f"  E_vis/E_inc  {report.response_mean:.5g} +- {report.response_std:.3g}",
        f"  zero voxels  {100 * report.zero_fraction:.2f} %",
        f"  sparsity     {sparsity}",
    ]
    if report.valid:
        return "\n".join([*lines, "valid"])
    count = len(report.problems)
    lines.append(f"INVALID ({count} problem{'s' if count > 1 else ''}):")
    return "\n".join(lines + [f"  - {problem}" for problem in report.problems])
