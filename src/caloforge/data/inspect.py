"""Summarise and validate a shower file without loading it: ``caloforge inspect``.

The file is read in chunks of showers; every statistic is accumulated chunk by chunk, so the
memory used is one chunk whatever the file size. Layout errors (missing datasets, wrong shapes,
a voxel count that fits no binning) raise :class:`~caloforge.errors.DataError`; content errors
(NaN or inf, negative voxel energies, non-positive incident energies) are collected as
``problems`` with the number of showers affected.

The sparsity follows the CaloChallenge evaluation code (``code/HighLevelFeatures.py`` of
``CaloChallenge/homepage``): ``1 - mean(voxel > threshold)``, i.e. the fraction of voxels at or
below the threshold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from caloforge.data.calochallenge import detect_calochallenge_dataset
from caloforge.data.io import FORMAT_NAME, check_layout, decode_attrs, iter_chunks, open_h5
from caloforge.errors import DataError, SpecError
from caloforge.geometry.binning import Binning, calochallenge_binning, read_binning_xml
from caloforge.geometry.mesh import MeshSpec

log = logging.getLogger(__name__)

# Voxel thresholds of the CaloChallenge evaluation in MeV (calibrated energies): 0.5 keV read-out
# threshold / sampling fraction 0.033 for datasets 2 and 3, 1 MeV for dataset 1.
THRESHOLD_DATASETS_2_3_MEV = 0.5e-3 / 0.033
THRESHOLD_DATASET_1_MEV = 1.0
_DATASET_PARTICLE = {"1-photons": "gamma", "1-pions": "pi+", "2": "e-", "3": "e-"}


@dataclass
class Report:
    """What :func:`inspect_file` found in a shower file.

    Attributes:
        path: the file.
        kind: ``"caloforge"``, ``"calochallenge-<dataset>"`` or ``"custom binning"``.
        n: number of showers N.
        n_voxels: voxels per shower V.
        binning: the binning the V voxels were read with.
        detector_name: the detector of a caloforge file, else None.
        particle: the incident particle, None if unknown.
        calibrated: whether voxel energies were divided by the sampling fraction; None if
            unknown.
        sampling_fraction: the detector's sampling fraction from the attributes, or None.
        energy_range_gev: (min, max) finite incident energy in GeV, None if there is none.
        theta_range: (min, max) finite polar angle in rad, None without angles.
        phi_range: (min, max) finite azimuth in rad, None without angles.
        response_mean: mean of E_vis / E_inc (sum of voxels over incident energy) over the
            showers with finite data and E_inc > 0; NaN if there is none.
        response_std: its standard deviation (ddof=0).
        zero_fraction: mean over showers of the fraction of voxels that are exactly 0.
        sparsity: CaloChallenge sparsity, the fraction of voxels at or below
            ``threshold_mev``; None without a threshold.
        threshold_mev: the voxel threshold applied for ``sparsity``, in the file's units.
        threshold_note: where the threshold comes from.
        problems: one sentence per kind of invalid content, with the showers affected.
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


def file_sampling_fraction(attrs: Mapping[str, Any]) -> float | None:
    """The ``sampling_fraction`` attribute if it is a finite number > 0, else None."""
    value = attrs.get("sampling_fraction")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _showers(count: int) -> str:
    return f"{count} shower has" if count == 1 else f"{count} showers have"


class _Accumulator:
    """Running statistics and problem counts over chunks of showers."""

    def __init__(self, threshold_mev: float | None) -> None:
        self.threshold_mev = threshold_mev
        self.nonfinite = dict.fromkeys(
            ("incident_energies", "showers", "incident_theta", "incident_phi"), 0
        )
        self.negative_voxels = 0
        self.min_voxel = math.inf
        self.nonpositive_energies = 0
        self.min_energy = math.inf
        self.ranges: dict[str, list[float]] = {}
        # Chan et al.'s pairwise update of (count, mean, M2) for E_vis / E_inc.
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.voxel_rows = 0
        self.zero_fraction_sum = 0.0
        self.sparse_fraction_sum = 0.0

    def _range(self, key: str, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = float(values.min()), float(values.max())
            old = self.ranges.setdefault(key, [lo, hi])
            old[0], old[1] = min(old[0], lo), max(old[1], hi)

    def add(
        self,
        energies: np.ndarray,
        showers: np.ndarray,
        theta: np.ndarray | None,
        phi: np.ndarray | None,
    ) -> None:
        """Account for one chunk: energies (k,), showers (k, V), theta and phi (k,) or None."""
        finite_e = np.isfinite(energies)  # (k,)
        finite_v = np.isfinite(showers).all(axis=1)  # (k,)
        self.nonfinite["incident_energies"] += int((~finite_e).sum())
        self.nonfinite["showers"] += int((~finite_v).sum())
        for key, angles in (("incident_theta", theta), ("incident_phi", phi)):
            if angles is not None:
                self.nonfinite[key] += int((~np.isfinite(angles)).sum())
                self._range(key, angles)
        self._range("energy_gev", energies / 1000.0)

        negative = (showers < 0).any(axis=1)  # (k,); NaN compares False
        if negative.any():
            self.negative_voxels += int(negative.sum())
            self.min_voxel = min(self.min_voxel, float(np.nanmin(showers[negative])))
        nonpositive = finite_e & (energies <= 0)
        if nonpositive.any():
            self.nonpositive_energies += int(nonpositive.sum())
            self.min_energy = min(self.min_energy, float(energies[nonpositive].min()))

        n_voxels = showers.shape[1]
        self.voxel_rows += int(finite_v.sum())
        rows = showers[finite_v] if not finite_v.all() else showers
        self.zero_fraction_sum += float((rows == 0).sum()) / n_voxels
        if self.threshold_mev is not None:
            self.sparse_fraction_sum += float((rows <= self.threshold_mev).sum()) / n_voxels

        good = finite_v & finite_e & (energies > 0)
        response = showers.sum(axis=1, dtype=np.float64)[good] / energies[good]  # (k_good,)
        if response.size:
            n_b, mean_b = response.size, float(response.mean())
            m2_b = float(((response - mean_b) ** 2).sum())
            total = self.count + n_b
            delta = mean_b - self.mean
            self.mean += delta * n_b / total
            self.m2 += m2_b + delta**2 * self.count * n_b / total
            self.count = total

    def problems(self) -> list[str]:
        """One sentence per kind of invalid content found."""
        out = [
            f"{_showers(count)} NaN or inf in {key}"
            for key, count in self.nonfinite.items()
            if count
        ]
        if self.negative_voxels:
            out.append(
                f"{_showers(self.negative_voxels)} negative voxel energies "
                f"(lowest {self.min_voxel:.4g} MeV)"
            )
        if self.nonpositive_energies:
            out.append(
                f"{_showers(self.nonpositive_energies)} a non-positive incident energy "
                f"(lowest {self.min_energy:.4g} MeV)"
            )
        return out

    def range_of(self, key: str) -> tuple[float, float] | None:
        values = self.ranges.get(key)
        return (values[0], values[1]) if values else None


def _mesh_binning(path: Path, attrs: Mapping[str, Any], n_voxels: int) -> Binning:
    mesh_attr = attrs.get("mesh")
    try:
        mesh = MeshSpec(**mesh_attr)  # type: ignore[arg-type]
    except (TypeError, SpecError):
        raise DataError(
            f"{path}: the 'mesh' attribute is missing or malformed ({mesh_attr!r})"
        ) from None
    if mesh.n_voxels != n_voxels:
        raise DataError(
            f"{path}: showers have {n_voxels} voxels but the file's mesh "
            f"{mesh.n_z}x{mesh.n_phi}x{mesh.n_r} has {mesh.n_voxels}"
        )
    return mesh.binning()


def _other_binning(
    path: Path, n_voxels: int, dataset: str | None, binning_xml: str | Path | None
) -> tuple[str, Binning]:
    """The kind and binning of a file that is not a caloforge file."""
    if binning_xml is not None:
        binning = read_binning_xml(binning_xml)
        if binning.n_voxels != n_voxels:
            raise DataError(
                f"{path} has {n_voxels} voxels per shower but binning {binning_xml} has {binning.n_voxels}"
            )
        return "custom binning", binning
    if dataset is None:
        dataset = detect_calochallenge_dataset(n_voxels)
        if dataset is None:
            raise DataError(
                f"{path}: {n_voxels} voxels per shower fit no CaloChallenge dataset (368, 533, "
                "6480 or 40500); pass a binning XML with --binning or a dataset with --calochallenge"
            )
    binning = calochallenge_binning(dataset)
    if binning.n_voxels != n_voxels:
        guess = detect_calochallenge_dataset(n_voxels)
        hint = f"; it looks like dataset {guess}" if guess else ""
        raise DataError(
            f"{path} has {n_voxels} voxels per shower but CaloChallenge dataset {dataset} has {binning.n_voxels}{hint}"
        )
    return f"calochallenge-{dataset}", binning


def _threshold(
    kind: str, calibrated: bool | None, sampling_fraction: float | None, attrs: Mapping[str, Any]
) -> tuple[float | None, str]:
    """The sparsity threshold in the file's energy units, and where it comes from."""
    if kind in ("calochallenge-1-photons", "calochallenge-1-pions"):
        return THRESHOLD_DATASET_1_MEV, "1 MeV (CaloChallenge dataset 1)"
    base = f"{THRESHOLD_DATASETS_2_3_MEV * 1e3:.2f} keV (CaloChallenge datasets 2/3)"
    if calibrated is False:
        if sampling_fraction is None:
            return None, "none: raw energies and no valid sampling fraction to scale the threshold"
        value = THRESHOLD_DATASETS_2_3_MEV * sampling_fraction
        return value, f"{value * 1e3:.4g} keV = {base} x sampling fraction {sampling_fraction:.4g}"
    export_threshold = attrs.get("threshold_mev")
    if kind == "caloforge" and isinstance(export_threshold, int | float) and export_threshold >= 0:
        return float(export_threshold), f"{export_threshold * 1e3:.4g} keV (the export threshold)"
    return THRESHOLD_DATASETS_2_3_MEV, base


def _check_numeric_and_angles(f: h5py.File, path: Path, n: int) -> None:
    for key in ("incident_energies", "showers", "incident_theta", "incident_phi"):
        if key not in f:
            continue
        item = f[key]
        if not isinstance(item, h5py.Dataset) or not (
            np.issubdtype(item.dtype, np.floating) or np.issubdtype(item.dtype, np.integer)
        ):
            raise DataError(f"{path}: {key} is not a numeric dataset")
        if key in ("incident_theta", "incident_phi") and item.shape not in ((n,), (n, 1)):
            raise DataError(f"{path}: {key} has shape {item.shape}, expected ({n}, 1)")


def inspect_file(
    path: str | Path,
    dataset: str | None = None,
    binning_xml: str | Path | None = None,
    chunk_size: int = 1000,
) -> Report:
    """Summarise and validate a shower file, streaming it in chunks.

    A caloforge file (attribute ``format == "caloforge-showers"``) is read on the mesh in its
    attributes and ``dataset``/``binning_xml`` are ignored. Any other file is read with
    ``binning_xml`` if given, else as CaloChallenge ``dataset``, else as the CaloChallenge
    dataset its voxel count identifies.

    Args:
        path: the HDF5 file.
        dataset: CaloChallenge dataset name (``"1-photons"``, ``"1-pions"``, ``"2"``, ``"3"``).
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
    with open_h5(path) as f:
        attrs = decode_attrs(f.attrs)
        is_caloforge = attrs.get("format") == FORMAT_NAME
        n = check_layout(f, path, require_angles=is_caloforge)
        _check_numeric_and_angles(f, path, n)
        n_voxels = int(f["showers"].shape[1])

    if is_caloforge:
        kind, binning = "caloforge", _mesh_binning(path, attrs, n_voxels)
        calibrated: bool | None = bool(attrs.get("calibrated", False))
    else:
        kind, binning = _other_binning(path, n_voxels, dataset, binning_xml)
        calibrated = True if kind.startswith("calochallenge-") else None
        if isinstance(attrs.get("calibrated"), bool):
            calibrated = attrs["calibrated"]
    sampling_fraction = file_sampling_fraction(attrs)
    threshold_mev, threshold_note = _threshold(kind, calibrated, sampling_fraction, attrs)

    acc = _Accumulator(threshold_mev)
    for energies, showers, theta, phi in iter_chunks(path, chunk_size):
        acc.add(energies, showers, theta, phi)
    log.debug("inspected %d showers of %s", n, path)

    problems = [] if n else ["the file holds no showers"]
    problems += acc.problems()
    if is_caloforge and attrs.get("n_showers", n) != n:
        problems.append(
            f"the attribute n_showers is {attrs['n_showers']} but the file holds {n} showers"
        )
    rows = acc.voxel_rows
    particle = attrs.get("particle")
    return Report(
        path=path,
        kind=kind,
        n=n,
        n_voxels=n_voxels,
        binning=binning,
        detector_name=attrs.get("detector_name") if is_caloforge else None,
        particle=particle
        if isinstance(particle, str)
        else _DATASET_PARTICLE.get(kind.removeprefix("calochallenge-")),
        calibrated=calibrated,
        sampling_fraction=sampling_fraction,
        energy_range_gev=acc.range_of("energy_gev"),
        theta_range=acc.range_of("incident_theta"),
        phi_range=acc.range_of("incident_phi"),
        response_mean=acc.mean if acc.count else math.nan,
        response_std=math.sqrt(acc.m2 / acc.count) if acc.count else math.nan,
        zero_fraction=acc.zero_fraction_sum / rows if rows else math.nan,
        sparsity=(acc.sparse_fraction_sum / rows if rows else math.nan)
        if threshold_mev is not None
        else None,
        threshold_mev=threshold_mev,
        threshold_note=threshold_note,
        problems=problems,
    )


def _describe_binning(binning: Binning) -> str:
    if binning.is_regular:
        n_z, n_alpha, n_r = binning.grid_shape
        return f"{n_z} layers x {n_alpha} alpha x {n_r} r"
    return f"{binning.n_layers} layers ({len(binning.readout_layers)} read out), irregular"


def _span(values: tuple[float, float] | None, unit: str) -> str:
    return f"{values[0]:.4g} - {values[1]:.4g} {unit}" if values else "not stored"


def format_report(report: Report) -> str:
    """A compact human-readable summary, ending with ``valid`` or the list of problems."""
    origin = report.kind
    if report.kind == "caloforge":
        origin += f", detector {report.detector_name or 'unknown'}"
    origin += f", particle {report.particle or 'unknown'}"
    if report.calibrated is None:
        energy_scale = "calibration unknown"
    else:
        energy_scale = "calibrated" if report.calibrated else "raw (active-material energy)"
    if report.sampling_fraction is not None:
        energy_scale += f", sampling fraction {report.sampling_fraction:.5g}"
    lines = [
        f"{report.path}: {origin}",
        f"  showers      {report.n} x {report.n_voxels} voxels ({_describe_binning(report.binning)})",
        f"  energies     {energy_scale}",
        f"  E_inc        {_span(report.energy_range_gev, 'GeV')}",
        f"  theta        {_span(report.theta_range, 'rad')}",
        f"  phi          {_span(report.phi_range, 'rad')}",
        f"  E_vis/E_inc  {report.response_mean:.5g} +- {report.response_std:.3g}",
        f"  zero voxels  {100 * report.zero_fraction:.2f} %",
    ]
    if report.sparsity is None:
        lines.append(f"  sparsity     not computed ({report.threshold_note})")
    else:
        lines.append(
            f"  sparsity     {100 * report.sparsity:.2f} % at or below {report.threshold_note}"
        )
    if report.valid:
        lines.append("valid")
    else:
        lines.append(
            f"INVALID ({len(report.problems)} problem{'s' if len(report.problems) > 1 else ''}):"
        )
        lines += [f"  - {problem}" for problem in report.problems]
    return "\n".join(lines)
