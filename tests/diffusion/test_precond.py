"""Tests of caloforge.diffusion.precond: EDM Table 1 scalings around arbitrary backbones."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch import Tensor, nn

from caloforge.diffusion.precond import ClampedDenoiser, EDMPrecond
from caloforge.diffusion.samplers import SAMPLERS
from caloforge.diffusion.schedules import karras_sigmas

SHAPE = (1, 6, 4, 3)  # (C, Z, A, R): a miniature of CaloChallenge dataset 2's (1, 45, 16, 9)
N_COND = 2


class ConvBackbone(nn.Module):
    """A small random 3-d conv net conditioned on c_noise and cond."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3, padding=1)
        self.embed = nn.Linear(1 + N_COND, 1)

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
        shift = self.embed(torch.cat([c_noise[:, None], cond], dim=1))  # (B, 1)
        return torch.tanh(self.conv(x)) + shift.reshape(-1, 1, 1, 1, 1)


class LinearBackbone(nn.Module):
    """A random linear map of the flattened shower, for any shower shape."""

    def __init__(self, n_voxels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_voxels + 1 + N_COND, n_voxels)

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
        h = torch.cat([x.flatten(1), c_noise[:, None], cond], dim=1)
        return self.linear(h).reshape(x.shape)


class LargeRandomBackbone(nn.Module):
    """Ignores its inputs and returns large random values."""

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
        generator = torch.Generator().manual_seed(3)
        return 1e3 * torch.randn(x.shape, generator=generator)


class Recorder(nn.Module):
    """Returns a fixed function of x and records what it was given."""

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
        self.x, self.c_noise, self.cond = x, c_noise, cond
        return torch.sin(x) + c_noise.reshape(-1, *[1] * (x.ndim - 1))


def _showers(batch: int = 5, shape: tuple[int, ...] = SHAPE) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = 0.7 * torch.randn(batch, *shape, generator=generator)
    cond = torch.rand(batch, N_COND, generator=generator)
    return x, cond


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)  # the random backbones' initialisation


@pytest.mark.parametrize(
    ("make_backbone", "sigma"),
    [
        (ConvBackbone, 1e-6),
        (partial(LinearBackbone, math.prod(SHAPE)), 1e-6),
        (LargeRandomBackbone, 1e-9),  # c_out ~ sigma: an output 1e3 times larger needs 1e-9
    ],
    ids=["conv", "linear", "large-random"],
)
def test_denoiser_is_the_identity_at_vanishing_noise(make_backbone, sigma):
    x, cond = _showers()
    D_x = EDMPrecond(make_backbone(), sigma_data=0.5)(x, sigma, cond)
    torch.testing.assert_close(D_x, x, rtol=1e-5, atol=1e-5)


def test_skip_path_error_shrinks_linearly_with_sigma():
    x, cond = _showers()
    net = EDMPrecond(LargeRandomBackbone(), sigma_data=0.5)
    errors = [(net(x, sigma, cond) - x).abs().max().item() for sigma in (1e-3, 1e-4, 1e-5)]
    assert errors[0] / errors[1] == pytest.approx(10, rel=1e-3)
    assert errors[1] / errors[2] == pytest.approx(10, rel=1e-2)


@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 1.0, 7.3, 80.0])
def test_scalings_match_table_1(sigma):
    sigma_data = 0.5
    net = EDMPrecond(Recorder(), sigma_data=sigma_data)
    c_skip, c_out, c_in, c_noise = net.scalings(torch.tensor(sigma, dtype=torch.float64))
    assert c_skip.item() == pytest.approx(sigma_data**2 / (sigma**2 + sigma_data**2), rel=1e-12)
    assert c_out.item() == pytest.approx(
        sigma * sigma_data / math.sqrt(sigma**2 + sigma_data**2), rel=1e-12
    )
    assert c_in.item() == pytest.approx(1 / math.sqrt(sigma_data**2 + sigma**2), rel=1e-12)
    assert c_noise.item() == pytest.approx(math.log(sigma) / 4, rel=1e-12)


def test_forward_is_skip_plus_scaled_backbone_of_scaled_input():
    x, cond = _showers()
    backbone = Recorder()
    net = EDMPrecond(backbone, sigma_data=0.5)
    sigma = torch.tensor([0.01, 0.3, 1.0, 5.0, 60.0])
    D_x = net(x, sigma, cond)
    c_skip, c_out, c_in, c_noise = (c.reshape(-1, 1, 1, 1, 1) for c in net.scalings(sigma))
    torch.testing.assert_close(backbone.x, c_in * x)
    torch.testing.assert_close(backbone.c_noise, sigma.log() / 4)
    assert backbone.cond is cond
    torch.testing.assert_close(D_x, c_skip * x + c_out * (torch.sin(c_in * x) + c_noise))


def test_backbone_sees_unit_variance_input_and_target():
    # Appendix B.6: for data of std sigma_data, c_in * (y + n) and the effective target
    # (y - c_skip * (y + n)) / c_out have unit variance at every noise level
    sigma_data = 0.5
    net = EDMPrecond(Recorder(), sigma_data=sigma_data)
    generator = torch.Generator().manual_seed(1)
    y = sigma_data * torch.randn(200_000, generator=generator, dtype=torch.float64)
    n = torch.randn(200_000, generator=generator, dtype=torch.float64)
    for sigma in (0.01, 0.5, 3.0, 80.0):
        c_skip, c_out, c_in, _ = net.scalings(torch.tensor(sigma, dtype=torch.float64))
        x = y + sigma * n
        assert (c_in * x).std().item() == pytest.approx(1, abs=0.01)
        assert ((y - c_skip * x) / c_out).std().item() == pytest.approx(1, abs=0.01)


def test_sigma_float_scalar_and_per_shower_broadcast_alike():
    x, cond = _showers()
    backbone = Recorder()
    net = EDMPrecond(backbone, sigma_data=0.5)
    expected = net(x, torch.full((5,), 0.8), cond)
    for sigma in (0.8, torch.tensor(0.8), torch.tensor([0.8])):
        torch.testing.assert_close(net(x, sigma, cond), expected, rtol=0, atol=0)
        assert backbone.c_noise.shape == (5,)


def test_per_shower_sigma_denoises_each_shower_at_its_own_level():
    x, cond = _showers()
    net = EDMPrecond(LinearBackbone(math.prod(SHAPE)), sigma_data=0.5)
    sigma = torch.tensor([0.01, 0.3, 1.0, 5.0, 60.0])
    D_x = net(x, sigma, cond)
    for i in range(5):
        D_i = net(x[i : i + 1], sigma[i], cond[i : i + 1])
        torch.testing.assert_close(D_x[i : i + 1], D_i)


@pytest.mark.parametrize("shape", [(7,), (2, 3), (1, 4, 3, 2, 2)])
def test_any_shower_shape(shape):
    x, cond = _showers(3, shape)
    net = EDMPrecond(LinearBackbone(math.prod(shape)), sigma_data=1.3)
    assert net(x, torch.tensor([0.1, 1.0, 10.0]), cond).shape == x.shape


def test_dtypes():
    x, cond = _showers()
    net = EDMPrecond(ConvBackbone(), sigma_data=0.5)
    assert net(x, 1.0, cond).dtype == torch.float32
    assert net(x.double(), 1.0, cond).dtype == torch.float64
    assert net(x.half(), 1.0, cond).dtype == torch.float32


def test_gradients_reach_the_backbone():
    x, cond = _showers()
    net = EDMPrecond(ConvBackbone(), sigma_data=0.5)
    net(x, 1.0, cond).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_rejects_wrong_sigma_shape_and_backbone_shape():
    x, cond = _showers()
    with pytest.raises(ValueError, match="one value per shower"):
        EDMPrecond(Recorder(), sigma_data=0.5)(x, torch.ones(4), cond)

    class Flat(nn.Module):
        def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
            return x.flatten(1)

    with pytest.raises(ValueError, match="backbone returned shape"):
        EDMPrecond(Flat(), sigma_data=0.5)(x, 1.0, cond)


@pytest.mark.parametrize(
    "kwargs",
    [{"sigma_data": 0.0}, {"sigma_data": math.inf}, {"sigma_data": -1.0}],
)
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="sigma"):
        EDMPrecond(Recorder(), **kwargs)


def test_records_its_sigma_data():
    net = EDMPrecond(Recorder(), sigma_data=0.5)
    assert net.sigma_data == 0.5
    assert "sigma_data=0.5" in repr(net)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_clamped_denoiser_keeps_samples_in_the_data_range(name):
    def overshooting(x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        return 5.0 * x + 3.0  # estimates far outside [-1, 2] at every noise level

    clamped = ClampedDenoiser(overshooting, -1.0, 2.0)
    x = torch.linspace(-50, 50, 12).reshape(3, 4)
    out = clamped(x, torch.ones(3), None)
    assert out.min() == -1.0
    assert out.max() == 2.0
    sigmas = karras_sigmas(16, 0.002, 80.0, 7.0)
    x_T = torch.randn((64, 5), generator=torch.Generator().manual_seed(0)) * sigmas[0]
    free = SAMPLERS[name](overshooting, x_T, sigmas, cond=None)
    bounded = SAMPLERS[name](clamped, x_T, sigmas, cond=None)
    assert free.abs().max() > 10  # without the bound the sampler follows the overshoot
    # the last step (to sigma = 0) lands on a clamped estimate
    assert bounded.min() >= -1.0 - 0.01
    assert bounded.max() <= 2.0 + 0.01
    with pytest.raises(ValueError, match="low < high"):
        ClampedDenoiser(overshooting, 1.0, 1.0)
