"""Tests of caloforge.geometry.binning against the CaloChallenge conventions."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from caloforge.errors import DataError, SpecError
from caloforge.geometry.binning import (
    CALOCHALLENGE_DATASETS,
    Binning,
    LayerBinning,
    calochallenge_binning,
    read_binning_xml,
)


@pytest.mark.parametrize(
    ("dataset", "n_voxels", "n_layers", "readout"),
    [
        ("1-photons", 368, 24, (0, 1, 2, 3, 12)),
        ("1-pions", 533, 24, (0, 1, 2, 3, 12, 13, 14)),
        ("2", 6480, 45, tuple(range(45))),
        ("3", 40500, 45, tuple(range(45))),
    ],
)
def test_calochallenge_voxel_counts(dataset, n_voxels, n_layers, readout):
    binning = calochallenge_binning(dataset)
    assert binning.n_voxels == n_voxels
    assert binning.n_layers == n_layers
    assert binning.readout_layers == readout
    assert binning.name == f"calochallenge-{dataset}"
    for array in (binning.voxel_layer, binning.voxel_r, binning.voxel_alpha):
        assert array.shape == (n_voxels,)


def test_datasets_listed():
    assert CALOCHALLENGE_DATASETS == ("1-photons", "1-pions", "2", "3")


def test_unknown_dataset_is_a_spec_error():
    with pytest.raises(SpecError, match="unknown CaloChallenge dataset '4'"):
        calochallenge_binning("4")


@pytest.mark.parametrize(
    ("dataset", "shape", "dr"), [("2", (45, 16, 9), 4.65), ("3", (45, 50, 18), 2.325)]
)
def test_regular_datasets_equal_regular_binning(dataset, shape, dr):
    binning = calochallenge_binning(dataset)
    regular = Binning.regular(*shape, dr)
    assert binning.is_regular
    assert binning.grid_shape == shape
    np.testing.assert_allclose(binning.layers[0].r_edges, np.arange(shape[2] + 1) * dr)
    # Rounded edges compare exactly equal to the decimal edges of the XML.
    assert binning.layers == regular.layers
    np.testing.assert_array_equal(binning.voxel_eta, regular.voxel_eta)


def test_irregular_datasets():
    photons = calochallenge_binning("1-photons")
    assert not photons.is_regular
    assert photons.alpha_binned_layers == (1, 2)
    assert calochallenge_binning("1-pions").alpha_binned_layers == (1, 2, 12, 13)
    np.testing.assert_allclose(photons.layers[0].r_centres, [2.5, 7.5, 20, 40, 75, 150, 300, 500])
    with pytest.raises(DataError, match="irregular"):
        photons.reshape(np.zeros((2, 368)))


def test_layer_slices_cover_the_vector_in_order():
    binning = calochallenge_binning("1-pions")
    slices = binning.layer_slices
    assert len(slices) == binning.n_layers
    assert slices[0].start == 0
    assert slices[-1].stop == binning.n_voxels
    for before, after in itertools.pairwise(slices):
        assert before.stop == after.start
    for index, (layer, sl) in enumerate(zip(binning.layers, slices, strict=True)):
        assert sl.stop - sl.start == layer.n_voxels
        assert np.all(binning.voxel_layer[sl] == index)
    assert binning.layer_slices[4] == slice(213, 213)  # 8 + 100 + 100 + 5, not read out


def test_alpha_centres_match_calochallenge():
    # XMLHandler.py: midpoints of linspace(-pi, pi, n_alpha + 1).
    assert LayerBinning((0.0, 1.0), 1).alpha_centres.tolist() == [0.0]
    np.testing.assert_allclose(
        LayerBinning((0.0, 1.0), 4).alpha_centres,
        [-0.75 * np.pi, -0.25 * np.pi, 0.25 * np.pi, 0.75 * np.pi],
    )
    centres = LayerBinning((0.0, 1.0), 50).alpha_centres
    np.testing.assert_allclose(centres, -np.pi + (np.arange(50) + 0.5) * 2 * np.pi / 50)
    assert np.all((centres >= -np.pi) & (centres < np.pi))


def test_eta_phi_of_known_voxels():
    binning = calochallenge_binning("2")
    # layer 3, alpha bin 4, r bin 7: alpha = -pi + 4.5 * 2pi/16 = -7pi/16, r = 7.5 * 4.65 mm.
    index = ((3 * 16) + 4) * 9 + 7
    assert binning.voxel_layer[index] == 3
    assert binning.voxel_r[index] == pytest.approx(34.875)
    assert binning.voxel_alpha[index] == pytest.approx(-7 * math.pi / 16)
    assert binning.voxel_eta[index] == pytest.approx(6.803774980312475)
    assert binning.voxel_phi[index] == pytest.approx(-34.20488665406266)
    # first voxel: alpha = -15pi/16, r = 2.325 mm
    assert binning.voxel_eta[0] == pytest.approx(-2.2803257769375107)
    assert binning.voxel_phi[0] == pytest.approx(-0.4535849986874991)

    photons = calochallenge_binning("1-photons")
    # layer 0 has one alpha bin: alpha = 0, so eta = r and phi = 0.
    assert photons.voxel_eta[0] == pytest.approx(2.5)
    assert photons.voxel_phi[0] == 0.0
    # layer 1 starts at voxel 8: r = 1 mm, alpha = -pi + pi/10.
    assert photons.voxel_eta[8] == pytest.approx(math.cos(-0.9 * math.pi))
    assert photons.voxel_phi[8] == pytest.approx(math.sin(-0.9 * math.pi))
    # r varies fastest: voxel 9 is the next ring at the same angle.
    assert photons.voxel_alpha[9] == photons.voxel_alpha[8]
    assert photons.voxel_r[9] == pytest.approx(3.0)


def test_reshape_round_trip_follows_calochallenge_index():
    binning = Binning.regular(5, 4, 3, 2.0)
    n_z, n_alpha, n_r = binning.grid_shape
    flat = np.stack([np.arange(binning.n_voxels), -np.arange(binning.n_voxels)])
    grid = binning.reshape(flat)
    assert grid.shape == (2, n_z, n_alpha, n_r)
    z, alpha, r = np.meshgrid(np.arange(n_z), np.arange(n_alpha), np.arange(n_r), indexing="ij")
    np.testing.assert_array_equal(grid[0], ((z * n_alpha) + alpha) * n_r + r)
    np.testing.assert_array_equal(binning.flatten(grid), flat)
    # per-voxel coordinates reshape to the expected grids
    np.testing.assert_array_equal(binning.reshape(binning.voxel_layer), z)
    np.testing.assert_allclose(binning.reshape(binning.voxel_r), 1.0 + 2.0 * r)
    with pytest.raises(DataError, match=r"expected \(N, 60\)"):
        binning.reshape(np.zeros((2, 59)))
    with pytest.raises(DataError, match="grid has shape"):
        binning.flatten(np.zeros((2, 5, 3, 4)))


def test_dataset_3_reshape():
    binning = calochallenge_binning("3")
    grid = binning.reshape(binning.voxel_alpha)
    assert grid.shape == (45, 50, 18)
    assert np.all(grid[:, :, 0] == grid[:, :, 17])
    assert np.all(np.diff(grid[0, :, 0]) > 0)


def test_layer_not_read_out():
    for layer in (LayerBinning((0.0,), 1), LayerBinning((), 3), LayerBinning((5.0,), 10)):
        assert not layer.is_read_out
        assert layer.n_r == 0
        assert layer.n_voxels == 0
        assert layer.r_centres.shape == (0,)


def test_layer_validation():
    with pytest.raises(DataError, match="strictly increasing"):
        LayerBinning((0.0, 2.0, 1.0), 1)
    with pytest.raises(DataError, match="alpha bins"):
        LayerBinning((0.0, 1.0), 0)
    with pytest.raises(DataError, match="no read-out layer"):
        Binning((LayerBinning((0.0,), 1),))
    with pytest.raises(DataError, match="dr > 0"):
        Binning.regular(3, 2, 2, 0.0)


def test_binning_is_hashable_and_arrays_are_read_only():
    binning = Binning.regular(2, 2, 2, 1.0)
    assert hash(binning) == hash(Binning.regular(2, 2, 2, 1.0))
    assert binning.layers[0].r_edges == (0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="read-only"):
        binning.voxel_eta[0] = 1.0


def _write(tmp_path: Path, text: str, name: str = "binning.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


LAYERS = """
      <Layer id="0" r_edges="0,5,10" n_bin_alpha="1" />
      <Layer id="1" r_edges="0" n_bin_alpha="1" />
      <Layer id="2" r_edges="0,2,4,8" n_bin_alpha="3" />
"""


def test_read_binning_xml(tmp_path):
    path = _write(tmp_path, f'<Bins><Bin pid="22" name="photon">{LAYERS}</Bin></Bins>')
    binning = read_binning_xml(path)
    assert binning.name == "binning"
    assert binning.layers == (
        LayerBinning((0, 5, 10), 1),
        LayerBinning((0,), 1),
        LayerBinning((0, 2, 4, 8), 3),
    )
    assert binning.n_voxels == 2 + 9
    assert binning.readout_layers == (0, 2)


def test_read_binning_xml_chooses_particle(tmp_path):
    other = '<Layer id="0" r_edges="0,1" n_bin_alpha="1" />'
    text = (
        f'<Bins><Bin pid="22" name="photon">{LAYERS}</Bin>'
        f'<Bin pid="211" name="pion">{other}</Bin></Bins>'
    )
    path = _write(tmp_path, text)
    assert read_binning_xml(path, particle="pion").n_voxels == 1
    assert read_binning_xml(path, particle="photon").n_voxels == 11
    with pytest.raises(DataError, match="several particles"):
        read_binning_xml(path)
    with pytest.raises(DataError, match="no binning for particle 'electron'"):
        read_binning_xml(path, particle="electron")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<Bins><Bin", "is not a valid XML file"),
        ("<Bins></Bins>", "has no <Bin> element"),
        ('<Bins><Bin name="x"></Bin></Bins>', "has no <Layer> elements"),
        ('<Bins><Bin name="x"><Layer id="0" n_bin_alpha="1"/></Bin></Bins>', "lacks .*r_edges"),
        (
            '<Bins><Bin name="x"><Layer id="0" r_edges="0,a" n_bin_alpha="1"/></Bin></Bins>',
            "non-numeric",
        ),
        (
            '<Bins><Bin name="x"><Layer id="1" r_edges="0,1" n_bin_alpha="1"/></Bin></Bins>',
            "has id 1",
        ),
        (
            '<Bins><Bin name="x"><Layer id="0" r_edges="0,3,2" n_bin_alpha="1"/></Bin></Bins>',
            "layer 0: radial edges",
        ),
        (
            '<Bins><Bin name="x"><Layer id="0" r_edges="0" n_bin_alpha="1"/></Bin></Bins>',
            "no read-out layer",
        ),
    ],
)
def test_read_binning_xml_errors_name_the_file(tmp_path, text, message):
    path = _write(tmp_path, text, "bad.xml")
    with pytest.raises(DataError, match=message) as info:
        read_binning_xml(path)
    assert "bad.xml" in str(info.value)


def test_read_binning_xml_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"binning file .*nope\.xml does not exist"):
        read_binning_xml(tmp_path / "nope.xml")
    with pytest.raises(DataError, match="cannot read binning file"):
        read_binning_xml(tmp_path)
