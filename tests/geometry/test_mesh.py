from __future__ import annotations

import math

import numpy as np
import pytest

from caloforge.errors import SpecError
from caloforge.geometry.mesh import (
    MeshSpec,
    barrel_entry,
    deposit,
    direction,
    parse_cells,
    transverse_basis,
)


def test_reference_mesh_is_par04s():
    mesh = MeshSpec()
    assert mesh.shape == (45, 16, 9)
    assert mesh.n_voxels == 6480
    assert (mesh.dz_mm, mesh.dr_mm) == (3.4, 4.65)


def test_scaled_mesh_keeps_extent_in_x0_and_moliere_radius():
    ref = MeshSpec.scaled(4.2, 10.7, 4.2, 10.7)
    assert ref.dz_mm == pytest.approx(3.4)
    assert ref.dr_mm == pytest.approx(4.65)
    other = MeshSpec.scaled(8.4, 5.35, 4.2, 10.7)
    assert other.shape == ref.shape
    assert other.dz_mm == pytest.approx(6.8)
    assert other.dr_mm == pytest.approx(2.325)
    fine = MeshSpec.scaled(4.2, 10.7, 4.2, 10.7, counts=(45, 50, 18))
    assert fine.dr_mm == pytest.approx(2.325)  # CaloChallenge dataset 3
    assert fine.binning().n_voxels == 40500


def test_parse_cells():
    assert parse_cells("45x50x18") == (45, 50, 18)
    for bad in ("45x16", "axbxc", "0x16x9"):
        with pytest.raises(SpecError, match=r"^cells must look like"):
            parse_cells(bad)


@pytest.mark.parametrize(("theta", "phi"), [(math.pi / 2, 0.0), (0.9, 1.0), (2.2, 5.5)])
def test_transverse_basis_is_orthonormal(theta, phi):
    d = direction(theta, phi)
    u, v = transverse_basis(d)
    m = np.stack([d, u, v])
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    # Par04's frame: u = e_theta, v = e_phi
    np.testing.assert_allclose(
        u,
        [math.cos(theta) * math.cos(phi), math.cos(theta) * math.sin(phi), -math.sin(theta)],
        atol=1e-12,
    )
    np.testing.assert_allclose(v, [-math.sin(phi), math.cos(phi), 0.0], atol=1e-12)


def test_barrel_entry_is_on_the_inner_radius():
    e = barrel_entry(1.0, 2.0, 800.0)
    assert math.hypot(e[0], e[1]) == pytest.approx(800.0)


def test_deposit_puts_known_points_in_known_cells():
    mesh = MeshSpec()
    theta, phi = 1.2, 0.4
    d = direction(theta, phi)
    origin = barrel_entry(theta, phi, 800.0)
    u, v = transverse_basis(d)
    # (z, r, alpha) -> expected (iz, iphi, ir)
    cases = [
        ((0.1, 0.1, 0.01), (0, 8, 0)),
        ((3.5, 5.0, -math.pi + 0.01), (1, 0, 1)),
        ((44 * 3.4 + 1, 8 * 4.65 + 1, math.pi / 2 + 0.01), (44, 12, 8)),
    ]
    points = np.array(
        [origin + z * d + r * (math.cos(a) * u + math.sin(a) * v) for (z, r, a), _ in cases]
    )
    energies = np.array([1.0, 2.0, 4.0])
    voxels = deposit(mesh, points, energies, origin, d).reshape(mesh.shape)
    for ((_, _, _), cell), e in zip(cases, energies, strict=True):
        assert voxels[cell] == e
    assert voxels.sum() == 7.0


def test_deposit_drops_energy_outside_the_mesh():
    mesh = MeshSpec()
    d = direction(math.pi / 2, 0.0)
    origin = barrel_entry(math.pi / 2, 0.0, 800.0)
    outside = np.array([origin - 1.0 * d, origin + 200.0 * d, origin + np.array([0, 0, 50.0])])
    assert deposit(mesh, outside, np.ones(3), origin, d).sum() == 0.0


def test_mesh_binning_matches_calochallenge_dataset_2():
    from caloforge.geometry.binning import calochallenge_binning

    assert MeshSpec().binning().layers == calochallenge_binning("2").layers
