"""Reading the HDF5 shower files of the CaloChallenge 2022 (arXiv:2410.21611).

A CaloChallenge file holds two gzip-compressed datasets, both in MeV: ``incident_energies``
of shape (N, 1) and ``showers`` of shape (N, V), V fixed by the dataset's binning (368, 533,
6480 or 40500 voxels). Datasets 2 and 3 are calibrated (active energy divided by the sampling
fraction), so every file read here is marked ``calibrated``.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

import h5py
import numpy as np

from caloforge.data.showers import ShowerData
from caloforge.errors import DataError
from caloforge.geometry.binning import CALOCHALLENGE_DATASETS, calochallenge_binning

log = logging.getLogger(__name__)


@cache
def _datasets_by_voxel_count() -> dict[int, str]:
    return {calochallenge_binning(name).n_voxels: name for name in CALOCHALLENGE_DATASETS}


def detect_calochallenge_dataset(n_voxels: int) -> str | None:
    """The CaloChallenge dataset whose showers have ``n_voxels`` voxels.

    Args:
        n_voxels: length of a flat shower vector.

    Returns:
        ``"1-photons"`` (368), ``"1-pions"`` (533), ``"2"`` (6480), ``"3"`` (40500), or None.
    """
    return _datasets_by_voxel_count().get(n_voxels)


def _get_dataset(file: h5py.File, key: str, path: Path) -> h5py.Dataset:
    item = file.get(key)
    if item is None:
        found = ", ".join(sorted(file.keys())) or "nothing"
        raise DataError(f"{path} has no '{key}' dataset (it holds: {found})")
    if not isinstance(item, h5py.Dataset):
        raise DataError(f"'{key}' in {path} is a group, not a dataset")
    if not np.issubdtype(item.dtype, np.floating):
        raise DataError(f"'{key}' in {path} has dtype {item.dtype}, expected floating point")
    return item


def read_calochallenge(
    path: str | os.PathLike[str], dataset: str, *, start: int = 0, stop: int | None = None
) -> ShowerData:
    """Reads showers ``[start:stop]`` of a CaloChallenge HDF5 file.

    Only the requested rows are read from disk. ``start`` and ``stop`` follow Python slice
    rules (negative values count from the end; out-of-range values are clipped). The stored
    dtypes are kept.

    Args:
        path: the HDF5 file.
        dataset: its CaloChallenge dataset, ``"1-photons"``, ``"1-pions"``, ``"2"`` or ``"3"``.
        start: first shower to read.
        stop: one past the last shower to read; None reads to the end.

    Returns:
        Energies in MeV, shape (n,), and showers in MeV, shape (n, V), on the dataset's
        binning; theta and phi are None; attrs ``{"source": "calochallenge", "dataset": ...,
        "calibrated": True}``.

    Raises:
        DataError: if the file is missing, not HDF5, lacks a dataset, or has shapes that do
            not fit the dataset's binning.
        SpecError: if ``dataset`` is not a CaloChallenge dataset name.
    """
    binning = calochallenge_binning(dataset)
    path = Path(path)
    if not path.exists():
        raise DataError(f"CaloChallenge file {path} does not exist")
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    try:
        if not h5py.is_hdf5(path):
            raise DataError(f"{path} is not an HDF5 file")
        with h5py.File(path, "r") as file:
            energies_ds = _get_dataset(file, "incident_energies", path)
            showers_ds = _get_dataset(file, "showers", path)
            if not (energies_ds.ndim == 1 or (energies_ds.ndim == 2 and energies_ds.shape[1] == 1)):
                raise DataError(
                    f"'incident_energies' in {path} has shape {energies_ds.shape}, expected (N, 1)"
                )
            if showers_ds.ndim != 2:
                raise DataError(
                    f"'showers' in {path} has shape {showers_ds.shape}, expected (N, V)"
                )
            n_voxels = showers_ds.shape[1]
            if n_voxels != binning.n_voxels:
                guess = detect_calochallenge_dataset(n_voxels)
                hint = f"; it looks like dataset {guess}" if guess else ""
                raise DataError(
                    f"{path} has {n_voxels} voxels per shower but CaloChallenge dataset "
                    f"{dataset} has {binning.n_voxels}{hint}"
                )
            n = energies_ds.shape[0]
            if showers_ds.shape[0] != n:
                raise DataError(
                    f"{path} has {n} incident energies but {showers_ds.shape[0]} showers"
                )
            lo, hi, _ = slice(start, stop).indices(n)
            hi = max(lo, hi)
            energies = np.asarray(energies_ds[lo:hi]).reshape(-1)
            showers = np.asarray(showers_ds[lo:hi])
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    log.debug("read showers %d:%d of %s (CaloChallenge dataset %s)", lo, hi, path, dataset)
    return ShowerData(
        energies=energies,
        showers=showers,
        binning=binning,
        attrs={"source": "calochallenge", "dataset": dataset, "calibrated": True},
    )
