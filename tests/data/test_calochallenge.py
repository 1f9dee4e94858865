"""Tests of caloforge.data.calochallenge on small files with the published layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from caloforge.data.calochallenge import detect_calochallenge_dataset, read_calochallenge
from caloforge.errors import DataError, SpecError
from caloforge.geometry.binning import calochallenge_binning

# dataset -> (voxels, dtype of the published files)
PUBLISHED = {
    "1-photons": (368, np.float64),
    "1-pions": (533, np.float64),
    "2": (6480, np.float32),
    "3": (40500, np.float32),
}


def _write(
    path: Path,
    n: int,
    n_voxels: int,
    dtype: type = np.float32,
    *,
    energies_shape: tuple[int, ...] | None = None,
    skip: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    energies = rng.uniform(1e3, 1e6, size=energies_shape or (n, 1)).astype(dtype)
    showers = (rng.exponential(size=(n, n_voxels)) * (rng.random((n, n_voxels)) < 0.2)).astype(
        dtype
    )
    with h5py.File(path, "w") as file:
        if skip != "incident_energies":
            file.create_dataset("incident_energies", data=energies, compression="gzip")
        if skip != "showers":
            file.create_dataset("showers", data=showers, compression="gzip")
    return energies, showers


@pytest.mark.parametrize("dataset", list(PUBLISHED))
def test_read_published_layout(tmp_path, dataset):
    n_voxels, dtype = PUBLISHED[dataset]
    path = tmp_path / f"dataset_{dataset}.hdf5"
    energies, showers = _write(path, 4, n_voxels, dtype)
    data = read_calochallenge(path, dataset)
    assert len(data) == 4
    assert data.energies.shape == (4,)
    assert data.energies.dtype == dtype
    assert data.showers.dtype == dtype
    np.testing.assert_array_equal(data.energies, energies[:, 0])
    np.testing.assert_array_equal(data.showers, showers)
    assert data.binning == calochallenge_binning(dataset)
    assert data.theta is None
    assert data.phi is None
    assert data.attrs == {"source": "calochallenge", "dataset": dataset, "calibrated": True}


def test_read_slice(tmp_path):
    path = tmp_path / "d1.hdf5"
    energies, showers = _write(path, 10, 368, np.float64)
    data = read_calochallenge(path, "1-photons", start=3, stop=7)
    np.testing.assert_array_equal(data.energies, energies[3:7, 0])
    np.testing.assert_array_equal(data.showers, showers[3:7])
    assert len(read_calochallenge(path, "1-photons", start=8)) == 2
    assert len(read_calochallenge(path, "1-photons", stop=-1)) == 9
    assert len(read_calochallenge(path, "1-photons", start=20)) == 0
    assert len(read_calochallenge(path, "1-photons", start=6, stop=2)) == 0


def test_flat_energies_are_accepted(tmp_path):
    path = tmp_path / "flat.hdf5"
    energies, _ = _write(path, 3, 368, energies_shape=(3,))
    np.testing.assert_array_equal(read_calochallenge(path, "1-photons").energies, energies)


@pytest.mark.parametrize(
    ("n_voxels", "expected"),
    [(368, "1-photons"), (533, "1-pions"), (6480, "2"), (40500, "3"), (100, None)],
)
def test_detect_dataset(n_voxels, expected):
    assert detect_calochallenge_dataset(n_voxels) == expected


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"missing\.hdf5: no such file"):
        read_calochallenge(tmp_path / "missing.hdf5", "2")


def test_not_a_file(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_calochallenge(tmp_path, "2")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.hdf5"
    path.write_text("incident_energies,showers\n")
    with pytest.raises(DataError, match=r"text\.hdf5: not a readable HDF5 file"):
        read_calochallenge(path, "2")


@pytest.mark.parametrize("key", ["incident_energies", "showers"])
def test_missing_key(tmp_path, key):
    path = tmp_path / "partial.hdf5"
    _write(path, 2, 6480, skip=key)
    with pytest.raises(DataError, match=f"no dataset '{key}'"):
        read_calochallenge(path, "2")


def test_group_instead_of_dataset(tmp_path):
    path = tmp_path / "group.hdf5"
    with h5py.File(path, "w") as file:
        file.create_group("showers")
        file.create_dataset("incident_energies", data=np.ones((2, 1)))
    with pytest.raises(DataError, match=r"no dataset 'showers'"):
        read_calochallenge(path, "2")


def test_voxel_count_mismatch_names_the_likely_dataset(tmp_path):
    path = tmp_path / "d2.hdf5"
    _write(path, 2, 6480)
    with pytest.raises(
        DataError,
        match="has 6480 voxels per shower but CaloChallenge dataset 3 has 40500; "
        "it looks like dataset 2",
    ):
        read_calochallenge(path, "3")
    odd = tmp_path / "odd.hdf5"
    _write(odd, 2, 100)
    with pytest.raises(DataError, match=r"has 100 voxels per shower but .* has 6480$"):
        read_calochallenge(odd, "2")


def test_mismatched_n(tmp_path):
    path = tmp_path / "n.hdf5"
    with h5py.File(path, "w") as file:
        file.create_dataset("incident_energies", data=np.ones((3, 1)))
        file.create_dataset("showers", data=np.ones((2, 368)))
    with pytest.raises(DataError, match=r"showers has shape \(2, 368\), expected \(3, V\)"):
        read_calochallenge(path, "1-photons")


@pytest.mark.parametrize(
    ("energies_shape", "showers_shape", "message"),
    [
        ((2, 2), (2, 368), r"incident_energies has shape \(2, 2\), expected \(N, 1\)"),
        ((2, 1), (2, 368, 1), r"showers has shape \(2, 368, 1\), expected \(2, V\)"),
    ],
)
def test_bad_shapes(tmp_path, energies_shape, showers_shape, message):
    path = tmp_path / "shape.hdf5"
    with h5py.File(path, "w") as file:
        file.create_dataset("incident_energies", data=np.ones(energies_shape))
        file.create_dataset("showers", data=np.ones(showers_shape))
    with pytest.raises(DataError, match=message):
        read_calochallenge(path, "1-photons")


def test_integer_data_rejected(tmp_path):
    path = tmp_path / "int.hdf5"
    with h5py.File(path, "w") as file:
        file.create_dataset("incident_energies", data=np.ones((2, 1), dtype=np.int64))
        file.create_dataset("showers", data=np.ones((2, 368)))
    with pytest.raises(DataError, match="expected floating point"):
        read_calochallenge(path, "1-photons")


def test_unknown_dataset(tmp_path):
    path = tmp_path / "d.hdf5"
    _write(path, 1, 368)
    with pytest.raises(SpecError, match="unknown CaloChallenge dataset"):
        read_calochallenge(path, "1-electrons")
