"""Open any shower file into the in-memory representation :class:`ShowerData`.

Three kinds of files are read on their binning:

* caloforge files (attribute ``format == "caloforge-showers"``): the cylindrical mesh of their
  ``mesh`` attribute;
* CaloChallenge files (datasets 1-photons, 1-pions, 2, 3): the binning XML shipped with
  caloforge, chosen by name or detected from the voxel count;
* any file in the CaloChallenge layout with a binning XML given by the user.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.data.contract import FORMAT_NAME
from caloforge.data.io import check_layout, decode_attrs, iter_chunks, open_h5
from caloforge.data.showers import ShowerData
from caloforge.errors import DataError, SpecError
from caloforge.geometry.binning import (
    CALOCHALLENGE_DATASETS,
    Binning,
    calochallenge_binning,
    read_binning_xml,
)
from caloforge.geometry.mesh import MeshSpec

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)


@cache
def _datasets_by_voxel_count() -> dict[int, str]:
    return {calochallenge_binning(name).n_voxels: name for name in CALOCHALLENGE_DATASETS}


def detect_calochallenge_dataset(n_voxels: int) -> str | None:
    """The CaloChallenge dataset with ``n_voxels`` voxels per shower, or None."""
    return _datasets_by_voxel_count().get(n_voxels)


@dataclass(frozen=True)
class FileInfo:
    """What a shower file is, without its data."""

    path: Path
    kind: str  # "caloforge", "calochallenge-<dataset>" or "custom binning"
    n: int
    n_voxels: int
    binning: Binning
    attrs: dict[str, Any]

    @property
    def is_caloforge(self) -> bool:
        return self.kind == "caloforge"


def _mesh_binning(path: Path, attrs: dict[str, Any], n_voxels: int) -> Binning:
    mesh_attr = attrs.get("mesh")
    try:
        mesh = MeshSpec(**mesh_attr) if isinstance(mesh_attr, dict) else None
    except (TypeError, SpecError):
        mesh = None
    if mesh is None:
        raise DataError(f"{path}: the 'mesh' attribute is missing or malformed ({mesh_attr!r})")
    if mesh.n_voxels != n_voxels:
        raise DataError(
            f"{path}: showers have {n_voxels} voxels but the file's mesh "
            f"{mesh.n_z}x{mesh.n_phi}x{mesh.n_r} has {mesh.n_voxels}"
        )
    return mesh.binning()


def _other_binning(
    path: Path, n_voxels: int, dataset: str | None, binning_xml: PathLike | None
) -> tuple[str, Binning]:
    if binning_xml is not None:
        binning = read_binning_xml(binning_xml)
        if binning.n_voxels != n_voxels:
            raise DataError(
                f"{path} has {n_voxels} voxels per shower but binning {binning_xml} "
                f"has {binning.n_voxels}"
            )
        return "custom binning", binning
    guess = detect_calochallenge_dataset(n_voxels)
    dataset = dataset or guess
    if dataset is None:
        raise DataError(
            f"{path}: {n_voxels} voxels per shower fit no CaloChallenge dataset (368, 533, "
            "6480 or 40500); read it with its binning XML or name its CaloChallenge dataset"
        )
    binning = calochallenge_binning(dataset)
    if binning.n_voxels != n_voxels:
        hint = f"; it looks like dataset {guess}" if guess else ""
        raise DataError(
            f"{path} has {n_voxels} voxels per shower but CaloChallenge dataset {dataset} "
            f"has {binning.n_voxels}{hint}"
        )
    return f"calochallenge-{dataset}", binning


def describe_file(
    path: PathLike,
    dataset: str | None = None,
    binning_xml: PathLike | None = None,
    *,
    own_mesh: bool = True,
) -> FileInfo:
    """Check a file's layout and find its binning.

    A caloforge file is read on its own mesh if ``own_mesh`` (``dataset`` and ``binning_xml``
    are then ignored); any other file on ``binning_xml`` if given, else as CaloChallenge
    ``dataset``, else as the CaloChallenge dataset its voxel count identifies.

    Raises:
        DataError: for a missing, unreadable, corrupt or foreign file, wrong shapes or dtypes,
            or a voxel count that fits no binning.
        SpecError: for an unknown dataset name.
    """
    path = Path(path)
    with open_h5(path) as f:
        attrs = decode_attrs(f.attrs)
        is_caloforge = attrs.get("format") == FORMAT_NAME
        n = check_layout(f, path, require_angles=is_caloforge)
        n_voxels = int(f["showers"].shape[1])
    if is_caloforge and own_mesh:
        if dataset is not None or binning_xml is not None:
            log.warning("%s is a caloforge file: read on its own mesh, not the binning given", path)
        kind, binning = "caloforge", _mesh_binning(path, attrs, n_voxels)
    else:
        kind, binning = _other_binning(path, n_voxels, dataset, binning_xml)
    return FileInfo(path, kind, n, n_voxels, binning, attrs)


def read_showers(
    path: PathLike,
    *,
    dataset: str | None = None,
    binning_xml: PathLike | None = None,
    start: int = 0,
    stop: int | None = None,
    own_mesh: bool = True,
) -> ShowerData:
    """Read showers ``[start:stop]`` of any shower file (only those rows are read).

    ``start`` and ``stop`` follow Python slice rules. Stored dtypes are kept. The binning is
    found as in :func:`describe_file`.

    Returns:
        Energies (n,) and showers (n, V) in MeV on the file's binning; theta and phi (n,) in
        rad when the file has them; attrs: the file's attributes, plus for files that are not
        caloforge's ``source``, ``dataset`` (CaloChallenge) and ``calibrated``.

    Raises:
        DataError, SpecError: as :func:`describe_file`.
    """
    info = describe_file(path, dataset, binning_xml, own_mesh=own_mesh)
    lo, hi, _ = slice(start, stop).indices(info.n)
    hi = max(lo, hi)
    with open_h5(info.path) as f:
        try:
            energies = np.asarray(f["incident_energies"][lo:hi]).reshape(-1)
            showers = np.asarray(f["showers"][lo:hi])
            angles = [
                np.asarray(f[key][lo:hi]).reshape(-1) if key in f else None
                for key in ("incident_theta", "incident_phi")
            ]
        except OSError:
            raise DataError(f"{info.path}: cannot read showers {lo}-{hi} (corrupt file?)") from None
    attrs = dict(info.attrs)
    if info.kind != "caloforge":
        attrs.setdefault("source", "calochallenge" if info.kind != "custom binning" else "hdf5")
        if info.kind.startswith("calochallenge-"):
            attrs.setdefault("dataset", info.kind.removeprefix("calochallenge-"))
            attrs.setdefault("calibrated", True)
    return ShowerData(energies, showers, info.binning, angles[0], angles[1], attrs)


def iter_showers(
    path: PathLike,
    chunk_size: int = 1000,
    *,
    dataset: str | None = None,
    binning_xml: PathLike | None = None,
) -> Iterator[ShowerData]:
    """Stream any shower file as :class:`ShowerData` chunks of ``chunk_size`` showers."""
    info = describe_file(path, dataset, binning_xml)
    for energies, showers, theta, phi in iter_chunks(info.path, chunk_size):
        yield ShowerData(energies, showers, info.binning, theta, phi, dict(info.attrs))
