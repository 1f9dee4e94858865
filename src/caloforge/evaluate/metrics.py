"""Distances between a reference and a generated sample: pure functions ``-> (value, error)``.

* Separation power (triangular discrimination, eq. 15 of arXiv:2009.03796), as the
  CaloChallenge evaluation computes it on unit-normalised histograms.
* Fréchet and kernel physics distances, FPD and KPD (Kansal et al., arXiv:2211.10295), with
  the estimators of ``jetnet.evaluation`` 0.2.5: same normalisation, batch sizes, random draws
  and fits, so that the same inputs and seed give jetnet's numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import iqr

from caloforge.errors import DataError

# ----------------------------------------------------------------------------------------------
# Histograms and separation power


def separation_power(counts_1: np.ndarray, counts_2: np.ndarray) -> float:
    """Separation power ``1/2 sum_i (h1_i - h2_i)^2 / (h1_i + h2_i)`` of two histograms.

    Each histogram is normalised to unit sum first (eq. 15 of arXiv:2009.03796): 0 for
    identical shapes, 1 for disjoint ones.

    Args:
        counts_1, counts_2: bin contents (counts or weights), same shape (..., B).

    Returns:
        The separation power in [0, 1]; 0 if either histogram is empty.
    """
    h1 = np.asarray(counts_1, dtype=np.float64)
    h2 = np.asarray(counts_2, dtype=np.float64)
    s1, s2 = h1.sum(axis=-1, keepdims=True), h2.sum(axis=-1, keepdims=True)
    if np.any(s1 <= 0) or np.any(s2 <= 0):
        return 0.0
    h1, h2 = h1 / s1, h2 / s2
    denominator = h1 + h2
    terms = np.divide((h1 - h2) ** 2, denominator, out=np.zeros_like(h1), where=denominator > 0)
    return float(0.5 * terms.sum(axis=-1).mean())


def histogram_edges(
    reference: np.ndarray, *, bins: int = 100, log: bool = False, low: float | None = None
) -> np.ndarray:
    """Bin edges from the reference sample, so that any energy scale is binned sensibly.

    Linear edges span the reference's 0.1-99.9 % quantiles widened by 5 % on each side; log
    edges span ``[low, max(reference)]`` (``low``: the voxel threshold, or the smallest positive
    reference value if ``low`` is None or <= 0).

    Args:
        reference: the reference values, shape (N,).
        bins: number of bins.
        log: log-spaced edges (for energies).
        low: lower edge of log-spaced bins.

    Returns:
        Increasing edges, shape (bins + 1,).
    """
    values = np.asarray(reference, dtype=np.float64)
    values = values[np.isfinite(values)]
    if log:
        positive = values[values > 0]
        high = float(positive.max()) if positive.size else 1.0
        if low is None or low <= 0:
            low = float(positive.min()) if positive.size else high / 10.0
        high = max(high, low * 10.0)
        return np.logspace(np.log10(low), np.log10(high), bins + 1)
    if values.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = np.quantile(values, [0.001, 0.999])
    span = hi - lo
    if span <= 0:  # a constant feature: one bin around it
        span = max(abs(lo), 1.0) * 1e-3
    return np.linspace(lo - 0.05 * span, hi + 0.05 * span, bins + 1)


def histogram(values: np.ndarray, edges: np.ndarray, *, fold: bool = True) -> np.ndarray:
    """Counts of ``values`` (N,) in ``edges`` (B + 1,), shape (B,).

    With ``fold``, entries beyond the outer edges count in the outer bins, so that a
    generated sample's outliers weigh in the separation power; without, they are dropped
    (as ``numpy.histogram``). NaN entries are always dropped.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if fold:
        values = np.clip(values, edges[0], edges[-1])
    return np.histogram(values, edges)[0].astype(np.float64)


def separation_power_error(
    counts_1: np.ndarray, counts_2: np.ndarray, *, n_boot: int = 50, seed: int = 0
) -> tuple[float, float]:
    """Separation power of two count histograms and its bootstrap standard deviation.

    A bootstrap resample of N entries histogrammed in B bins is a multinomial draw of N
    entries with the observed bin probabilities, so the error needs no access to the entries.

    Args:
        counts_1, counts_2: integer bin counts, shape (B,).
        n_boot: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        (separation power, standard deviation over the resamples).
    """
    value = separation_power(counts_1, counts_2)
    n1, n2 = round(counts_1.sum()), round(counts_2.sum())
    if n1 == 0 or n2 == 0:
        return value, 0.0
    rng = np.random.default_rng(seed)
    boot_1 = rng.multinomial(n1, counts_1 / counts_1.sum(), size=n_boot)  # (n_boot, B)
    boot_2 = rng.multinomial(n2, counts_2 / counts_2.sum(), size=n_boot)  # (n_boot, B)
    draws = [separation_power(b1, b2) for b1, b2 in zip(boot_1, boot_2, strict=True)]
    return value, float(np.std(draws))


def profile_separation_power(
    per_shower_1: np.ndarray, per_shower_2: np.ndarray, *, n_boot: int = 50, seed: int = 0
) -> tuple[float, float]:
    """Separation power of two mean profiles (energy per layer or per radial bin).

    The profile is the energy-weighted histogram over the bins, i.e. the mean over showers of
    ``per_shower`` (N, B); the error is the bootstrap over showers.

    Returns:
        (separation power, bootstrap standard deviation).
    """
    value = separation_power(per_shower_1.mean(axis=0), per_shower_2.mean(axis=0))
    n1, n2 = len(per_shower_1), len(per_shower_2)
    if n1 == 0 or n2 == 0:
        return value, 0.0
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        mean_1 = per_shower_1[rng.integers(0, n1, n1)].mean(axis=0)
        mean_2 = per_shower_2[rng.integers(0, n2, n2)].mean(axis=0)
        draws.append(separation_power(mean_1, mean_2))
    return value, float(np.std(draws))


# ----------------------------------------------------------------------------------------------
# Fréchet and kernel physics distances


def frechet_distance(
    mu_1: np.ndarray, sigma_1: np.ndarray, mu_2: np.ndarray, sigma_2: np.ndarray
) -> float:
    """Fréchet distance of two Gaussians, ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    ``Tr (S1 S2)^(1/2)`` is the sum of the square roots of the eigenvalues of ``S1 S2``, which
    are those of the symmetric ``S1^(1/2) S2 S1^(1/2)``: two symmetric eigen-decompositions,
    ~10x faster than the general matrix square root (``scipy.linalg.sqrtm``) that jetnet and
    pytorch-fid use, and equal to it where that one is accurate. Tiny negative eigenvalues from
    rounding (singular covariances of constant features) are taken as 0.

    Args:
        mu_1, mu_2: means, shape (d,).
        sigma_1, sigma_2: covariance matrices, shape (d, d), symmetric positive semi-definite.
    """
    mu_1, mu_2 = np.atleast_1d(mu_1), np.atleast_1d(mu_2)
    sigma_1, sigma_2 = np.atleast_2d(sigma_1), np.atleast_2d(sigma_2)
    if mu_1.shape != mu_2.shape or sigma_1.shape != sigma_2.shape:
        raise DataError(f"Gaussians of different dimensions: {mu_1.shape} and {mu_2.shape}")
    diff = mu_1 - mu_2
    values, vectors = np.linalg.eigh(sigma_1)  # S1 = V diag(w) V^T
    root_1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T  # S1^(1/2)
    inner = np.linalg.eigvalsh(root_1 @ sigma_2 @ root_1)  # eigenvalues of S1 S2
    trace_root = float(np.sqrt(np.clip(inner, 0.0, None)).sum())
    return float(diff @ diff + np.trace(sigma_1) + np.trace(sigma_2) - 2.0 * trace_root)


def _normalise(real: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide every feature by its maximum absolute value in ``real`` (1 if that is 0)."""
    maxes = np.max(np.abs(real), axis=0)
    maxes[maxes == 0] = 1.0
    return real / maxes, gen / maxes


def _check_pair(real: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(real, dtype=np.float64)
    gen = np.asarray(gen, dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise DataError(
            f"feature arrays must be (N, d) with equal d, got {real.shape}, {gen.shape}"
        )
    if not (np.isfinite(real).all() and np.isfinite(gen).all()):
        raise DataError("features contain NaN or inf")
    return real, gen


class FitError(Exception):
    """A distance that could not be measured (a failed fit, non-finite values): reported as a
    failure, never as a number."""


@contextmanager
def _numerics(what: str) -> Iterator[None]:
    """Linear algebra that fails on degenerate batches becomes a :class:`FitError`."""
    try:
        yield
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise FitError(f"{what} could not be computed ({exc})") from None


def fpd(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    min_samples: int = 10_000,
    max_samples: int = 50_000,
    num_batches: int = 20,
    num_points: int = 10,
    normalise: bool = True,
    seed: int = 42,
) -> tuple[float, float]:
    """Fréchet physics distance and its error (arXiv:2211.10295, jetnet's ``fpd``).

    For batch sizes N regular in 1/N between ``min_samples`` and ``max_samples``, the mean
    Fréchet distance of ``num_batches`` bootstrap batches of each sample is computed;
    ``FPD(N) = a + b/N`` is fitted (a, b >= 0) and ``a`` is the value, its fit error the error.
    The CaloChallenge uses ``min_samples=10_000`` and jetnet's other defaults; the bias of the
    Fréchet distance goes like 1/N, hence the extrapolation to N -> infinity.

    Args:
        real, gen: features, shape (N_real, d) and (N_gen, d).
        min_samples, max_samples: smallest and largest batch size.
        num_batches: bootstrap batches per batch size.
        num_points: number of batch sizes.
        normalise: divide each feature by its max |real| first.
        seed: seed of the bootstrap.

    Returns:
        (FPD, error).

    Raises:
        FitError: if the batch distances are not finite or the fit fails (no convergence, a
            non-finite value or error, or a fit that never left its starting point).
    """
    real, gen = _check_pair(real, gen)
    x, y = _normalise(real, gen) if normalise else (real, gen)
    batches = (1 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype("int32")
    rng = np.random.default_rng(seed)
    means = []
    for batch_size in batches:  # overflows become non-finite means, refused below
        values = []
        for _ in range(num_batches):
            sample_x = x[rng.choice(len(x), size=batch_size)]  # (n, d)
            sample_y = y[rng.choice(len(y), size=batch_size)]  # (n, d)
            with np.errstate(all="ignore"), _numerics("the Fréchet distance of a batch"):
                values.append(
                    frechet_distance(
                        sample_x.mean(axis=0),
                        np.cov(sample_x, rowvar=False),
                        sample_y.mean(axis=0),
                        np.cov(sample_y, rowvar=False),
                    )
                )
        means.append(np.mean(values))
    if not np.isfinite(means).all():
        raise FitError("the Fréchet distances of the bootstrap batches are not finite")
    start = (1.0, 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            params, covariance = curve_fit(
                lambda inv_n, a, b: a + b * inv_n,
                1.0 / batches,
                means,
                p0=start,
                bounds=([0, 0], [np.inf, np.inf]),
            )
    except (RuntimeError, ValueError, OptimizeWarning) as exc:
        raise FitError(f"the fit FPD(N) = a + b/N failed ({exc})") from None
    value, error = float(params[0]), float(np.sqrt(np.diag(covariance)[0]))
    if not (math.isfinite(value) and math.isfinite(error)):
        raise FitError(f"the fit FPD(N) = a + b/N gave {value} +- {error}")
    if tuple(params) == start and error == 0.0:
        raise FitError("the fit FPD(N) = a + b/N never left its starting point")
    return value, error


def _kernel_sum(x: np.ndarray, y: np.ndarray, degree: int, block: int = 2048) -> float:
    """Sum of the polynomial kernel ``(x.y / d + 1)^degree`` over all pairs, in row blocks."""
    gamma = 1.0 / x.shape[1]
    return float(
        sum(
            (((x[i : i + block] @ y.T) * gamma + 1.0) ** degree).sum()
            for i in range(0, len(x), block)
        )
    )


def _kernel_trace(x: np.ndarray, degree: int) -> float:
    gamma = 1.0 / x.shape[1]
    return float((((x * x).sum(axis=1) * gamma + 1.0) ** degree).sum())


def mmd_poly_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 4) -> float:
    """Unbiased estimate of MMD^2 with the kernel ``k(x, y) = (x.y / d + 1)^degree``.

    Args:
        x, y: samples, shape (m, d) and (n, d), m, n >= 2.
    """
    m, n = len(x), len(y)
    xx = (_kernel_sum(x, x, degree) - _kernel_trace(x, degree)) / (m * (m - 1))
    yy = (_kernel_sum(y, y, degree) - _kernel_trace(y, degree)) / (n * (n - 1))
    xy = _kernel_sum(x, y, degree) / (m * n)
    return xx + yy - 2.0 * xy


def kpd(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    num_batches: int = 10,
    batch_size: int = 10_000,
    normalise: bool = True,
    seed: int = 42,
) -> tuple[float, float]:
    """Kernel physics distance and its error (arXiv:2211.10295, jetnet's ``kpd``).

    The unbiased MMD^2 with the polynomial kernel ``(x.y/d + 1)^4`` is computed on
    ``num_batches`` bootstrap batches of ``batch_size`` (batch i drawn with seed
    ``seed + 1000 i``); the value is their median, the error half the 16-84 % spread. The
    CaloChallenge uses ``batch_size=10_000``. It can be negative: 0 means no difference.

    Args:
        real, gen: features, shape (N_real, d) and (N_gen, d).
        num_batches: number of bootstrap batches.
        batch_size: showers per batch.
        normalise: divide each feature by its max |real| first.
        seed: seed of the bootstrap.

    Returns:
        (KPD, error).
    """
    real, gen = _check_pair(real, gen)
    x, y = _normalise(real, gen) if normalise else (real, gen)
    values = []
    for i in range(num_batches):
        rng = np.random.default_rng(seed + i * 1000)
        sample_x = x[rng.choice(len(x), size=batch_size)]
        sample_y = y[rng.choice(len(y), size=batch_size)]
        values.append(mmd_poly_unbiased(sample_x, sample_y))
    value, error = float(np.median(values)), float(iqr(values, rng=(16.275, 83.725)) / 2)
    if not (math.isfinite(value) and math.isfinite(error)):
        raise FitError(f"the kernel distances of the bootstrap batches are not finite ({value})")
    return value, error


MIN_DISTANCE_SAMPLES = 20
"""Fewer showers per sample leave the FPD fit (10 batch sizes from N/2 to N) meaningless."""


@dataclass(frozen=True)
class DistanceSettings:
    """FPD and KPD settings used on a comparison (printed in the report)."""

    fpd_min_samples: int
    fpd_max_samples: int
    fpd_num_batches: int
    fpd_num_points: int
    kpd_batch_size: int
    kpd_num_batches: int
    published: bool  # whether these are the CaloChallenge settings

    @classmethod
    def fitting(cls, n_real: int, n_gen: int) -> DistanceSettings:
        """The CaloChallenge settings, or the largest ones that the sample sizes allow.

        CaloChallenge: FPD batches from 10,000 to 50,000 showers, KPD batches of 10,000.
        No batch is larger than the smaller sample; FPD needs two distinct batch sizes, so its
        smallest is at most half the smaller sample.
        """
        n = min(n_real, n_gen)
        if n < MIN_DISTANCE_SAMPLES:
            raise DataError(
                f"FPD and KPD need at least {MIN_DISTANCE_SAMPLES} showers per sample, got {n}"
            )
        fpd_max = min(50_000, n)
        fpd_min = min(10_000, fpd_max // 2)
        kpd_batch = min(10_000, n)
        return cls(
            fpd_min_samples=fpd_min,
            fpd_max_samples=fpd_max,
            fpd_num_batches=20,
            fpd_num_points=10,
            kpd_batch_size=kpd_batch,
            kpd_num_batches=10,
            published=(fpd_min, fpd_max, kpd_batch) == (10_000, 50_000, 10_000),
        )

    def describe(self) -> str:
        """One line for the report."""
        tag = "CaloChallenge settings" if self.published else "reduced to fit the sample sizes"
        return (
            f"FPD: {self.fpd_num_points} batch sizes {self.fpd_min_samples}-"
            f"{self.fpd_max_samples} x {self.fpd_num_batches} batches; KPD: "
            f"{self.kpd_num_batches} batches of {self.kpd_batch_size} ({tag})"
        )


def format_value(
    entry: Mapping[str, Any] | None,
    scale: float = 1.0,
    *,
    plus_minus: str = "±",
    value_format: str = ".4g",
    error_format: str = ".2g",
) -> str:
    """``"v ± e"`` of a metric entry ``{"value": v, "error": e}`` (times ``scale``), or "-"."""
    if not isinstance(entry, Mapping) or entry.get("value") is None:
        return "-"
    value, error = entry["value"] * scale, (entry.get("error") or 0.0) * scale
    return f"{value:{value_format}} {plus_minus} {error:{error_format}}"
