"""A CaloDiT trained with the default settings follows its conditions.

A model can reach a low denoising loss while ignoring its conditions: at low noise the noisy
shower itself tells its energy. It is only at high noise, where sampling starts, that the
conditions carry the information, and a model that never learnt them there samples showers of
the wrong energy. This test trains a small CaloDiT on synthetic showers whose amplitude follows
the energy condition and whose depth follows theta, and checks that its high-noise denoising error
with the true conditions is well below that with the conditions shuffled between showers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from caloforge.config import DiffusionConfig, TrainConfig
from caloforge.diffusion.loss import EDMLoss
from caloforge.diffusion.precond import EDMPrecond
from caloforge.models.dit import CaloDiT, CaloDiTConfig
from caloforge.train.distributed import Distributed
from caloforge.train.loop import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MESH = (6, 4, 3)
N_COND = 7  # energy, theta, sin phi, cos phi, 3 one-hot slots


def _showers(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Showers (n, 1, Z, A, R) of unit scale and their conditions (n, N_COND)."""
    g = torch.Generator().manual_seed(seed)
    energy, theta = torch.rand(n, generator=g), torch.rand(n, generator=g)
    phi = 2 * math.pi * torch.rand(n, generator=g)
    cond = torch.zeros(n, N_COND)
    cond[:, 0], cond[:, 1], cond[:, 2], cond[:, 3] = energy, theta, phi.sin(), phi.cos()
    cond[:, 4] = 1.0  # one detector
    z = torch.arange(MESH[0]).float()
    depth = 1.0 + 3.0 * theta  # the profile's maximum moves with theta
    profile = torch.exp(-0.5 * (z[None] - depth[:, None]) ** 2)  # (n, Z)
    r = torch.exp(-torch.arange(MESH[2]).float())  # (R,)
    shape = profile[:, :, None, None] * r[None, None, None, :]  # (n, Z, 1, R)
    x = (4 * energy - 2)[:, None, None, None] * shape.expand(n, *MESH)
    x = x + 0.1 * torch.randn(x.shape, generator=g)
    return x[:, None], cond


def _denoising_error(net: torch.nn.Module, x: torch.Tensor, cond: torch.Tensor, sigma: float):  # type: ignore[no-untyped-def]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    sigmas = torch.full((x.shape[0],), sigma)
    with torch.no_grad():
        return ((net(x + sigma * noise, sigmas, cond) - x) ** 2).mean().item()


def test_trained_calodit_follows_its_conditions(tmp_path: Path) -> None:
    x, cond = _showers(512, seed=0)
    val_x, val_cond = _showers(64, seed=1)
    sigma_data = float(x.std())
    torch.manual_seed(0)
    backbone = CaloDiT(
        CaloDiTConfig(
            mesh_shape=MESH, patch_size=(2, 2, 3), embed_dim=24, depth=1, num_heads=2, n_cond=N_COND
        )
    )
    net = EDMPrecond(backbone, sigma_data=sigma_data)
    diffusion = DiffusionConfig()  # the defaults the CLI trains with
    config = TrainConfig(
        steps=800,
        batch_size=32,
        lr=1e-3,
        warmup_steps=20,
        ema_decay=0.9,
        val_every=800,
        checkpoint_every=800,
        log_every=800,
    )
    loss = EDMLoss.from_config(sigma_data, diffusion)
    model = train(
        net,
        loss,
        x,
        cond,
        val_x,
        val_cond,
        config,
        tmp_path,
        dist=Distributed(),
        progress=False,
    )
    test_x, test_cond = _showers(256, seed=2)
    shuffled = test_cond.clone()
    shuffled[:, :4] = test_cond[torch.randperm(256, generator=torch.Generator().manual_seed(3)), :4]
    for sigma in (10.0, 80.0):
        true = _denoising_error(model, test_x, test_cond, sigma)
        wrong = _denoising_error(model, test_x, shuffled, sigma)
        # the energy sets the sign and size of the whole shower: knowing it removes most of
        # the error of a denoiser that sees (almost) nothing but noise
        assert true < 0.5 * wrong, f"sigma={sigma}: error {true:.4f} vs {wrong:.4f} shuffled"
