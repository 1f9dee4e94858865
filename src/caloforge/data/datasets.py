"""Training sets for the generative models: caloforge shower files -> preprocessed tensors.

Each file contributes its showers under its detector's one-hot slot. The condition ranges the
model supports are those of the files' simulation specifications (``energy_spec_gev``,
``theta_spec_rad`` attributes), phi being periodic. A random fraction of every file is held out
for the validation loss; the preprocessing is fitted on the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caloforge.data.contract import DETECTOR_ATTRS, FORMAT_NAME, is_calibrated
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


def load_training_set(
    paths: list[PathLike], *, val_fraction: float = 0.05, seed: int = 0, limit: int | None = None
) -> TrainingSet:
    """Read caloforge shower files into a preprocessed training set.

    Args:
        paths: one or more files; files of the same detector share a one-hot slot (slots in
            order of first appearance).
        val_fraction: fraction of each file held out for validation.
        seed: seed of the hold-out choice.
        limit: read at most this many showers per file.

    Raises:
        DataError: for unreadable files, files of different meshes, particles or energy
            scales, or files without angles.
    """
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
    names = tuple(detectors)

    e_ranges = [_spec_range(d.attrs, "energy_spec_gev", d.energies, 1e3) for d in datas]
    t_ranges = [_spec_range(d.attrs, "theta_spec_rad", d.theta, 1.0) for d in datas]  # type: ignore[arg-type]
    conditions = ConditionTransform(
        (min(r[0] for r in e_ranges), max(r[1] for r in e_ranges)),
        (min(r[0] for r in t_ranges), max(r[1] for r in t_ranges)),
        names,
    )
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
    train_showers = np.concatenate([d.showers[m] for d, m, _ in train_parts])
    train_energies = np.concatenate([d.energies[m] for d, m, _ in train_parts])
    shower_transform = ShowerTransform.fit(train_showers, train_energies)
    del train_showers
    preprocessing = Preprocessing(shower_transform, conditions, shape)

    def tensors(
        parts: list[tuple[ShowerData, np.ndarray, int]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xs, cs = [], []
        for data, mask, slot in parts:
            energies = data.energies[mask]
            xs.append(shower_transform.forward(data.showers[mask], energies))
            cs.append(
                conditions.forward(
                    energies,
                    data.theta[mask],  # type: ignore[index]
                    data.phi[mask],  # type: ignore[index]
                    np.full(int(mask.sum()), slot),
                )
            )
        x = torch.from_numpy(np.concatenate(xs)).reshape(-1, 1, *shape)
        return x, torch.from_numpy(np.concatenate(cs))

    x, cond = tensors(train_parts)
    val_x, val_cond = tensors(val_parts)
    log.info(
        "training set: %d showers (%d held out) from %d files, detectors %s",
        len(x),
        len(val_x),
        len(paths),
        ", ".join(names),
    )
    return TrainingSet(
        x=x,
        cond=cond,
        val_x=val_x,
        val_cond=val_cond,
        preprocessing=preprocessing,
        detectors=detectors,
        particle=str(first.attrs.get("particle", "unknown")),
        calibrated=is_calibrated(first.attrs, caloforge_file=True),
        sigma_data=float(x.std()),
        files=files,
    )
