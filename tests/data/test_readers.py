from __future__ import annotations

import h5py
import numpy as np
import pytest

from caloforge.data.io import ShowerWriter, decode_attrs, encode_attrs, iter_chunks
from caloforge.data.readers import describe_file, read_showers
from caloforge.errors import OutputError
from caloforge.geometry.binning import calochallenge_binning
from caloforge.geometry.mesh import MeshSpec


def test_caloforge_file_reads_into_shower_data_on_its_mesh(tmp_path, make_caloforge_file):
    mesh = MeshSpec(n_z=5, n_phi=4, n_r=3, dz_mm=7.0, dr_mm=9.0)
    path = make_caloforge_file(tmp_path / "f.h5", n=10, mesh=mesh, seed=3)
    data = read_showers(path, start=2, stop=6)
    assert len(data) == 4
    assert data.binning == mesh.binning()
    assert data.theta is not None
    assert data.theta.shape == (4,)
    assert data.phi is not None
    assert data.phi.shape == (4,)
    assert data.attrs["detector_name"]
    with h5py.File(path) as f:
        np.testing.assert_array_equal(data.showers, f["showers"][2:6])
        np.testing.assert_array_equal(data.energies, f["incident_energies"][2:6, 0])


def test_calochallenge_layout_reads_on_the_detected_binning(tmp_path):
    path = tmp_path / "cc.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("incident_energies", data=np.full((3, 1), 1000.0))
        f.create_dataset("showers", data=np.ones((3, 368), dtype=np.float32))
    info = describe_file(path)
    assert info.kind == "calochallenge-1-photons"
    data = read_showers(path)
    assert data.binning == calochallenge_binning("1-photons")
    assert data.theta is None
    assert data.attrs == {"source": "calochallenge", "dataset": "1-photons", "calibrated": True}


def test_chunks_cover_the_file_in_order(tmp_path, make_caloforge_file):
    path = make_caloforge_file(tmp_path / "f.h5", n=23)
    parts = list(iter_chunks(path, chunk_size=5))
    assert [len(p[0]) for p in parts] == [5, 5, 5, 5, 3]
    full = read_showers(path)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), full.showers)


def test_attributes_round_trip():
    attrs = {"mesh": {"n_z": 45}, "seed": 3, "name": "x", "none": None, "list": [1, 2]}
    decoded = decode_attrs(encode_attrs(attrs))
    assert decoded == {"mesh": {"n_z": 45}, "seed": 3, "name": "x", "list": [1, 2]}


def test_writer_leaves_nothing_behind_when_incomplete_or_failing(tmp_path):
    out = tmp_path / "o.h5"
    with (
        pytest.raises(OutputError, match="1 of 2 showers written"),
        ShowerWriter(out, 2, 4, {}) as w,
    ):
        w.write(np.ones(1), np.ones((1, 4)), np.ones(1), np.ones(1))
    with pytest.raises(OutputError, match="no showers"):
        ShowerWriter(out, 0, 4, {})
    with pytest.raises(RuntimeError), ShowerWriter(out, 2, 4, {}):
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_iter_showers_streams_shower_data(tmp_path, make_caloforge_file):
    from caloforge.data.readers import iter_showers

    path = make_caloforge_file(tmp_path / "f.h5", n=7)
    chunks = list(iter_showers(path, chunk_size=3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    full = read_showers(path)
    np.testing.assert_array_equal(np.concatenate([c.showers for c in chunks]), full.showers)
    assert all(c.binning == full.binning for c in chunks)
