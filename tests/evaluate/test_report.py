"""Tests of the evaluation's Geant4-vs-Geant4 baseline split and condition bins."""

from __future__ import annotations

import numpy as np
import pytest

from caloforge.config import EvaluationConfig
from caloforge.data.showers import ShowerData
from caloforge.errors import DataError
from caloforge.evaluate.inputs import condition_bins
from caloforge.evaluate.report import _baseline_split
from caloforge.geometry.binning import Binning


@pytest.mark.parametrize(
    ("n_ref", "n_gen", "n_a", "n_b"),
    [(10_000, 10_000, 5_000, 5_000), (3_000, 200, 2_800, 200), (1_000, 5_000, 500, 500)],
)
def test_baseline_floor_is_never_below_the_comparison(n_ref, n_gen, n_a, n_b):
    a, b = _baseline_split(n_ref, n_gen, EvaluationConfig())
    assert (a.sum(), b.sum()) == (n_a, n_b)
    assert not (a & b).any()
    assert (a | b).all()
    # the finite-sample floor goes like 1/n1 + 1/n2
    assert 1 / n_a + 1 / n_b >= 1 / n_ref + 1 / n_gen


def test_no_baseline_for_a_small_reference():
    assert _baseline_split(90, 1000, EvaluationConfig(min_baseline=50)) is None
    # a small generated file does not prevent the baseline: the part B keeps min_baseline
    a, b = _baseline_split(1000, 40, EvaluationConfig(min_baseline=50))
    assert (a.sum(), b.sum()) == (950, 50)


def _data(energies_gev, theta=None, phi=None):
    n = len(energies_gev)
    binning = Binning.regular(2, 1, 1, 1.0)
    angles = [None if v is None else np.asarray(v, dtype=float) for v in (theta, phi)]
    return ShowerData(np.asarray(energies_gev, float) * 1e3, np.zeros((n, 2)), binning, *angles)


def test_fixed_condition_points():
    ref = _data([10, 50, 10, 50] * 30, [1.57] * 120, [0.0] * 120)
    gen = _data([50, 10] * 20, [1.57] * 40, [2 * np.pi] * 40)  # phi = 2 pi is phi = 0
    conditions = condition_bins(ref, gen)
    assert conditions.mode == "points"
    assert [b.label for b in conditions.bins] == [
        "10 GeV, theta 1.57, phi 0",
        "50 GeV, theta 1.57, phi 0",
    ]
    assert [int(b.generated.sum()) for b in conditions.bins] == [20, 20]
    with pytest.raises(DataError, match="mismatched conditions"):
        condition_bins(ref, _data([20] * 10, [1.57] * 10, [0.0] * 10))
    # conditions stored as float32 in one file still match their points
    gen32 = _data(
        np.float32(np.array([50, 10] * 20) * 1e3) / 1e3,
        np.float32([1.5707963] * 40),
        np.float32([0.0] * 40),
    )
    ref64 = _data([10, 50, 10, 50] * 30, [1.5707963] * 120, [0.0] * 120)
    assert [int(b.generated.sum()) for b in condition_bins(ref64, gen32).bins] == [20, 20]


def test_few_continuous_showers_are_not_a_fixed_condition_set():
    rng = np.random.default_rng(3)
    ref = _data(10 ** rng.uniform(0, 2, 15), rng.uniform(0.9, 2.2, 15), rng.uniform(0, 6, 15))
    assert condition_bins(ref, ref).mode == "continuous"


def test_varying_angles_in_one_file_only_are_an_error():
    rng = np.random.default_rng(4)
    e = 10 ** rng.uniform(0, 2, 100)
    with pytest.raises(DataError, match="missing conditions"):
        condition_bins(_data(e, rng.uniform(0.9, 2.2, 100), rng.uniform(0, 6, 100)), _data(e))
    conditions = condition_bins(_data(e, np.full(100, 1.57), np.zeros(100)), _data(e))
    assert not conditions.uses_angles
    assert conditions.notes


def test_continuous_energy_decades_and_theta_bins():
    rng = np.random.default_rng(0)
    e = 10 ** rng.uniform(0, 2, 500)
    theta = rng.uniform(0.87, 2.27, 500)
    ref = _data(e, theta, rng.uniform(0, 6, 500))
    conditions = condition_bins(ref, ref, theta_bins=3)
    assert conditions.mode == "continuous"
    assert [b.key for b in conditions.bins][:2] == ["E_1-10GeV", "E_10-100GeV"]
    energy_bins = conditions.bins[:2]
    assert sum(int(b.reference.sum()) for b in energy_bins) == 500
    assert sum(int(b.reference.sum()) for b in conditions.bins[2:]) == 500
    with pytest.raises(DataError, match="mismatched conditions"):
        condition_bins(ref, _data(e * 10, theta, rng.uniform(0, 6, 500)))
    # generated energies within the range tolerance land in the edge decades
    low = _data(np.full(10, 0.97), np.full(10, 1.5), np.zeros(10))
    first = condition_bins(ref, low).bins[0]
    assert int(first.generated.sum()) == 10
