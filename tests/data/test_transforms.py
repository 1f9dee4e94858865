"""Round trips and ranges of the model preprocessing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from caloforge.data.transforms import ConditionTransform, Preprocessing, ShowerTransform
from caloforge.errors import SpecError


def _showers(n: int = 50, v: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    energies = 10 ** rng.uniform(3, 5, n)
    showers = rng.exponential(size=(n, v)) * (rng.random((n, v)) < 0.3) * energies[:, None] * 1e-3
    return showers, energies


def test_shower_round_trip_and_normalisation() -> None:
    showers, energies = _showers()
    transform = ShowerTransform.fit(showers, energies)
    y = transform.forward(showers, energies)
    assert y.dtype == np.float32
    assert abs(float(y.mean())) < 1e-4
    assert float(y.std()) == pytest.approx(1.0, rel=1e-4)
    back = transform.inverse(y, energies)
    np.testing.assert_allclose(back, showers, rtol=2e-5, atol=energies.max() * 1e-9)
    # empty voxels sit at the zero level and come back as exactly 0 (not negative)
    assert np.allclose(y[showers == 0], transform.zero_level, atol=1e-5)
    assert (back >= 0).all()
    assert (transform.inverse(np.full((2, 3), -100.0), energies[:2]) == 0).all()


def test_shower_transform_rejects_constant_showers() -> None:
    with pytest.raises(SpecError):
        ShowerTransform.fit(np.zeros((4, 5)), np.ones(4))


def _conditions() -> ConditionTransform:
    return ConditionTransform((1e3, 1e5), (0.87, 2.27), ("par04-siw", "par04-scipb"))


def test_condition_round_trip() -> None:
    t = _conditions()
    rng = np.random.default_rng(1)
    energies = 10 ** rng.uniform(3, 5, 20)
    theta = rng.uniform(0.87, 2.27, 20)
    phi = rng.uniform(0, 2 * np.pi, 20)
    slots = rng.integers(0, 3, 20)
    cond = t.forward(energies, theta, phi, slots)
    assert cond.shape == (20, 4 + 3) == (20, t.n_cond)
    assert cond[:, 0].min() >= 0
    assert cond[:, 0].max() <= 1
    np.testing.assert_allclose(cond[:, 4:].sum(axis=1), 1.0)
    e2, t2, p2, s2 = t.inverse(cond)
    np.testing.assert_allclose(e2, energies, rtol=1e-5)
    np.testing.assert_allclose(t2, theta, atol=1e-6)
    np.testing.assert_allclose(p2, phi, atol=1e-5)
    np.testing.assert_array_equal(s2, slots)


def test_phi_is_periodic() -> None:
    t = _conditions()
    e, th = np.array([5e3, 5e3]), np.array([1.5, 1.5])
    a = t.forward(e, th, np.array([0.1, 2 * math.pi + 0.1]), np.array([0, 0]))
    np.testing.assert_allclose(a[0], a[1], atol=1e-6)


def test_slots_and_ranges() -> None:
    t = _conditions()
    assert t.slot("par04-scipb") == 1
    assert t.spare_slot == 2
    assert t.slot("new-detector", allow_spare=True) == 2
    with pytest.raises(SpecError, match="not trained on"):
        t.slot("new-detector")
    t.check(np.array([1e3, 1e5]), np.array([0.87, 2.27]))
    with pytest.raises(SpecError, match="energies"):
        t.check(np.array([5e5]), np.array([1.5]))
    with pytest.raises(SpecError, match="theta"):
        t.check(np.array([5e3]), np.array([0.5]))
    t.check(np.array([5e5]), np.array([0.5]), allow_extrapolation=True)
    # rounded specifications ("1.5708" for pi/2) pass; physical limits hold even when extrapolating
    ConditionTransform((5e4, 5e4), (1.5708, 1.5708), ("a",)).check(
        np.array([5e4]), np.array([math.pi / 2])
    )
    for energies, theta in (([0.0], [1.5]), ([np.nan], [1.5]), ([1e4], [3.5]), ([1e4], [-0.1])):
        with pytest.raises(SpecError, match=r"positive|pi"):
            t.check(np.array(energies), np.array(theta), allow_extrapolation=True)


def test_fixed_energy_and_theta() -> None:
    """A training file at one energy and one angle: both conditions encode as 0."""
    t = ConditionTransform((5e4, 5e4), (1.5708, 1.5708), ("par04-siw",))
    cond = t.forward(np.array([5e4]), np.array([1.5708]), np.array([0.0]), np.array([0]))
    assert cond[0, :2].tolist() == [0.0, 0.0]
    energies, theta, _, _ = t.inverse(cond)
    np.testing.assert_allclose(energies, 5e4)
    np.testing.assert_allclose(theta, 1.5708)


def test_shower_fit_in_chunks_matches_numpy() -> None:
    showers, energies = _showers(n=2500, v=8)
    transform = ShowerTransform.fit(showers, energies)
    logs = np.log(showers / energies[:, None] + transform.eps)
    assert transform.mean == pytest.approx(logs.mean(), rel=1e-9)
    assert transform.std == pytest.approx(logs.std(), rel=1e-7)
    # the largest normalised value of the set, spread over chunks: the sampler's upper bound
    assert transform.max_value == pytest.approx(
        transform.forward(showers, energies).max(), rel=1e-6
    )


def test_preprocessing_serialises() -> None:
    showers, energies = _showers()
    pre = Preprocessing(ShowerTransform.fit(showers, energies), _conditions(), (45, 16, 9))
    again = Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert again == pre
    assert again.shower.max_value is not None
    # models saved before the range was recorded load without it (no bound when sampling)
    old = pre.to_dict()
    del old["shower"]["max_value"]
    assert Preprocessing.from_dict(old).shower.max_value is None
    with pytest.raises(SpecError):
        Preprocessing.from_dict({"shower": {}})
