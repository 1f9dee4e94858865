"""The two samples of an evaluation: loading, compatibility checks, threshold, condition bins.

Every problem a user can cause (an empty file, NaN, different voxel counts or energy scales,
conditions the reference does not cover) is a :class:`~caloforge.errors.DataError` raised
before any metric is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caloforge.data.contract import (
    FORMAT_NAME,
    energy_scale,
    file_sampling_fraction,
    is_calibrated,
    voxel_threshold,
)
from caloforge.data.readers import PathLike, describe_file, read_showers
from caloforge.data.showers import ShowerData
from caloforge.errors import DataError
from caloforge.geometry.binning import calochallenge_binning


@dataclass(frozen=True)
class Sample:
    """One side of a comparison.

    Attributes:
        path: the file (for showers given in memory, a label such as ``<reference>``).
        kind: ``"caloforge"``, ``"calochallenge-<dataset>"`` or ``"custom binning"``.
        data: the showers (MeV) with their conditions.
        calibrated: whether voxels hold calibrated (True) or raw active-material energies.
        detector: the detector name, or None if the file does not say.
    """

    path: Path
    kind: str
    data: ShowerData
    calibrated: bool
    detector: str | None

    @property
    def n(self) -> int:
        return len(self.data)

    def describe(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "n": self.n,
            "detector": self.detector,
            "calibrated": self.calibrated,
            "particle": self.data.attrs.get("particle"),
        }


def load_sample(
    path: PathLike, *, binning_xml: PathLike | None = None, limit: int | None = None
) -> Sample:
    """Read a shower file and check its content.

    Args:
        path: a caloforge or CaloChallenge-layout HDF5 file.
        binning_xml: binning of a CaloChallenge-layout file (default: detected).
        limit: read only the first ``limit`` showers.

    Raises:
        DataError: for a missing, corrupt or empty file, NaN or inf, non-positive energies.
    """
    info = describe_file(path, binning_xml=binning_xml)
    if info.n == 0:
        raise DataError(f"{path} holds no showers")
    data = read_showers(path, binning_xml=binning_xml, stop=limit)
    return sample_from_data(data, Path(path), kind=info.kind)


def sample_from_data(data: ShowerData, path: Path, *, kind: str | None = None) -> Sample:
    """Check showers held in memory (or just read) and make them one side of a comparison.

    Args:
        data: the showers, with the attributes of their file (or of their maker).
        path: their file, or a label.
        kind: ``"caloforge"``, ``"calochallenge-<dataset>"`` or ``"custom binning"``
            (default: from ``data.attrs``).

    Raises:
        DataError: for no showers, NaN or inf, non-positive energies.
    """
    if kind is None:
        dataset = data.attrs.get("dataset")
        kind = (
            "caloforge"
            if data.attrs.get("format") == FORMAT_NAME
            else f"calochallenge-{dataset}"
            if dataset
            else "custom binning"
        )
    if len(data) == 0:
        raise DataError(f"{path} holds no showers")
    problems = []
    if not np.isfinite(data.showers).all():
        bad = int((~np.isfinite(data.showers)).any(axis=1).sum())
        problems.append(f"{bad} showers with NaN or inf voxels")
    energies_ok = np.isfinite(data.energies) & (data.energies > 0)
    if not energies_ok.all():
        problems.append(f"{int((~energies_ok).sum())} non-finite or non-positive incident energies")
    for name in ("theta", "phi"):
        values = getattr(data, name)
        if values is not None and not np.isfinite(values).all():
            problems.append(f"{int((~np.isfinite(values)).sum())} non-finite {name} values")
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems) + " (see `caloforge inspect`)")
    caloforge_file = kind == "caloforge"
    detector = data.attrs.get("detector_name") if caloforge_file else None
    return Sample(
        path,
        kind,
        data,
        is_calibrated(data.attrs, caloforge_file=caloforge_file),
        detector if isinstance(detector, str) else None,
    )


def _response(sample: Sample) -> float:
    """Median calibrated response: E_tot/E_inc, divided by the sampling fraction of raw files
    (so that detectors with different sampling fractions compare alike)."""
    response = float(np.median(sample.data.showers.sum(axis=1) / sample.data.energies))
    sampling_fraction = file_sampling_fraction(sample.data.attrs)
    if not sample.calibrated and sampling_fraction is not None:
        response /= sampling_fraction
    return response


def check_compatible(reference: Sample, generated: Sample) -> list[str]:
    """Refuse samples that cannot be compared; return notes on allowed differences.

    Raises:
        DataError: for different voxel counts or energy scales.
    """
    ref_v, gen_v = reference.data.binning.n_voxels, generated.data.binning.n_voxels
    if ref_v != gen_v:
        raise DataError(
            f"the reference has {ref_v} voxels per shower and the generated file {gen_v}: "
            "showers on different meshes cannot be compared"
        )
    shape_ref = [(layer.n_alpha, layer.n_r) for layer in reference.data.binning.layers]
    shape_gen = [(layer.n_alpha, layer.n_r) for layer in generated.data.binning.layers]
    if shape_ref != shape_gen:
        raise DataError(
            "the reference and the generated file have the same voxel count but different "
            "layer structures (layers, alpha and r bins): read them with the right binning XML"
        )
    if reference.calibrated != generated.calibrated:
        raise DataError(
            f"the reference holds {energy_scale(reference.calibrated)} and the generated file "
            f"{energy_scale(generated.calibrated)}; compare files on the same scale (export a "
            "raw caloforge file to calibrated energies first)"
        )
    # caloforge files carry the label our tools wrote; CaloChallenge-layout files are assumed
    # calibrated, so check that assumption on the data (a raw export would be ~30x off)
    ref_response, gen_response = _response(reference), _response(generated)
    low, high = sorted((ref_response, gen_response))
    inferred = reference.kind != "caloforge" or generated.kind != "caloforge"
    if inferred and low > 0 and high > 5 * low:  # all-empty showers are left to the metrics
        raise DataError(
            f"the two files are on different energy scales although both are labelled "
            f"{energy_scale(reference.calibrated)}: the median response (E_tot/E_inc, divided by the "
            f"sampling fraction for raw files) is {ref_response:.3g} in the reference and "
            f"{gen_response:.3g} in the generated file"
        )
    notes = []
    if reference.detector != generated.detector:
        notes.append(
            f"different detectors: reference {reference.detector or 'unknown'}, generated "
            f"{generated.detector or 'unknown'} (same cell counts, so compared voxel by voxel)"
        )
    if reference.data.binning.layers != generated.data.binning.layers:
        notes.append(
            "the two binnings differ in cell sizes; each file's features use its own cell "
            "positions (mm)"
        )
    for side in (reference, generated):
        if side.data.showers.min() < 0:
            notes.append(f"{side.path.name} has negative voxels; the threshold sets them to 0")
    return notes


def default_threshold(reference: Sample) -> tuple[float, str]:
    """The CaloChallenge voxel threshold for the reference's energy scale, with a note."""
    layers = reference.data.binning.layers
    dataset_1 = reference.kind.startswith("calochallenge-1") or any(
        layers == calochallenge_binning(name).layers for name in ("1-photons", "1-pions")
    )
    return voxel_threshold(reference.calibrated, dataset_1=dataset_1)


# ----------------------------------------------------------------------------------------------
# Condition bins


@dataclass(frozen=True)
class ConditionBin:
    """A subset of both samples with similar conditions.

    Attributes:
        key: a short identifier (``"E_1-10GeV"``, ``"theta_0.87-1.34"``, ``"point_0"``).
        label: for humans.
        reference: boolean mask over the reference showers, shape (N_ref,).
        generated: boolean mask over the generated showers, shape (N_gen,).
    """

    key: str
    label: str
    reference: np.ndarray
    generated: np.ndarray


@dataclass(frozen=True)
class Conditions:
    """How the samples' conditions were binned."""

    mode: str  # "points" (fixed-condition set) or "continuous"
    bins: tuple[ConditionBin, ...]
    uses_angles: bool
    notes: list[str] = field(default_factory=list)


def _points(data: ShowerData, uses_angles: bool) -> np.ndarray:
    """Conditions (N, 1 or 3): E in MeV, and theta, phi in [0, 2 pi) in rad."""
    energy = np.asarray(data.energies, dtype=np.float64)
    if not uses_angles:
        return energy[:, None]
    assert data.theta is not None
    assert data.phi is not None
    phi = np.mod(np.asarray(data.phi, dtype=np.float64), 2 * np.pi)
    phi[np.isclose(phi, 2 * np.pi, rtol=0, atol=1e-5)] = 0.0
    return np.column_stack([energy, np.asarray(data.theta, dtype=np.float64), phi])


def _distinct(points: np.ndarray, limit: int) -> np.ndarray | None:
    """The distinct rows of ``points`` (N, k), equal within float32 rounding; None if more
    than ``limit``."""
    distinct: list[np.ndarray] = []
    for row in np.unique(points, axis=0):
        if not any(_same(row, d) for d in distinct):
            distinct.append(row)
            if len(distinct) > limit:
                return None
    return np.array(distinct)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two condition rows are equal up to float32 storage (1e-5 relative on E,
    1e-5 rad on the angles)."""
    if abs(a[0] - b[0]) > 1e-5 * max(abs(a[0]), abs(b[0])):
        return False
    return bool(np.all(np.abs(a[1:] - b[1:]) <= 1e-5))


def _nearest(points: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Index of the matching distinct point of every row (N,), -1 where none matches."""
    out = np.full(len(points), -1)
    for i, d in enumerate(distinct):
        close = np.abs(points[:, 0] - d[0]) <= 1e-5 * np.maximum(np.abs(points[:, 0]), abs(d[0]))
        if points.shape[1] > 1:
            close &= np.all(np.abs(points[:, 1:] - d[1:]) <= 1e-5, axis=1)
        out[close & (out < 0)] = i
    return out


def _point_label(point: np.ndarray) -> str:
    label = f"{point[0] / 1000:g} GeV"
    if len(point) == 3:
        label += f", theta {point[1]:.3g}, phi {point[2]:.3g}"
    return label


def _check_range(name: str, ref: np.ndarray, gen: np.ndarray, unit: str) -> None:
    lo, hi = float(ref.min()), float(ref.max())
    tolerance = max(0.05 * (hi - lo), 1e-6 * max(abs(lo), abs(hi), 1.0))
    if gen.min() < lo - tolerance or gen.max() > hi + tolerance:
        raise DataError(
            f"mismatched conditions: generated {name} spans {gen.min():.4g}-{gen.max():.4g}"
            f"{unit} but the reference only {lo:.4g}-{hi:.4g}{unit}"
        )


def condition_bins(
    reference: ShowerData, generated: ShowerData, *, theta_bins: int = 3, max_points: int = 20
) -> Conditions:
    """Bin both samples by their conditions.

    A reference with at most ``max_points`` distinct (E, theta, phi) is a fixed-condition set:
    one bin per point, and every generated shower must sit at one of them. Otherwise the bins
    are the energy decades (1-10 GeV, ...) and ``theta_bins`` equal theta bins over the
    reference's range, and the generated conditions must lie in the reference's ranges.
    Angles are used only if both files store them.

    Raises:
        DataError: for generated conditions that the reference does not cover.
    """
    stores = [d.theta is not None and d.phi is not None for d in (reference, generated)]
    uses_angles = all(stores)
    notes = []
    if stores[0] != stores[1]:
        having = reference if stores[0] else generated
        assert having.theta is not None
        if np.ptp(having.theta) > 1e-6 or np.ptp(np.mod(having.phi, 2 * np.pi)) > 1e-6:  # type: ignore[arg-type]
            raise DataError(
                "missing conditions: only one file stores the incident angles, and they vary; "
                "the showers cannot be matched"
            )
        notes.append("only one file stores the (constant) angles: conditions compared on energy")
    ref_points, gen_points = _points(reference, uses_angles), _points(generated, uses_angles)
    distinct = _distinct(ref_points, max_points)
    # a fixed-condition set: few distinct points, each holding several showers
    if distinct is not None and len(reference) >= 5 * len(distinct):
        ref_index, gen_index = _nearest(ref_points, distinct), _nearest(gen_points, distinct)
        if (gen_index < 0).any():
            missing = gen_points[gen_index < 0]
            listed = "; ".join(_point_label(p) for p in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise DataError(
                f"mismatched conditions: {int((gen_index < 0).sum())} generated showers are at "
                f"points the fixed-condition reference does not have ({listed}{more})"
            )
        bins = tuple(
            ConditionBin(f"point_{i}", _point_label(p), ref_index == i, gen_index == i)
            for i, p in enumerate(distinct)
        )
        return Conditions("points", bins, uses_angles, notes)

    ref_e, gen_e = np.log10(reference.energies / 1000.0), np.log10(generated.energies / 1000.0)
    _check_range("log10(E/GeV)", ref_e, gen_e, "")
    bins_list = []
    first, last = math.floor(ref_e.min() + 1e-9), math.ceil(ref_e.max() - 1e-9)
    last = max(last, first + 1)
    # generated showers admitted by the range tolerance belong to the edge decades
    ref_e = np.clip(ref_e, first, last - 1e-9)
    gen_e = np.clip(gen_e, first, last - 1e-9)
    for k in range(first, last):
        lo, hi = 10.0**k, 10.0 ** (k + 1)
        ref_mask = (ref_e >= k) & (ref_e < k + 1)
        gen_mask = (gen_e >= k) & (gen_e < k + 1)
        bins_list.append(
            ConditionBin(f"E_{lo:g}-{hi:g}GeV", f"E {lo:g}-{hi:g} GeV", ref_mask, gen_mask)
        )
    if uses_angles and theta_bins > 0:
        assert reference.theta is not None
        assert generated.theta is not None
        _check_range("theta", reference.theta, generated.theta, " rad")
        lo, hi = float(reference.theta.min()), float(reference.theta.max())
        if hi - lo > 1e-3:
            edges = np.linspace(lo, hi, theta_bins + 1)
            ref_bin = np.clip(np.digitize(reference.theta, edges) - 1, 0, theta_bins - 1)
            gen_bin = np.clip(np.digitize(generated.theta, edges) - 1, 0, theta_bins - 1)
            for i in range(theta_bins):
                key = f"theta_{edges[i]:.2f}-{edges[i + 1]:.2f}"
                label = f"theta {edges[i]:.2f}-{edges[i + 1]:.2f} rad"
                bins_list.append(ConditionBin(key, label, ref_bin == i, gen_bin == i))
    return Conditions("continuous", tuple(bins_list), uses_angles, notes)
