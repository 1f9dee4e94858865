"""Training sets for the generative models: caloforge shower files -> preprocessed tensors.

Each file contributes its showers under its detector's one-hot slot. The condition ranges the
model supports are those of the files' simulation specifications (``energy_spec_gev``,
``theta_spec_rad`` attributes), phi being periodic. A random fraction of every file is held out
for the validation loss; the preprocessing is fitted on the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caloforge.data.contract import DETECTOR_ATTRS, FORMAT_NAME, is_calibrated, voxel_threshold
from caloforge.data.factorized import FractionTransform, LayerTransform, layer_energies
from caloforge.data.readers import PathLike, read_showers
from caloforge.data.showers import ShowerData
from caloforge.data.specs import parse_spec
from caloforge.data.transforms import ConditionTransform, Preprocessing, ShowerTransform
from caloforge.errors import DataError, SpecError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSet:
    """Preprocessed showers and conditions, split into training and validation parts.

    Attributes:
        x: training showers, shape (N, 1, Z, A, R), float32.
        cond: their conditions, shape (N, n_cond), float32.
        val_x, val_cond: the held-out showers and conditions.
        preprocessing: the fitted transforms.
        detectors: per detector name, the file attributes that describe it.
        particle: the incident particle of every file.
        calibrated: whether the files hold calibrated (not raw active-material) energies.
        sigma_data: standard deviation of the preprocessed training showers (EDM's sigma_data).
        files: per file, its path, detector and numbers of training and validation showers.
    """

    x: torch.Tensor
    cond: torch.Tensor
    val_x: torch.Tensor
    val_cond: torch.Tensor
    preprocessing: Preprocessing
    detectors: dict[str, dict[str, Any]]
    particle: str
    calibrated: bool
    sigma_data: float
    files: list[dict[str, Any]]


def _spec_range(
    attrs: dict[str, Any], key: str, values: np.ndarray, scale: float
) -> tuple[float, float]:
    """(low, high) of a simulation spec attribute such as ``log:1:100``, else of the data."""
    text = attrs.get(key)
    if isinstance(text, str):
        try:
            spec = parse_spec(text, key)
            return spec.low * scale, spec.high * scale
        except SpecError:
            pass
    return float(values.min()), float(values.max())


def _read(path: PathLike, limit: int | None) -> ShowerData:
    data = read_showers(path, stop=limit)
    if data.attrs.get("format") != FORMAT_NAME:
        raise DataError(f"{path} is not a caloforge shower file (train on files from `simulate`)")
    if data.theta is None or data.phi is None:
        raise DataError(f"{path} stores no incident angles")
    if len(data) == 0:
        raise DataError(f"{path} holds no showers")
    bad = (
        ~np.isfinite(data.showers).all(axis=1) | ~np.isfinite(data.energies) | (data.energies <= 0)
    )
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} showers with NaN, inf or non-positive energy")
    return data


@dataclass(frozen=True)
class _Files:
    """Training files read and split: what every training set is built from."""

    datas: list[ShowerData]
    train: list[tuple[ShowerData, np.ndarray, int]]  # (data, rows, detector slot)
    val: list[tuple[ShowerData, np.ndarray, int]]
    conditions: ConditionTransform
    detectors: dict[str, dict[str, Any]]
    mesh_shape: tuple[int, int, int]
    files: list[dict[str, Any]]

    @property
    def particle(self) -> str:
        return str(self.datas[0].attrs.get("particle", "unknown"))

    @property
    def calibrated(self) -> bool:
        return is_calibrated(self.datas[0].attrs, caloforge_file=True)

    def conditions_of(self, parts: list[tuple[ShowerData, np.ndarray, int]]) -> np.ndarray:
        """The condition vectors (N, n_cond) of some rows."""
        return np.concatenate(
            [
                self.conditions.forward(
                    data.energies[mask],
                    data.theta[mask],  # type: ignore[index]
                    data.phi[mask],  # type: ignore[index]
                    np.full(int(mask.sum()), slot),
                )
                for data, mask, slot in parts
            ]
        )


def _read_files(
    paths: Sequence[PathLike],
    val_fraction: float,
    seed: int,
    limit: int | None,
    conditions: ConditionTransform | None = None,
) -> _Files:
    """Read, check and split training files (see :func:`load_training_set`); ``conditions``:
    a model's own (its detector slots), instead of those of the files."""
    if not paths:
        raise SpecError("no training files given")
    if not 0 <= val_fraction < 1:
        raise SpecError(f"the validation fraction must lie in [0, 1), got {val_fraction}")
    datas = [_read(p, limit) for p in paths]
    first = datas[0]
    shape = first.binning.grid_shape
    for path, data in zip(paths, datas, strict=True):
        if data.binning.grid_shape != shape:
            raise DataError(f"{path} has mesh {data.binning.grid_shape}, {paths[0]} has {shape}")
        for key in ("particle", "calibrated"):
            if data.attrs.get(key) != first.attrs.get(key):
                raise DataError(
                    f"{path} has {key}={data.attrs.get(key)!r} but {paths[0]} has "
                    f"{first.attrs.get(key)!r}: train one model per particle and energy scale"
                )
    detectors: dict[str, dict[str, Any]] = {}
    for data in datas:
        name = str(data.attrs.get("detector_name", "unknown"))
        detectors.setdefault(name, {k: data.attrs[k] for k in DETECTOR_ATTRS if k in data.attrs})
    if conditions is None:
        e_ranges = [_spec_range(d.attrs, "energy_spec_gev", d.energies, 1e3) for d in datas]
        t_ranges = [_spec_range(d.attrs, "theta_spec_rad", d.theta, 1.0) for d in datas]  # type: ignore[arg-type]
        conditions = ConditionTransform(
            (min(r[0] for r in e_ranges), max(r[1] for r in e_ranges)),
            (min(r[0] for r in t_ranges), max(r[1] for r in t_ranges)),
            tuple(detectors),
        )
    else:
        unknown = sorted(set(detectors) - set(conditions.detectors))
        if unknown:
            raise DataError(
                f"the model was not trained on {', '.join(unknown)} (it knows "
                f"{', '.join(conditions.detectors)})"
            )
        for path, data in zip(paths, datas, strict=True):
            try:
                conditions.check(data.energies, data.theta)  # type: ignore[arg-type]
            except SpecError as exc:
                raise DataError(f"{path}: {exc.describe()}") from None
    names = conditions.detectors
    rng = np.random.default_rng(seed)
    train_parts, val_parts, files = [], [], []
    for path, data in zip(paths, datas, strict=True):
        n = len(data)
        held = np.zeros(n, dtype=bool)
        held[rng.permutation(n)[: round(val_fraction * n)]] = True
        slot = names.index(str(data.attrs.get("detector_name", "unknown")))
        train_parts.append((data, ~held, slot))
        val_parts.append((data, held, slot))
        files.append(
            {
                "path": str(Path(path)),
                "detector": names[slot],
                "n_train": int((~held).sum()),
                "n_val": int(held.sum()),
            }
        )
    log.info(
        "training set: %d showers (%d held out) from %d files, detectors %s",
        sum(int(m.sum()) for _, m, _ in train_parts),
        sum(int(m.sum()) for _, m, _ in val_parts),
        len(paths),
        ", ".join(names),
    )
    return _Files(datas, train_parts, val_parts, conditions, detectors, shape, files)


def load_training_set(
    paths: Sequence[PathLike],
    *,
    val_fraction: float = 0.05,
    seed: int = 0,
    limit: int | None = None,
    preprocessing: Preprocessing | None = None,
) -> TrainingSet:
    """Read caloforge shower files into a preprocessed training set.

    Args:
        paths: one or more files; files of the same detector share a one-hot slot (slots in
            order of first appearance).
        val_fraction: fraction of each file held out for validation.
        seed: seed of the hold-out choice.
        limit: read at most this many showers per file.
        preprocessing: a trained model's, to use instead of fitting one (distillation); its
            detector slots and condition ranges then apply.

    Raises:
        DataError: for unreadable files, files of different meshes, particles or energy
            scales, or files without angles; with ``preprocessing``, files of another mesh
            or detector.
        SpecError: with ``preprocessing``, conditions outside its ranges.
    """
    given = preprocessing
    read = _read_files(paths, val_fraction, seed, limit, given.conditions if given else None)
    shape = read.mesh_shape
    if given is not None:
        _check_mesh(given, shape)
    if given is not None and given.shower is not None:
        shower_transform = given.shower
    else:
        train_showers = np.concatenate([d.showers[m] for d, m, _ in read.train])
        train_energies = np.concatenate([d.energies[m] for d, m, _ in read.train])
        shower_transform = ShowerTransform.fit(train_showers, train_energies)
        del train_showers
    preprocessing = Preprocessing(shower_transform, read.conditions, shape)

    def showers(parts: list[tuple[ShowerData, np.ndarray, int]]) -> torch.Tensor:
        xs = [shower_transform.forward(d.showers[m], d.energies[m]) for d, m, _ in parts]
        return torch.from_numpy(np.concatenate(xs)).reshape(-1, 1, *shape)

    x = showers(read.train)
    return TrainingSet(
        x=x,
        cond=torch.from_numpy(read.conditions_of(read.train)),
        val_x=showers(read.val),
        val_cond=torch.from_numpy(read.conditions_of(read.val)),
        preprocessing=preprocessing,
        detectors=read.detectors,
        particle=read.particle,
        calibrated=read.calibrated,
        sigma_data=float(x.std()),
        files=read.files,
    )


def _check_mesh(preprocessing: Preprocessing, shape: tuple[int, int, int]) -> None:
    if tuple(preprocessing.mesh_shape) != tuple(shape):
        raise DataError(
            f"the files have mesh {shape}; the model's is {tuple(preprocessing.mesh_shape)}"
        )


@dataclass(frozen=True)
class NetworkData:
    """The training and validation tensors of one network of a pipeline.

    Attributes:
        x, cond: training inputs (N, ...) and their conditions (N, n_cond), float32.
        val_x, val_cond: the held-out ones.
        sigma_data: standard deviation of ``x`` (EDM's sigma_data).
    """

    x: torch.Tensor
    cond: torch.Tensor
    val_x: torch.Tensor
    val_cond: torch.Tensor
    sigma_data: float


@dataclass(frozen=True)
class FactorizedSet:
    """The training sets of the factorised pipeline: layer energies, then shapes.

    Attributes:
        energy: standardised layer logits (N, Z), conditioned on the conditions.
        shape: standardised within-layer fraction logits (N, 1, Z, A, R), conditioned on the
            conditions and the layer logits (N, n_cond + Z).
        preprocessing: conditions, mesh, and the layer and fraction transforms.
        threshold_mev: the voxel threshold applied to the showers before everything.
        detectors, particle, calibrated, files: as :class:`TrainingSet`'s.
    """

    energy: NetworkData
    shape: NetworkData
    preprocessing: Preprocessing
    threshold_mev: float
    detectors: dict[str, dict[str, Any]]
    particle: str
    calibrated: bool
    files: list[dict[str, Any]]


def _check_response(layers: np.ndarray, energies: np.ndarray, scale: float) -> None:
    """Refuse showers whose response ``E_tot / E_inc`` the energy model's code cannot hold."""
    response = float((layers.sum(axis=1) / energies).max(initial=0.0))
    if response >= scale:
        raise DataError(
            f"the showers' response E_tot/E_inc reaches {response:.3g}, beyond what the model's "
            f"layer-energy code holds (< {scale:.3g}); train a model on them from scratch"
        )


def load_factorized_set(
    paths: Sequence[PathLike],
    *,
    val_fraction: float = 0.05,
    seed: int = 0,
    limit: int | None = None,
    preprocessing: Preprocessing | None = None,
    occupancy: bool = True,
    layer_logs: bool = True,
    conditional_code: bool = False,
    voxel_values: str = "fraction",
) -> FactorizedSet:
    """Read caloforge shower files into the training sets of the energy and shape models.

    Voxels below the energy scale's read-out threshold are zeroed first, so that the layer
    energies learnt are those an evaluation sees. ``occupancy``: the transforms fitted (no
    ``preprocessing`` given) code occupancy bits (:mod:`caloforge.data.factorized`).
    ``voxel_values``: what an occupied voxel's value in the fitted shape code is
    (:data:`caloforge.config.VOXEL_VALUES`). ``conditional_code``: the energy model's code is
    standardised per detector and energy;
    a given ``preprocessing`` without it gets it fitted on these showers (its other
    statistics, those the shape model sees, are kept). Other arguments and errors as
    :func:`load_training_set`.
    """
    given = preprocessing
    read = _read_files(paths, val_fraction, seed, limit, given.conditions if given else None)
    shape = read.mesh_shape
    if given is not None:
        _check_mesh(given, shape)
    threshold, _ = voxel_threshold(read.calibrated)

    def thresholded(parts: list[tuple[ShowerData, np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        showers = np.concatenate([d.showers[m] for d, m, _ in parts])
        showers[showers < threshold] = 0.0
        return showers, np.concatenate([d.energies[m] for d, m, _ in parts])

    showers, energies = thresholded(read.train)
    train_slots = np.concatenate([np.full(int(m.sum()), slot) for _, m, slot in read.train])
    if given is not None and given.layers is not None and given.fractions is not None:
        layer_transform, fraction_transform = given.layers, given.fractions
        layers = layer_energies(showers, shape)
        if conditional_code and not layer_transform.conditional:
            layer_transform = layer_transform.with_conditional_code(layers, energies, train_slots)  # fmt: skip
        elif layer_transform.conditional:  # a new detector's slot gets its own statistics
            layer_transform = layer_transform.with_slot_codes(layers, energies, train_slots)
        _check_response(layers, energies, layer_transform.total_scale if layer_transform.occupancy else layer_transform.scale)  # fmt: skip
    else:
        layers = layer_energies(showers, shape)
        layer_transform = LayerTransform.fit(
            layers, energies, occupancy=occupancy, logs=layer_logs, groups=train_slots,
            conditional=conditional_code,
        )  # fmt: skip
        fraction_transform = FractionTransform.fit(showers, shape, occupancy=occupancy, values=voxel_values)  # fmt: skip
    preprocessing = Preprocessing(
        None, read.conditions, shape, layers=layer_transform, fractions=fraction_transform
    )

    def networks(
        parts: list[tuple[ShowerData, np.ndarray, int]],
        showers: np.ndarray,
        energies: np.ndarray,
        seed: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        cond = torch.from_numpy(read.conditions_of(parts))
        layers = layer_energies(showers, shape)
        slots = np.concatenate([np.full(int(m.sum()), slot) for _, m, slot in parts])
        x_e = torch.from_numpy(layer_transform.encode(layers, energies, seed, groups=slots))
        channels = fraction_transform.channels
        code = fraction_transform.encode(showers, energies, seed, groups=slots)
        x_s = torch.from_numpy(code).reshape(-1, channels, *shape)
        layer_cond = torch.from_numpy(layer_transform.conditions(layers, energies))
        return x_e, cond, x_s, torch.cat([cond, layer_cond], dim=1)

    x_e, c_e, x_s, c_s = networks(read.train, showers, energies, seed)
    del showers
    v_e, vc_e, v_s, vc_s = networks(read.val, *thresholded(read.val), seed + 1)
    return FactorizedSet(
        energy=NetworkData(x_e, c_e, v_e, vc_e, float(x_e.std())),
        shape=NetworkData(x_s, c_s, v_s, vc_s, float(x_s.std())),
        preprocessing=preprocessing,
        threshold_mev=threshold,
        detectors=read.detectors,
        particle=read.particle,
        calibrated=read.calibrated,
        files=read.files,
    )
