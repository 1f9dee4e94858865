"""Tests of caloforge.evaluate.metrics on cases with known answers and against jetnet 0.2.5."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy import linalg

from caloforge.errors import DataError
from caloforge.evaluate.metrics import (
    DistanceSettings,
    fpd,
    frechet_distance,
    histogram,
    histogram_edges,
    kpd,
    mmd_poly_unbiased,
    profile_separation_power,
    separation_power,
    separation_power_error,
)

FIXTURES = Path(__file__).parent / "fixtures" / "jetnet_0.2.5.npz"
# the kwargs of tests/evaluate/fixtures/make_jetnet_fixtures.py
JETNET_FPD_KWARGS = {"min_samples": 400, "max_samples": 1200, "num_batches": 5, "num_points": 4}
JETNET_KPD_KWARGS = {"num_batches": 6, "batch_size": 800}
JETNET_SEED = 7


# ----------------------------------------------------------------------------------------------
# Separation power


def test_separation_power_identical_is_zero():
    counts = np.array([3.0, 0.0, 10.0, 7.0, 1.0])
    assert separation_power(counts, counts) == 0.0


def test_separation_power_disjoint_is_one():
    assert separation_power(
        np.array([5.0, 2.0, 0.0, 0.0]), np.array([0, 0, 1, 9])
    ) == pytest.approx(1.0)


def test_separation_power_hand_computed():
    # [1, 1, 2] / 4 and [2, 1, 1] / 4: 1/2 (0.25^2 / 0.75 + 0 + 0.25^2 / 0.75) = 1/12
    assert separation_power(np.array([1, 1, 2]), np.array([2, 1, 1])) == pytest.approx(1.0 / 12.0)
    # [0.25, 0.75] vs [0.75, 0.25]: 1/2 (0.25 / 1 + 0.25 / 1) = 1/4
    assert separation_power(np.array([1, 3]), np.array([3, 1])) == pytest.approx(0.25)
    # [0.5, 0.5, 0] vs [0, 0.5, 0.5]: 1/2 (0.25 / 0.5 + 0 + 0.25 / 0.5) = 1/2
    assert separation_power(np.array([2, 2, 0]), np.array([0, 1, 1])) == pytest.approx(0.5)


def test_separation_power_scale_invariant_and_symmetric():
    rng = np.random.default_rng(0)
    h1, h2 = rng.poisson(20.0, 30).astype(float), rng.poisson(20.0, 30).astype(float)
    value = separation_power(h1, h2)
    assert 0.0 < value < 1.0
    assert separation_power(7.0 * h1, 0.3 * h2) == pytest.approx(value, rel=1e-12)
    assert separation_power(h2, h1) == pytest.approx(value, rel=1e-12)


def test_separation_power_error_positive_and_shrinking():
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.2, 0.1, 0.05])
    q = np.array([0.06, 0.12, 0.2, 0.28, 0.18, 0.1, 0.06])
    small = separation_power_error(p * 1_000, q * 1_000, n_boot=100, seed=1)
    large = separation_power_error(p * 100_000, q * 100_000, n_boot=100, seed=1)
    assert small[0] == pytest.approx(large[0])  # same shapes: the same value
    assert small[0] == pytest.approx(separation_power(p, q))
    assert small[1] > 0.0
    assert large[1] > 0.0
    assert large[1] < small[1] / 3.0  # ~ 1/sqrt(N): a factor ~10 expected
    # the same seed gives the same error
    assert separation_power_error(p * 1_000, q * 1_000, n_boot=100, seed=1) == small


def test_profile_separation_power():
    rng = np.random.default_rng(2)
    per_shower = rng.exponential(size=(200, 10))
    value, error = profile_separation_power(per_shower, per_shower)
    assert value == 0.0
    assert error > 0.0  # independent resamples of the two sides differ
    # constant rows: the profiles are the rows, every resample the same
    row_1, row_2 = np.array([1.0, 3.0]), np.array([3.0, 1.0])
    value, error = profile_separation_power(np.tile(row_1, (5, 1)), np.tile(row_2, (8, 1)))
    assert value == pytest.approx(0.25)
    assert error == pytest.approx(0.0, abs=1e-15)


# ----------------------------------------------------------------------------------------------
# Histograms


def test_linear_edges_from_reference_quantiles():
    rng = np.random.default_rng(3)
    reference = rng.normal(2.0, 3.0, 10_000)
    edges = histogram_edges(np.append(reference, np.nan), bins=40)
    lo, hi = np.quantile(reference, [0.001, 0.999])
    span = hi - lo
    assert edges.shape == (41,)
    assert edges[0] == pytest.approx(lo - 0.05 * span)
    assert edges[-1] == pytest.approx(hi + 0.05 * span)
    np.testing.assert_allclose(np.diff(edges), span * 1.1 / 40)


def test_log_edges_from_low_to_max():
    rng = np.random.default_rng(4)
    reference = 10.0 ** rng.uniform(-1.0, 3.0, 1000)
    edges = histogram_edges(reference, bins=20, log=True, low=0.015)
    assert edges.shape == (21,)
    assert edges[0] == pytest.approx(0.015)
    assert edges[-1] == pytest.approx(reference.max())
    np.testing.assert_allclose(np.diff(np.log(edges)), np.log(reference.max() / 0.015) / 20)
    # no low: the smallest positive reference value
    with_zeros = np.concatenate([reference, [0.0, -1.0]])
    edges = histogram_edges(with_zeros, bins=20, log=True)
    assert edges[0] == pytest.approx(reference.min())
    assert edges[-1] == pytest.approx(reference.max())


def test_histogram_folds_or_drops_outliers_and_drops_nan():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    values = np.array([-5.0, 0.5, 1.5, 1.7, 2.5, 3.0, 9.0, np.nan])
    np.testing.assert_array_equal(histogram(values, edges), [2, 2, 3])
    np.testing.assert_array_equal(histogram(values, edges, fold=False), [1, 2, 2])
    assert histogram(values, edges).dtype == np.float64


# ----------------------------------------------------------------------------------------------
# Frechet distance


def test_frechet_distance_diagonal_gaussians():
    mu_1, var_1 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 4.0, 9.0])
    mu_2, var_2 = np.array([1.0, 1.0, 0.0]), np.array([4.0, 1.0, 1.0])
    # |mu1 - mu2|^2 = 5; sum (sqrt s1 - sqrt s2)^2 = 1 + 1 + 4
    expected = 5.0 + 6.0
    value = frechet_distance(mu_1, np.diag(var_1), mu_2, np.diag(var_2))
    assert value == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_commuting_covariances():
    theta = 0.7
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    eig_1, eig_2 = np.array([2.0, 0.5]), np.array([0.3, 3.0])
    sigma_1 = rotation @ np.diag(eig_1) @ rotation.T
    sigma_2 = rotation @ np.diag(eig_2) @ rotation.T
    mu_1, mu_2 = np.array([1.0, -1.0]), np.array([0.5, 0.5])
    expected = 0.25 + 2.25 + np.sum((np.sqrt(eig_1) - np.sqrt(eig_2)) ** 2)
    assert frechet_distance(mu_1, sigma_1, mu_2, sigma_2) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_non_commuting():
    sigma_1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    sigma_2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
    assert not np.allclose(sigma_1 @ sigma_2, sigma_2 @ sigma_1)
    mu_1, mu_2 = np.array([0.2, 0.0]), np.array([-0.1, 0.4])
    direct = np.trace(linalg.sqrtm(sigma_1 @ sigma_2)).real
    root_1 = linalg.sqrtm(sigma_1).real  # the symmetric form Tr (S1^1/2 S2 S1^1/2)^1/2
    symmetric = np.trace(linalg.sqrtm(root_1 @ sigma_2 @ root_1)).real
    assert direct == pytest.approx(symmetric, rel=1e-10)
    expected = 0.09 + 0.16 + np.trace(sigma_1) + np.trace(sigma_2) - 2.0 * direct
    assert frechet_distance(mu_1, sigma_1, mu_2, sigma_2) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_identical_is_zero():
    sigma = np.array([[2.0, 0.8, 0.1], [0.8, 1.0, 0.2], [0.1, 0.2, 0.5]])
    mu = np.array([1.0, 2.0, 3.0])
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_dimension_mismatch():
    with pytest.raises(DataError):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# ----------------------------------------------------------------------------------------------
# FPD and KPD


@pytest.fixture(scope="module")
def gaussians() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    shifted = rng.normal(size=(20_000, 3))
    shifted[:, 0] += 0.5
    return {
        "real": rng.normal(size=(20_000, 3)),
        "same": rng.normal(size=(20_000, 3)),
        "shifted": shifted,
    }


def test_fpd_shifted_gaussians_give_the_analytic_distance(gaussians):
    value, error = fpd(gaussians["real"], gaussians["shifted"], normalise=False, seed=1)
    # the fit error ignores the fluctuation of the 20k-shower samples themselves (~0.01 here)
    assert value == pytest.approx(0.25, rel=0.1)
    assert 0.0 < error < 0.025


def test_fpd_identical_distributions_compatible_with_zero(gaussians):
    value, error = fpd(gaussians["real"], gaussians["same"], normalise=False, seed=1)
    assert value >= 0.0
    # the fit error ignores that two finite samples differ: E|mu1 - mu2|^2 = 2 d / N = 3e-4
    assert value < 5.0 * error + 1e-3
    # the shifted pair is far above the identical one
    assert fpd(gaussians["real"], gaussians["shifted"], normalise=False, seed=1)[0] > 100 * value


def test_kpd_identical_and_shifted(gaussians):
    kwargs = {"num_batches": 8, "batch_size": 1000, "normalise": False, "seed": 3}
    value, error = kpd(gaussians["real"], gaussians["same"], **kwargs)
    assert error > 0.0
    assert abs(value) < 3.0 * error
    shifted, shifted_error = kpd(gaussians["real"], gaussians["shifted"], **kwargs)
    assert shifted > 5.0 * shifted_error
    assert shifted > 20.0 * abs(value)


def _naive_mmd(x: np.ndarray, y: np.ndarray, degree: int) -> float:
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1.0) ** degree

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.product(range(m), repeat=2) if i != j)
    yy = sum(k(y[i], y[j]) for i, j in itertools.product(range(n), repeat=2) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2.0 * xy / (m * n)


@pytest.mark.parametrize("degree", [2, 4])
def test_mmd_poly_unbiased_equals_double_loop(degree):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(6, 3)), rng.normal(0.3, 1.2, size=(5, 3))
    assert mmd_poly_unbiased(x, y, degree) == pytest.approx(_naive_mmd(x, y, degree), rel=1e-12)
    assert mmd_poly_unbiased(x, y) == pytest.approx(_naive_mmd(x, y, 4), rel=1e-12)


@pytest.mark.parametrize("metric", [fpd, kpd])
def test_distances_reject_bad_input(metric):
    real = np.zeros((20, 3))
    with pytest.raises(DataError):
        metric(real, np.zeros((20, 4)))
    with pytest.raises(DataError):
        metric(real, np.zeros(20))
    bad = np.zeros((20, 3))
    bad[3, 1] = np.nan
    with pytest.raises(DataError):
        metric(real, bad)
    bad[3, 1] = np.inf
    with pytest.raises(DataError):
        metric(bad, real)


@pytest.fixture(scope="module")
def jetnet() -> dict[str, np.ndarray]:
    with np.load(FIXTURES) as data:
        assert str(data["jetnet_version"]) == "0.2.5"
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("case", ["same", "shifted", "wider"])
def test_fpd_reproduces_jetnet(jetnet, case):
    value, error = fpd(jetnet["real"], jetnet[f"gen_{case}"], **JETNET_FPD_KWARGS, seed=JETNET_SEED)
    np.testing.assert_allclose([value, error], jetnet[f"fpd_{case}"], rtol=1e-6)


@pytest.mark.parametrize("case", ["same", "shifted", "wider"])
def test_kpd_reproduces_jetnet(jetnet, case):
    value, error = kpd(jetnet["real"], jetnet[f"gen_{case}"], **JETNET_KPD_KWARGS, seed=JETNET_SEED)
    np.testing.assert_allclose([value, error], jetnet[f"kpd_{case}"], rtol=1e-6, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(("n_real", "n_gen"), [(50_000, 50_000), (100_000, 60_000)])
def test_settings_published_for_large_samples(n_real, n_gen):
    settings = DistanceSettings.fitting(n_real, n_gen)
    assert settings == DistanceSettings(
        fpd_min_samples=10_000,
        fpd_max_samples=50_000,
        fpd_num_batches=20,
        fpd_num_points=10,
        kpd_batch_size=10_000,
        kpd_num_batches=10,
        published=True,
    )
    assert "CaloChallenge settings" in settings.describe()


@pytest.mark.parametrize(
    ("n_real", "n_gen", "fpd_min", "fpd_max", "kpd_batch"),
    [
        (49_999, 80_000, 10_000, 49_999, 10_000),
        (30_000, 20_000, 10_000, 20_000, 10_000),
        (5_000, 8_000, 2_500, 5_000, 5_000),
        (40, 100, 20, 40, 40),
        (20, 20, 10, 20, 20),
    ],
)
def test_settings_reduced_for_small_samples(n_real, n_gen, fpd_min, fpd_max, kpd_batch):
    settings = DistanceSettings.fitting(n_real, n_gen)
    assert not settings.published
    assert (settings.fpd_min_samples, settings.fpd_max_samples) == (fpd_min, fpd_max)
    assert settings.kpd_batch_size == kpd_batch
    assert settings.fpd_min_samples < settings.fpd_max_samples <= min(n_real, n_gen)
    assert settings.fpd_num_points >= 3
    assert "reduced" in settings.describe()


def test_reduced_settings_run():
    settings = DistanceSettings.fitting(60, 80)
    rng = np.random.default_rng(8)
    real, gen = rng.normal(size=(60, 4)), rng.normal(size=(80, 4))
    value, error = fpd(
        real,
        gen,
        min_samples=settings.fpd_min_samples,
        max_samples=settings.fpd_max_samples,
        num_batches=settings.fpd_num_batches,
        num_points=settings.fpd_num_points,
    )
    assert np.isfinite(value)
    assert np.isfinite(error)
    value, error = kpd(
        real, gen, num_batches=settings.kpd_num_batches, batch_size=settings.kpd_batch_size
    )
    assert np.isfinite(value)
    assert np.isfinite(error)


@pytest.mark.parametrize(("n_real", "n_gen"), [(19, 100), (100, 19), (0, 0)])
def test_settings_need_twenty_showers(n_real, n_gen):
    with pytest.raises(DataError, match="at least 20"):
        DistanceSettings.fitting(n_real, n_gen)
