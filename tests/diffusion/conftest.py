"""Fixtures of the diffusion tests: one torch thread, analytic denoisers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from torch import Tensor

AnalyticDenoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (tests/conftest.py)."""


def _gaussian_denoiser(mu: Tensor | float, s: Tensor | float) -> AnalyticDenoiser:
    """The exact denoiser ``E[y | x]`` of data ``y ~ N(mu, s^2)`` independently per voxel.

    ``mu`` and ``s`` broadcast against one shower, shape (...,).
    """

    def denoiser(x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        sigma = sigma.reshape(-1, *[1] * (x.ndim - 1))
        return mu + s**2 / (s**2 + sigma**2) * (x - mu)

    return denoiser


@pytest.fixture
def gaussian_denoiser() -> Callable[[Tensor | float, Tensor | float], AnalyticDenoiser]:
    """Factory ``(mu, s) -> D(x, sigma, cond)`` of exact Gaussian denoisers."""
    return _gaussian_denoiser
