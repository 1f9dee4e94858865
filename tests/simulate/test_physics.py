"""Physics of real Geant4 showers in par04-siw (runs Geant4: tens of seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caloforge.data.specs import PrimarySpec, ValueSpec, draw_conditions
from caloforge.geometry.detectors import load_detector
from caloforge.geometry.mesh import MeshSpec
from caloforge.simulate.calibrate import measure_sampling_fraction
from caloforge.simulate.emphysics import check_symbols
from caloforge.simulate.materials import detector_properties, material_properties
from caloforge.simulate.process import run_in_geant4_process, simulate_showers

pytestmark = pytest.mark.geant4

ENERGIES = (1.0, 10.0, 100.0)
N_PER_ENERGY = (60, 20, 4)  # enough for ~2% statistical precision on the sampling fraction


def _photons(energy_gev: float, n: int, seed: int):
    spec = PrimarySpec(
        "gamma",
        ValueSpec("fixed", energy_gev, energy_gev),
        ValueSpec("fixed", math.pi / 2, math.pi / 2),
        ValueSpec("uniform", 0.0, 2 * math.pi),
    )
    return draw_conditions(spec, seed, range(n))


@pytest.fixture(scope="module")
def siw():
    return load_detector("par04-siw")


@pytest.fixture(scope="module")
def sampling(siw):
    return measure_sampling_fraction(siw, ENERGIES, N_PER_ENERGY, seed=11)


@pytest.fixture(scope="module")
def showers(siw):
    conditions = [
        c for e, n in zip(ENERGIES, N_PER_ENERGY, strict=True) for c in _photons(e, n, 12)
    ]
    results = simulate_showers(siw, MeshSpec(), "gamma", conditions)
    return conditions, results


def test_physics_constructor_symbols_exist_in_the_pinned_wheel():
    assert check_symbols() == []


def test_material_properties_match_pdg():
    w = material_properties("G4_W")
    assert w.x0_mm == pytest.approx(3.504, rel=0.01)  # PDG: 0.3504 cm
    assert w.moliere_radius_mm == pytest.approx(9.327, rel=0.03)  # PDG: 0.9327 cm
    pbwo4 = material_properties("G4_PbWO4")
    assert pbwo4.x0_mm == pytest.approx(8.903, rel=0.01)  # PDG: 0.8903 cm
    assert pbwo4.moliere_radius_mm == pytest.approx(19.59, rel=0.03)  # PDG: 1.959 cm
    siw = detector_properties(load_detector("par04-siw"))
    # Par04: 45 z-cells of 3.4 mm are ~36 X0
    assert 45 * 3.4 / siw.x0_mm == pytest.approx(36.2, abs=0.5)


def test_sampling_fraction_is_flat_in_energy_and_near_003(sampling, siw):
    values = np.array([m.value for m in sampling])
    assert values == pytest.approx(0.03, abs=0.006)
    assert (values.max() - values.min()) / values.mean() < 0.05
    # the catalog value was measured the same way
    assert siw.sampling_fraction.value == pytest.approx(values.mean(), rel=0.03)


def test_shower_maximum_grows_like_ln_e(showers):
    conditions, results = showers
    energy = np.array([c.energy_mev for c in conditions])
    layers = np.stack([r.voxels for r in results]).reshape(-1, *MeshSpec().shape).sum(axis=(2, 3))
    t_max = layers.argmax(axis=1)
    means = [t_max[energy == e * 1000].mean() for e in ENERGIES]
    assert means[0] < means[1] < means[2]
    # Longitudinal profile: t_max = ln(E/E_c) + const, so equal steps per decade of energy.
    # One z-cell is ~0.8 X0; ln(10) X0 is ~2.9 cells.
    steps = np.diff(means)
    assert steps == pytest.approx([2.9, 2.9], abs=1.3)


def test_ninety_percent_of_the_energy_within_one_moliere_radius(siw):
    rm = detector_properties(siw).moliere_radius_mm
    mesh = MeshSpec(n_z=45, n_phi=1, n_r=1, dz_mm=3.4, dr_mm=rm)  # one cell: r < R_M
    results = simulate_showers(siw, mesh, "gamma", _photons(10.0, 10, 13))
    inside = np.array([r.voxels.sum() for r in results])
    total = np.array([r.active_mev for r in results])
    assert inside.sum() / total.sum() > 0.85


def _simulate_reporting_reads(detector, conditions, direct):
    from caloforge.simulate.application import ShowerSimulator

    sim = ShowerSimulator(detector, MeshSpec(), "gamma", direct_step_reads=direct)
    return sim.simulate(conditions), sim.step_reader.direct


def test_direct_step_reads_are_validated_and_give_identical_showers(siw):
    conditions = _photons(5.0, 3, 14)
    direct, used = run_in_geant4_process(_simulate_reporting_reads, siw, conditions, True)
    bindings, unused = run_in_geant4_process(_simulate_reporting_reads, siw, conditions, False)
    assert used  # the offsets of the pinned wheel were validated and are in use
    assert not unused
    for a, b in zip(direct, bindings, strict=True):
        assert np.array_equal(a.voxels, b.voxels)
        assert a.active_mev == b.active_mev
    assert direct[0].voxels.sum() > 0


def test_an_unphysical_sampling_fraction_is_an_error_not_a_number() -> None:
    from caloforge.errors import DataError
    from caloforge.simulate.calibrate import SamplingMeasurement, combine

    good = SamplingMeasurement(10.0, 20, 0.03, 0.001, 0.03)
    assert combine([good])[0] == pytest.approx(0.03)
    for value in (0.0, float("nan"), 1.0):
        bad = SamplingMeasurement(10.0, 20, value, 0.0, 0.0)
        with pytest.raises(DataError, match="sampling fraction measured"):
            combine([good, bad])
