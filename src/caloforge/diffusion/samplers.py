"""Samplers for EDM denoisers: ODE solvers and the stochastic sampler (arXiv:2206.00364).

Every sampler is a pure function with one signature::

    sample_xxx(denoiser, x_T, sigmas, *, cond, noise=None, callback=None, **settings) -> x_0

``denoiser(x, sigma, cond)`` returns ``D_x`` for ``sigma`` of shape (B,); ``x_T`` is the initial
noise, already scaled by ``sigmas[0]``; ``sigmas`` is a decreasing grid ending in 0 (see
:mod:`caloforge.diffusion.schedules`), one step per consecutive pair. ``noise`` supplies the
fresh noise of stochastic samplers, one generator per shower (:class:`ShowerNoise`), so that a
shower depends only on its own seed. ``callback(i, x, sigma)`` sees the state after step ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor

from caloforge.diffusion.precond import Denoiser

Callback = Callable[[int, Tensor, Tensor], None]


class Noise(Protocol):
    """A source of per-shower standard normal noise, like :class:`ShowerNoise`."""

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor: ...


class ShowerNoise:
    """One ``torch.Generator`` per shower, so that its noise depends only on its own seed.

    A shower's initial noise and the noise of every later draw are then the same whichever
    batch, and wherever in it, the shower is generated (EDM's ``StackedRandomGenerator``).

    Args:
        seeds: one integer seed per shower, shape (B,).
        device: device of the generators and of the noise they draw.
    """

    def __init__(self, seeds: Sequence[int] | Tensor, device: torch.device | str = "cpu") -> None:
        seeds = seeds.tolist() if isinstance(seeds, Tensor) else list(seeds)
        if not seeds:
            raise ValueError("ShowerNoise needs at least one seed")
        self.device = torch.device(device)
        # manual_seed takes 64-bit seeds; any Python integer is folded into that range
        self.generators = [
            torch.Generator(self.device).manual_seed(int(seed) % (1 << 64)) for seed in seeds
        ]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal noise, each row drawn from its shower's own generator.

        Args:
            shape: the shape of one shower's noise, e.g. (C, Z, A, R).
            dtype: a floating-point dtype.

        Returns:
            The noise, shape (B, *shape).
        """
        shape = tuple(shape)
        return torch.stack(
            [
                torch.randn(shape, generator=generator, dtype=dtype, device=self.device)
                for generator in self.generators
            ]
        )


def _fresh_noise(noise: Noise | None, x: Tensor) -> Tensor:
    if noise is None:
        raise ValueError("a stochastic step needs a noise source, e.g. ShowerNoise(seeds)")
    eps = noise.randn(x.shape[1:], dtype=x.dtype).to(x.device)
    if eps.shape != x.shape:
        raise ValueError(f"the noise source drew {tuple(eps.shape)} for showers {tuple(x.shape)}")
    return eps


def _check_sigmas(sigmas: Tensor) -> None:
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(f"sigmas must be a 1-d grid of at least 2 levels, got {sigmas.shape}")


# ----------------------------------------------------------------------------------------------
# Steps, shared with the distillation code


def euler_step(
    denoiser: Denoiser, x: Tensor, sigma: Tensor, sigma_next: Tensor, cond: Tensor | None
) -> Tensor:
    """One Euler step of the probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma``.

    Args:
        denoiser: ``D(x, sigma, cond)``.
        x: showers at noise level ``sigma``, shape (B, ...).
        sigma: current noise level, a 0-d tensor > 0.
        sigma_next: next noise level, a 0-d tensor >= 0.
        cond: conditions, shape (B, n_cond), or None.

    Returns:
        The showers at ``sigma_next``, shape (B, ...).
    """
    s_in = x.new_ones(x.shape[0])
    # eq. 1 with sigma(t) = t and the score of eq. 3: dx/dsigma = (x - D_x) / sigma
    d = (x - denoiser(x, sigma * s_in, cond).to(x.dtype)) / sigma
    return x + (sigma_next - sigma) * d


def heun_step(
    denoiser: Denoiser, x: Tensor, sigma: Tensor, sigma_next: Tensor, cond: Tensor | None
) -> Tensor:
    """One Heun step of the probability-flow ODE (lines 4-8 of Algorithm 1, arXiv:2206.00364).

    The second-order correction is skipped when ``sigma_next == 0``, where ``d`` is undefined;
    that last step is an Euler step.

    Args:
        denoiser: ``D(x, sigma, cond)``.
        x: showers at noise level ``sigma``, shape (B, ...).
        sigma: current noise level, a 0-d tensor > 0.
        sigma_next: next noise level, a 0-d tensor >= 0.
        cond: conditions, shape (B, n_cond), or None.

    Returns:
        The showers at ``sigma_next``, shape (B, ...).
    """
    s_in = x.new_ones(x.shape[0])
    d = (x - denoiser(x, sigma * s_in, cond).to(x.dtype)) / sigma
    x_next = x + (sigma_next - sigma) * d
    if sigma_next > 0:
        d_prime = (x_next - denoiser(x_next, sigma_next * s_in, cond).to(x.dtype)) / sigma_next
        x_next = x + (sigma_next - sigma) * (d + d_prime) / 2
    return x_next


# ----------------------------------------------------------------------------------------------
# Samplers


def _integrate(
    step: Callable[[Denoiser, Tensor, Tensor, Tensor, Tensor | None], Tensor],
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    cond: Tensor | None,
    callback: Callback | None,
) -> Tensor:
    """Apply a deterministic ``step`` along the grid ``sigmas``."""
    _check_sigmas(sigmas)
    sigmas = sigmas.to(x_T.device, x_T.dtype)
    x = x_T
    for i in range(len(sigmas) - 1):
        x = step(denoiser, x, sigmas[i], sigmas[i + 1], cond)
        if callback is not None:
            callback(i, x, sigmas[i + 1])
    return x


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None,
    noise: Noise | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """First-order deterministic sampler: Euler steps of the probability-flow ODE.

    Args:
        denoiser: ``D(x, sigma, cond)``.
        x_T: initial noise times ``sigmas[0]``, shape (B, ...); its dtype is the sampler's.
        sigmas: decreasing noise levels ending in 0, shape (N + 1,) for N steps.
        cond: conditions, shape (B, n_cond), or None.
        noise: unused (deterministic); accepted for the shared signature.
        callback: called as ``callback(i, x, sigma)`` after step ``i`` with the new state.

    Returns:
        x_0: the samples, shape (B, ...).
    """
    del noise  # deterministic
    return _integrate(euler_step, denoiser, x_T, sigmas, cond, callback)


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None,
    noise: Noise | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Second-order deterministic sampler: Heun's method (Algorithm 1 of arXiv:2206.00364).

    Args:
        denoiser: ``D(x, sigma, cond)``.
        x_T: initial noise times ``sigmas[0]``, shape (B, ...); its dtype is the sampler's.
        sigmas: decreasing noise levels ending in 0, shape (N + 1,) for N steps; the last step
            is an Euler step, so N steps cost 2N - 1 denoiser evaluations.
        cond: conditions, shape (B, n_cond), or None.
        noise: unused (deterministic); accepted for the shared signature.
        callback: called as ``callback(i, x, sigma)`` after step ``i`` with the new state.

    Returns:
        x_0: the samples, shape (B, ...).
    """
    del noise  # deterministic
    return _integrate(heun_step, denoiser, x_T, sigmas, cond, callback)


@torch.no_grad()
def sample_heun_stochastic(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None,
    noise: Noise | None = None,
    callback: Callback | None = None,
    S_churn: float = 0.0,
    S_tmin: float = 0.0,
    S_tmax: float = math.inf,
    S_noise: float = 1.0,
) -> Tensor:
    """The EDM stochastic sampler (Algorithm 2 of arXiv:2206.00364).

    Each step first adds noise to go from ``sigma_i`` up to ``sigma_hat = (1 + gamma_i) *
    sigma_i``, then takes a Heun step from ``sigma_hat`` down to ``sigma_{i+1}``. With
    ``S_churn = 0`` (the default) it is Algorithm 1 and needs no ``noise``.

    Args:
        denoiser: ``D(x, sigma, cond)``.
        x_T: initial noise times ``sigmas[0]``, shape (B, ...); its dtype is the sampler's.
        sigmas: decreasing noise levels ending in 0, shape (N + 1,) for N steps.
        cond: conditions, shape (B, n_cond), or None.
        noise: per-shower noise source, required if ``S_churn > 0``.
        callback: called as ``callback(i, x, sigma)`` after step ``i`` with the new state.
        S_churn: overall stochasticity: ``gamma_i = min(S_churn / N, sqrt(2) - 1)``.
        S_tmin: lowest noise level at which noise is added.
        S_tmax: highest noise level at which noise is added.
        S_noise: scale of the added noise, slightly above 1 to offset denoiser bias.

    Returns:
        x_0: the samples, shape (B, ...).
    """
    _check_sigmas(sigmas)
    sigmas = sigmas.to(x_T.device, x_T.dtype)
    n_steps = len(sigmas) - 1
    gamma_max = min(S_churn / n_steps, math.sqrt(2) - 1)
    x = x_T
    for i in range(n_steps):
        sigma = sigmas[i]
        gamma = gamma_max if S_tmin <= sigma <= S_tmax else 0.0  # gamma_i of Algorithm 2
        if gamma > 0:
            sigma_hat = sigma * (1 + gamma)  # Algorithm 2, line 5
            eps = S_noise * _fresh_noise(noise, x)
            x = x + (sigma_hat**2 - sigma**2).sqrt() * eps  # Algorithm 2, line 6
            sigma = sigma_hat
        x = heun_step(denoiser, x, sigma, sigmas[i + 1], cond)  # Algorithm 2, lines 7-11
        if callback is not None:
            callback(i, x, sigmas[i + 1])
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "heun-stochastic": sample_heun_stochastic,
    "heun": sample_heun,
    "euler": sample_euler,
}
