"""Tests of caloforge.diffusion.loss against the exact denoiser of Gaussian data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from caloforge.config import DiffusionConfig
from caloforge.diffusion.loss import EDMLoss
from caloforge.diffusion.precond import EDMPrecond

SHAPE = (1, 6, 4, 3)


def _gaussian_data(s: float, batch: int = 4000) -> Tensor:
    return s * torch.randn(batch, *SHAPE, generator=torch.Generator().manual_seed(0))


def _expected_exact_loss(s: float, sigma_data: float, P_mean: float, P_std: float) -> float:
    """E over ln(sigma) ~ N(P_mean, P_std^2) of lambda(sigma) * s^2 sigma^2 / (s^2 + sigma^2).

    ``s^2 sigma^2 / (s^2 + sigma^2)`` is the posterior variance of Gaussian data, the exact
    denoiser's mean squared error; the expectation over ln(sigma) is by Gauss-Hermite quadrature.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    sigma = np.exp(P_mean + P_std * nodes)
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    mse = s**2 * sigma**2 / (s**2 + sigma**2)
    return float(np.sum(weights * weight * mse) / math.sqrt(2 * math.pi))


def test_loss_is_per_shower_and_non_negative(gaussian_denoiser):
    x = _gaussian_data(0.5, batch=16)
    loss = EDMLoss(sigma_data=0.5)(gaussian_denoiser(0.0, 0.6), x, None)
    assert loss.shape == (16,)
    assert loss.dtype == torch.float32
    assert (loss >= 0).all()


def test_exact_denoiser_has_unit_loss_when_sigma_data_is_the_data_std(gaussian_denoiser):
    # lambda(sigma) * s^2 sigma^2 / (s^2 + sigma^2) = 1 at every sigma if sigma_data = s
    s = 0.5
    loss = EDMLoss(sigma_data=s)(
        gaussian_denoiser(0.0, s),
        _gaussian_data(s),
        None,
        generator=torch.Generator().manual_seed(1),
    )
    assert loss.mean().item() == pytest.approx(1, abs=0.02)


@pytest.mark.parametrize(
    ("s", "sigma_data", "P_mean", "P_std"), [(0.5, 1.0, -1.2, 1.2), (2.0, 0.7, 0.0, 0.5)]
)
def test_exact_denoiser_reaches_the_analytic_expected_loss(
    gaussian_denoiser, s, sigma_data, P_mean, P_std
):
    loss_fn = EDMLoss(sigma_data=sigma_data, P_mean=P_mean, P_std=P_std)
    loss = loss_fn(
        gaussian_denoiser(0.0, s),
        _gaussian_data(s),
        None,
        generator=torch.Generator().manual_seed(2),
    )
    expected = _expected_exact_loss(s, sigma_data, P_mean, P_std)
    assert loss.mean().item() == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("wrong_s", [0.3, 0.45, 0.55, 0.8])
def test_exact_denoiser_has_the_lowest_loss(gaussian_denoiser, wrong_s):
    x = _gaussian_data(0.5)
    loss_fn = EDMLoss(sigma_data=0.5)
    # the same generator seed: both denoisers see the same sigmas and noise
    exact = loss_fn(
        gaussian_denoiser(0.0, 0.5), x, None, generator=torch.Generator().manual_seed(3)
    )
    wrong = loss_fn(
        gaussian_denoiser(0.0, wrong_s), x, None, generator=torch.Generator().manual_seed(3)
    )
    shifted = loss_fn(
        gaussian_denoiser(0.05, 0.5), x, None, generator=torch.Generator().manual_seed(3)
    )
    assert exact.mean() < wrong.mean()
    assert exact.mean() < shifted.mean()


def test_noise_levels_are_log_normal_and_noise_is_added_to_the_data():
    seen: dict[str, Tensor] = {}

    def recorder(x_noisy: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        seen["x"], seen["sigma"], seen["cond"] = x_noisy, sigma, cond
        return x_noisy

    x = torch.zeros(20_000, 3)
    cond = torch.ones(20_000, 2)
    EDMLoss(sigma_data=1.0, P_mean=-1.2, P_std=1.2)(
        recorder, x, cond, generator=torch.Generator().manual_seed(4)
    )
    log_sigma = seen["sigma"].log()
    assert seen["sigma"].shape == (20_000,)
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.03)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.03)
    noise = seen["x"] / seen["sigma"][:, None]
    assert noise.mean().item() == pytest.approx(0, abs=0.02)
    assert noise.std().item() == pytest.approx(1, abs=0.02)
    assert seen["cond"] is cond


def test_deterministic_with_a_seeded_generator(gaussian_denoiser):
    x = _gaussian_data(0.5, batch=8)
    loss_fn = EDMLoss(sigma_data=0.5)
    first = loss_fn(
        gaussian_denoiser(0.0, 0.4), x, None, generator=torch.Generator().manual_seed(5)
    )
    second = loss_fn(
        gaussian_denoiser(0.0, 0.4), x, None, generator=torch.Generator().manual_seed(5)
    )
    other = loss_fn(
        gaussian_denoiser(0.0, 0.4), x, None, generator=torch.Generator().manual_seed(6)
    )
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_trains_a_preconditioned_backbone():
    class Backbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
            return self.linear(torch.cat([x, c_noise[:, None]], dim=1))

    torch.manual_seed(0)
    net = EDMPrecond(Backbone(), sigma_data=0.5)
    x = 0.5 * torch.randn(32, 3)
    loss = EDMLoss(sigma_data=0.5)(net, x, None, generator=torch.Generator().manual_seed(7))
    loss.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("kwargs", [{"sigma_data": 0.0}, {"sigma_data": 1.0, "P_std": 0.0}])
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="positive"):
        EDMLoss(**kwargs)


def test_explicit_sigma_and_noise_equal_drawn_ones() -> None:
    """The training loop passes its own draws; they must mean exactly what drawing means."""
    torch.manual_seed(0)
    net = torch.nn.Identity()
    x = torch.randn(5, 1, 3, 2, 2)
    loss = EDMLoss(sigma_data=1.0)
    generator = torch.Generator().manual_seed(4)
    drawn = loss(lambda x_, s, c: net(x_) * 0.5, x, None, generator=generator)
    generator = torch.Generator().manual_seed(4)
    n = torch.randn(5, generator=generator)
    sigma = loss.noise_levels(n)
    noise = torch.randn(x.shape, generator=generator)
    given = loss(lambda x_, s, c: net(x_) * 0.5, x, None, sigma=sigma, noise=noise)
    torch.testing.assert_close(drawn, given)


def test_noise_density_defaults_are_the_configs() -> None:
    """One home for the training noise: the loss's defaults are DiffusionConfig's."""
    config = DiffusionConfig()
    loss = EDMLoss(sigma_data=1.0)
    assert (loss.P_mean, loss.P_std) == (config.p_mean, config.p_std)
    assert EDMLoss.from_config(1.0, DiffusionConfig(p_mean=0.3, p_std=0.5)).P_mean == 0.3
    # ln sigma of the drawn levels is N(P_mean, P_std^2)
    ln_sigma = loss.noise_levels(torch.randn(200_000, generator=torch.Generator().manual_seed(0)))
    ln_sigma = ln_sigma.log()
    assert abs(float(ln_sigma.mean()) - config.p_mean) < 0.01
    assert abs(float(ln_sigma.std()) - config.p_std) < 0.01
