"""Noise-level grids ``sigma_0 > sigma_1 > ... > sigma_N = 0``, built apart from the samplers."""

from __future__ import annotations

import torch
from torch import Tensor


def karras_sigmas(
    n_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """The EDM time steps (eq. 5 of arXiv:2206.00364), with ``sigma_N = 0`` appended.

    ``sigma_i = (sigma_max^(1/rho) + i / (N - 1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``
    for ``i < N``: ``rho = 7`` concentrates the steps at low noise, ``rho = 1`` spaces them
    evenly. Computed in float64, then cast to ``dtype``.

    Args:
        n_steps: number of sampler steps N >= 1; a single step goes from ``sigma_max`` to 0.
        sigma_min: the last non-zero noise level.
        sigma_max: the first noise level.
        rho: the spacing exponent.
        dtype: dtype of the returned grid.
        device: device of the returned grid.

    Returns:
        The noise levels, decreasing from ``sigma_max`` to 0, shape (n_steps + 1,).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    ramp = torch.linspace(0, 1, n_steps, dtype=torch.float64, device=device)
    max_inv_rho = sigma_max ** (1 / rho)
    min_inv_rho = sigma_min ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho  # eq. 5
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(dtype)
