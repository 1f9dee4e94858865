"""The particle-independent readout and the placement of a mesh's voxels in the detector."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caloforge.geometry.detectors import load_detector
from caloforge.geometry.mesh import MeshSpec, barrel_entry, deposit, direction, voxel_points
from caloforge.geometry.readout import ReadoutSpec, merge


@pytest.mark.parametrize(
    ("theta", "phi"), [(math.pi / 2, 0.0), (0.9, 2.5), (2.2, -1.0), (0.0, 0.0)]
)
def test_voxel_points_fall_in_their_own_voxels(theta, phi):
    mesh = MeshSpec()
    d = direction(theta, phi)
    origin = np.array([10.0, -20.0, 30.0])
    for split in ((1, 1, 1), (2, 3, 2)):
        points = voxel_points(mesh, origin, d, split)
        per_voxel = math.prod(split)
        assert points.shape == (mesh.n_voxels * per_voxel, 3)
        for k in (0, 1, 17, mesh.n_voxels - 1):
            mine = points[k * per_voxel : (k + 1) * per_voxel]
            one = deposit(mesh, mine, np.ones(per_voxel), origin, d)
            assert one[k] == per_voxel
            assert one.sum() == per_voxel


def test_voxel_points_have_the_mesh_geometry():
    mesh = MeshSpec(n_z=3, n_phi=4, n_r=2, dz_mm=2.0, dr_mm=5.0)
    d = direction(math.pi / 2, 0.0)  # along +x
    c = voxel_points(mesh, np.zeros(3), d).reshape(3, 4, 2, 3)
    np.testing.assert_allclose(c[:, 0, 0, 0], [1.0, 3.0, 5.0])  # depth along the axis
    radius = np.linalg.norm(c[..., 1:], axis=-1)  # distance from the axis
    np.testing.assert_allclose(radius[..., 0], 2.5)
    np.testing.assert_allclose(radius[..., 1], 7.5)


@pytest.fixture
def readout() -> ReadoutSpec:
    return ReadoutSpec(inner_radius_mm=100.0, layer_thickness_mm=2.0, n_layers=5,
                       length_mm=200.0, n_phi=8, z_cell_mm=10.0)  # fmt: skip


def test_readout_cells_of_known_points(readout):
    assert readout.shape == (5, 8, 20)
    points = np.array([
        [101.0, 0.0, -99.0],  # layer 0, phi just above 0 (segment 4 of 8 from -pi), z cell 0
        [0.0, 109.0, 55.0],   # layer 4, phi = pi/2 (segment 6), z cell 15
        [99.0, 0.0, 0.0],     # inside the inner radius
        [105.0, 0.0, 100.5],  # beyond the barrel's end
        [0.0, -111.0, 0.0],   # behind the last layer
    ])  # fmt: skip
    cells = readout.cells(points)
    assert cells[0] == (0 * 8 + 4) * 20 + 0
    assert cells[1] == (4 * 8 + 6) * 20 + 15
    assert list(cells[2:]) == [-1, -1, -1]


def test_fill_sums_per_cell_and_keeps_the_energy_inside(readout):
    rng = np.random.default_rng(0)
    points = np.column_stack([
        rng.uniform(-110, 110, 500), rng.uniform(-110, 110, 500), rng.uniform(-100, 100, 500)
    ])  # fmt: skip
    energies = rng.uniform(0, 1, 500)
    cells, summed = readout.fill(points, energies)
    inside = readout.cells(points) >= 0
    assert np.all(np.diff(cells) > 0)
    assert summed.sum() == pytest.approx(energies[inside].sum())
    both = merge((cells, summed), readout.fill(points[:10], energies[:10]))
    assert both[1].sum() == pytest.approx(summed.sum() + energies[:10][inside[:10]].sum())
    profile = readout.layer_profile(cells, summed)
    assert profile.shape == (5,)
    assert profile.sum() == pytest.approx(summed.sum())


def test_a_shower_placed_at_the_entry_point_lands_in_the_layers_it_crosses():
    detector = load_detector("par04-siw")
    readout = ReadoutSpec.of(detector)
    mesh = MeshSpec()
    theta, phi = math.pi / 2, 0.3
    d, origin = direction(theta, phi), barrel_entry(theta, phi, detector.inner_radius_mm)
    points = voxel_points(mesh, origin, d, split=(4, 1, 1))
    cells, energies = readout.fill(points, np.ones(len(points)))
    layers = cells // (readout.n_phi * readout.n_z)
    # at normal incidence a mesh z cell (3.4 mm) spans two 1.7 mm layers: cut in four along
    # z, each voxel shares its energy between them, so no layer is skipped (only the barrel's
    # curvature moves a little of it deeper: a transverse offset is a larger radius)
    profile = readout.layer_profile(cells, energies)[:90]
    assert profile.min() > 0.9 * profile.mean()
    assert profile.max() < 1.1 * profile.mean()
    assert layers.min() == 0
    depth = mesh.n_z * mesh.dz_mm
    assert layers.max() == min(readout.n_layers, math.ceil(depth / detector.layer_thickness_mm)) - 1
    phis = (cells // readout.n_z) % readout.n_phi
    expected = math.floor((phi + math.pi) * readout.n_phi / (2 * math.pi))
    assert expected in set(phis.tolist())
