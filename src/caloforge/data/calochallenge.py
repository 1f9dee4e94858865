"""Reading the HDF5 shower files of the CaloChallenge 2022 (arXiv:2410.21611).

A CaloChallenge file holds two gzip-compressed datasets, both in MeV: ``incident_energies``
of shape (N, 1) and ``showers`` of shape (N, V), V fixed by the dataset's binning (368, 533,
6480 or 40500 voxels). Datasets 2 and 3 are calibrated (active energy divided by the sampling
fraction), so every file read here is marked ``calibrated``.
"""

from __future__ import annotations

from caloforge.data.readers import PathLike, detect_calochallenge_dataset, read_showers
from caloforge.data.showers import ShowerData
from caloforge.geometry.binning import calochallenge_binning

__all__ = ["detect_calochallenge_dataset", "read_calochallenge"]


def read_calochallenge(
    path: PathLike, dataset: str, *, start: int = 0, stop: int | None = None
) -> ShowerData:
    """Read showers ``[start:stop]`` of a file as CaloChallenge ``dataset``.

    Only the requested rows are read; ``start`` and ``stop`` follow Python slice rules; the
    stored dtypes are kept. Any file in the CaloChallenge layout is read on the dataset's
    binning, a caloforge export included.

    Args:
        path: the HDF5 file.
        dataset: ``"1-photons"``, ``"1-pions"``, ``"2"`` or ``"3"``.
        start: first shower to read.
        stop: one past the last shower to read; None reads to the end.

    Returns:
        Energies in MeV, shape (n,), and showers in MeV, shape (n, V), on the dataset's
        binning; attrs include ``source``, ``dataset`` and ``calibrated``.

    Raises:
        DataError: if the file is missing, not HDF5, lacks a dataset, or has shapes or dtypes
            that do not fit the dataset's binning.
        SpecError: if ``dataset`` is not a CaloChallenge dataset name.
    """
    calochallenge_binning(dataset)  # an unknown name is a SpecError before any I/O
    data = read_showers(path, dataset=dataset, start=start, stop=stop, own_mesh=False)
    data.attrs.update(source="calochallenge", dataset=dataset, calibrated=True)
    return data
