"""The EDM training loss (arXiv:2206.00364, eq. 8 with the Table 1 choices)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from caloforge.config import DiffusionConfig
from caloforge.diffusion.precond import Denoiser

_DEFAULTS = DiffusionConfig()


@dataclass(frozen=True)
class EDMLoss:
    """Denoising score matching with log-normal noise levels and the EDM weighting.

    ``ln(sigma) ~ N(P_mean, P_std^2)`` and ``lambda(sigma) = (sigma^2 + sigma_data^2) /
    (sigma * sigma_data)^2`` (Table 1 of arXiv:2206.00364): with EDM preconditioning this makes
    the backbone's effective loss weight 1 at every noise level.

    The loss owns the density of its training noise levels: whoever draws them (the training
    loop draws standard normal numbers for a whole global batch at once, so that processes and
    resumed runs agree) maps the draws through :meth:`noise_levels`.

    Args:
        sigma_data: standard deviation of the (preprocessed) training data, as given to
            :class:`~caloforge.diffusion.precond.EDMPrecond`.
        P_mean: mean of ``ln(sigma)`` (default: :class:`~caloforge.config.DiffusionConfig`'s).
        P_std: standard deviation of ``ln(sigma)`` (default: the config's too).
    """

    sigma_data: float
    P_mean: float = _DEFAULTS.p_mean
    P_std: float = _DEFAULTS.p_std

    def __post_init__(self) -> None:
        if not (self.sigma_data > 0 and math.isfinite(self.sigma_data)):
            raise ValueError(f"sigma_data must be positive and finite, got {self.sigma_data}")
        if not self.P_std > 0:
            raise ValueError(f"P_std must be positive, got {self.P_std}")

    @classmethod
    def from_config(cls, sigma_data: float, config: DiffusionConfig) -> EDMLoss:
        """The loss with the training noise of ``config``."""
        return cls(sigma_data=sigma_data, P_mean=config.p_mean, P_std=config.p_std)

    def noise_levels(self, normal: Tensor) -> Tensor:
        """Training noise levels from standard normal draws: ``ln(sigma) ~ N(P_mean, P_std^2)``.

        Args:
            normal: standard normal numbers, any shape.

        Returns:
            sigma, ``normal``'s shape (p_train of Table 1, arXiv:2206.00364).
        """
        return (self.P_mean + self.P_std * normal).exp()

    def __call__(
        self,
        net: Denoiser,
        x: Tensor,
        cond: Tensor | None,
        *,
        generator: torch.Generator | None = None,
        sigma: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """The weighted denoising loss of each shower.

        Args:
            net: the denoiser ``D(x, sigma, cond)``.
            x: clean (preprocessed) showers, shape (B, ...).
            cond: conditions, shape (B, n_cond), or None.
            generator: source of the noise levels and the noise; torch's global one if None.
            sigma: the noise levels (B,), instead of drawing them (the training loop draws the
                whole global batch itself, so that every process and a resumed run agree).
            noise: the standard normal noise, x's shape, instead of drawing it.

        Returns:
            The loss of each shower, shape (B,): ``lambda(sigma)`` times the mean over its
            voxels of ``(D(x + sigma * n; sigma) - x)^2``.
        """
        batch = x.shape[0]
        x = x.float()
        if sigma is None:
            sigma = self.noise_levels(torch.randn(batch, generator=generator, device=x.device))
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2  # lambda, Table 1
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, device=x.device)
        sigma_x = sigma.reshape(batch, *[1] * (x.ndim - 1))
        D_x = net(x + sigma_x * noise, sigma, cond)
        # eq. 8 of arXiv:2206.00364, averaged over each shower's voxels
        return weight * (D_x - x).square().reshape(batch, -1).mean(dim=1)
