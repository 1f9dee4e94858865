"""Tests of caloforge.diffusion.samplers and schedules with analytic denoisers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from caloforge.diffusion.precond import EDMPrecond
from caloforge.diffusion.samplers import (
    SAMPLERS,
    ShowerNoise,
    sample_heun,
    sample_heun_stochastic,
)
from caloforge.diffusion.schedules import karras_sigmas

SIGMA_MAX = 80.0
N_SHOWERS = 4000
# sampler -> (steps, settings)
SETTINGS = {
    "euler": (64, {}),
    "heun": (32, {}),
    "heun-stochastic": (32, {"S_churn": 10.0}),
}


def _initial_noise(seeds: list[int] | range, shape: tuple[int, ...], sigma_max: float = SIGMA_MAX):
    noise = ShowerNoise(seeds)
    return noise, noise.randn(shape) * sigma_max


def _mixture_denoiser(weights: Tensor, means: Tensor, stds: Tensor):
    """The exact denoiser of the 1-d Gaussian mixture ``sum_k w_k N(mu_k, s_k^2)``, per voxel."""

    def denoiser(x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        sigma = sigma.reshape(-1, *[1] * x.ndim)
        var = stds**2 + sigma**2  # (B, 1, ..., K): variance of component k at noise sigma
        log_resp = weights.log() - 0.5 * (x[..., None] - means) ** 2 / var - 0.5 * var.log()
        resp = log_resp.softmax(dim=-1)  # posterior probability of each component
        component_mean = means + stds**2 / var * (x[..., None] - means)
        return (resp * component_mean).sum(dim=-1)

    return denoiser


# ----------------------------------------------------------------------------------------------
# Noise-level grid


@pytest.mark.parametrize("n_steps", [1, 2, 18, 64])
def test_karras_grid_runs_from_sigma_max_down_to_zero(n_steps):
    sigmas = karras_sigmas(n_steps, sigma_min=0.002, sigma_max=80.0)
    assert sigmas.shape == (n_steps + 1,)
    assert sigmas.dtype == torch.float32
    assert sigmas[0].item() == 80.0
    assert sigmas[-1].item() == 0.0
    assert (sigmas[1:] < sigmas[:-1]).all()
    if n_steps > 1:
        assert sigmas[-2].item() == pytest.approx(0.002, rel=1e-6)


def test_karras_grid_matches_eq_5():
    sigmas = karras_sigmas(5, sigma_min=0.1, sigma_max=10.0, rho=3.0, dtype=torch.float64)
    expected = [(10 ** (1 / 3) + i / 4 * (0.1 ** (1 / 3) - 10 ** (1 / 3))) ** 3 for i in range(5)]
    torch.testing.assert_close(sigmas, torch.tensor([*expected, 0.0], dtype=torch.float64))
    linear = karras_sigmas(4, sigma_min=1.0, sigma_max=4.0, rho=1.0)  # rho = 1: even spacing
    torch.testing.assert_close(linear, torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0]))


@pytest.mark.parametrize(
    "kwargs", [{"n_steps": 0}, {"n_steps": 4, "sigma_min": 0.0}, {"n_steps": 4, "rho": 0.0}]
)
def test_karras_grid_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match=r"must|need"):
        karras_sigmas(**kwargs)


# ----------------------------------------------------------------------------------------------
# Distributions reached with analytic denoisers


@pytest.mark.parametrize("name", list(SETTINGS))
def test_sampler_reaches_the_gaussian_data_distribution(name, gaussian_denoiser):
    # |mu| << SIGMA_MAX: the samplers start from N(0, SIGMA_MAX^2), which shifts x_0 by -mu s / 80
    mu = torch.tensor([[0.5, -1.0, 1.0], [0.0, 0.8, -0.2]])  # shower shape (2, 3)
    s = torch.tensor([[0.5, 1.0, 2.0], [0.7, 0.5, 1.5]])
    n_steps, settings = SETTINGS[name]
    noise, x_T = _initial_noise(range(N_SHOWERS), (2, 3))
    x_0 = SAMPLERS[name](
        gaussian_denoiser(mu, s), x_T, karras_sigmas(n_steps), cond=None, noise=noise, **settings
    )
    assert x_0.shape == (N_SHOWERS, 2, 3)
    # statistical errors: 1.6 % of s on the mean, 1.1 % on the std; on top of that these step
    # counts bias the std by 3-4.5 % (Euler low, stochastic Heun high; propagating the variance
    # through the steps gives the same), deterministic Heun by 1-1.6 %
    assert ((x_0.mean(dim=0) - mu).abs() / s).max().item() < 0.06
    assert ((x_0.std(dim=0) / s) - 1).abs().max().item() < 0.07


def test_stochastic_sampler_recovers_mixture_weights():
    weights = torch.tensor([0.3, 0.7])
    denoiser = _mixture_denoiser(weights, torch.tensor([-2.0, 2.0]), torch.tensor([0.5, 0.5]))
    noise, x_T = _initial_noise(range(N_SHOWERS), (1,))
    x_0 = sample_heun_stochastic(
        denoiser, x_T, karras_sigmas(32), cond=None, noise=noise, S_churn=10.0
    )
    assert abs((x_0 < 0).float().mean().item() - 0.3) < 0.05
    left, right = x_0[x_0 < 0], x_0[x_0 >= 0]
    assert left.mean().item() == pytest.approx(-2.0, abs=0.1)
    assert right.mean().item() == pytest.approx(2.0, abs=0.1)
    assert right.std().item() == pytest.approx(0.5, rel=0.1)


# ----------------------------------------------------------------------------------------------
# Structure: steps, callback, shared signature


def test_stochastic_sampler_without_churn_is_algorithm_1(gaussian_denoiser):
    denoiser = gaussian_denoiser(0.3, 0.7)
    _, x_T = _initial_noise(range(50), (4,))
    sigmas = karras_sigmas(12)
    heun = sample_heun(denoiser, x_T, sigmas, cond=None)
    stochastic = sample_heun_stochastic(denoiser, x_T, sigmas, cond=None)
    torch.testing.assert_close(stochastic, heun, rtol=0, atol=0)


def test_churn_outside_its_noise_range_is_algorithm_1(gaussian_denoiser):
    denoiser = gaussian_denoiser(0.3, 0.7)
    noise, x_T = _initial_noise(range(50), (4,))
    sigmas = karras_sigmas(12)
    heun = sample_heun(denoiser, x_T, sigmas, cond=None)
    stochastic = sample_heun_stochastic(
        denoiser, x_T, sigmas, cond=None, noise=noise, S_churn=10.0, S_tmin=100.0, S_tmax=200.0
    )
    torch.testing.assert_close(stochastic, heun, rtol=0, atol=0)
    churned = sample_heun_stochastic(denoiser, x_T, sigmas, cond=None, noise=noise, S_churn=10.0)
    assert not torch.equal(churned, heun)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_single_step_returns_the_denoised_noise(name, gaussian_denoiser):
    # one step from sigma_max to 0 is an Euler step: x_0 = D(x_T; sigma_max)
    denoiser = gaussian_denoiser(0.3, 0.7)
    noise, x_T = _initial_noise(range(10), (4,))
    sigmas = karras_sigmas(1)
    x_0 = SAMPLERS[name](denoiser, x_T, sigmas, cond=None, noise=noise)
    torch.testing.assert_close(x_0, denoiser(x_T, sigmas[0].expand(10), None))


@pytest.mark.parametrize("name", list(SETTINGS))
def test_callback_is_called_once_per_step(name, gaussian_denoiser):
    calls: list[tuple[int, float]] = []

    def callback(i: int, x: Tensor, sigma: Tensor) -> None:
        assert x.shape == (10, 4)
        calls.append((i, sigma.item()))

    noise, x_T = _initial_noise(range(10), (4,))
    sigmas = karras_sigmas(7)
    _, settings = SETTINGS[name]
    SAMPLERS[name](
        gaussian_denoiser(0.0, 1.0),
        x_T,
        sigmas,
        cond=None,
        noise=noise,
        callback=callback,
        **settings,
    )
    assert calls == [(i, sigmas[i + 1].item()) for i in range(7)]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_denoiser_gets_per_shower_sigma_and_the_conditions(name):
    seen: list[tuple[tuple[int, ...], Tensor | None]] = []

    def denoiser(x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        seen.append((tuple(sigma.shape), cond))
        return torch.zeros_like(x)

    cond = torch.ones(6, 2)
    noise, x_T = _initial_noise(range(6), (3,))
    SAMPLERS[name](denoiser, x_T, karras_sigmas(4), cond=cond, noise=noise)
    assert seen
    assert all(shape == (6,) and c is cond for shape, c in seen)


def test_churn_needs_a_noise_source(gaussian_denoiser):
    _, x_T = _initial_noise(range(4), (3,))
    with pytest.raises(ValueError, match="noise source"):
        sample_heun_stochastic(
            gaussian_denoiser(0.0, 1.0), x_T, karras_sigmas(4), cond=None, S_churn=1.0
        )


def test_samplers_reject_a_grid_without_steps(gaussian_denoiser):
    _, x_T = _initial_noise(range(4), (3,))
    for sampler in SAMPLERS.values():
        with pytest.raises(ValueError, match="sigmas"):
            sampler(gaussian_denoiser(0.0, 1.0), x_T, torch.tensor([80.0]), cond=None)


def test_samplers_keep_float64(gaussian_denoiser):
    noise = ShowerNoise(range(5))
    x_T = noise.randn((3,), dtype=torch.float64) * SIGMA_MAX
    for name, (_, settings) in SETTINGS.items():
        x_0 = SAMPLERS[name](
            gaussian_denoiser(0.0, 1.0), x_T, karras_sigmas(4), cond=None, noise=noise, **settings
        )
        assert x_0.dtype == torch.float64


# ----------------------------------------------------------------------------------------------
# Per-shower seeds


def test_shower_noise_depends_only_on_the_showers_seed():
    batch = ShowerNoise([5, 6, 7])
    alone = ShowerNoise(torch.tensor([6]))
    for _ in range(3):  # successive draws too
        drawn = batch.randn((2, 3))
        assert drawn.shape == (3, 2, 3)
        torch.testing.assert_close(drawn[1:2], alone.randn((2, 3)), rtol=0, atol=0)
    assert len(batch) == 3
    first = ShowerNoise([5, 6]).randn((4,))
    assert not torch.equal(first[0], first[1])


class TinyBackbone(nn.Module):
    """A small random conv net, so that batched and single evaluations take different paths."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.out = nn.Conv3d(4, 1, 1)
        self.embed = nn.Linear(3, 4)

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
        shift = self.embed(torch.cat([c_noise[:, None], cond], dim=1))  # (B, 4)
        return self.out(torch.tanh(self.conv(x) + shift[:, :, None, None, None]))


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_shower_depends_only_on_its_seed_not_its_batch(name):
    torch.manual_seed(0)
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5).eval()
    shape = (1, 6, 4, 3)
    cond = torch.tensor([[0.1, 0.2], [0.5, -0.3], [0.9, 0.0]])
    sigmas = karras_sigmas(8)
    _, settings = SETTINGS[name]

    def generate(seeds: list[int], cond: Tensor) -> Tensor:
        noise, x_T = _initial_noise(seeds, shape)
        return SAMPLERS[name](net, x_T, sigmas, cond=cond, noise=noise, **settings)

    in_batch = generate([5, 6, 7], cond)
    alone = generate([6], cond[1:2])
    torch.testing.assert_close(in_batch[1:2], alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(in_batch[0], in_batch[1])
    assert math.isfinite(in_batch.abs().max().item())
