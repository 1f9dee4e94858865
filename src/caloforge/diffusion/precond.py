"""EDM preconditioning: the denoiser ``D(x; sigma)`` built around a backbone ``F``.

Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models",
arXiv:2206.00364, Table 1 and Appendix B.6. The backbone knows nothing of noise levels; this
module knows no concrete backbone.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor, nn


class Denoiser(Protocol):
    """``D(x, sigma, cond) -> D_x``: an estimate of the clean data from ``x = y + sigma * n``.

    Shapes: ``x`` (B, ...), ``sigma`` (B,), ``cond`` (B, n_cond) or None; ``D_x`` like ``x``.
    """

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor | None, /) -> Tensor: ...


class ClampedDenoiser:
    """A denoiser whose estimates are kept within the range the clean data span.

    The clean-data estimate of a diffusion model is clipped to the data range at every sampler
    step, as DDPM clips its x0 predictions to [-1, 1] (Ho et al. 2020): a model that
    overshoots the range somewhere drives the sampler towards values no training shower had.

    Args:
        denoiser: the denoiser ``D(x, sigma, cond)``.
        low, high: the data range.
    """

    def __init__(self, denoiser: Denoiser, low: float, high: float) -> None:
        if not low < high:
            raise ValueError(f"need low < high, got {low}, {high}")
        self.denoiser, self.low, self.high = denoiser, float(low), float(high)

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor | None, /) -> Tensor:
        return self.denoiser(x, sigma, cond).clamp(self.low, self.high)


class EDMPrecond(nn.Module):
    """The EDM denoiser ``D_x = c_skip * x + c_out * F(c_in * x, c_noise, cond)``.

    Scalings and noise conditioning follow Table 1 of arXiv:2206.00364, so that the backbone sees
    unit-variance inputs and learns a unit-variance target at every noise level.

    Args:
        backbone: any module with ``forward(x, c_noise, cond) -> tensor of x's shape``, where
            ``c_noise`` has shape (B,).
        sigma_data: standard deviation of the (preprocessed) training data, measured by the
            caller. ``forward`` accepts any ``sigma > 0``; the sampling grid is the sampler's
            business (:class:`~caloforge.config.DiffusionConfig`).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        sigma_data: float,
    ) -> None:
        super().__init__()
        if not (sigma_data > 0 and math.isfinite(sigma_data)):
            raise ValueError(f"sigma_data must be positive and finite, got {sigma_data}")
        self.backbone = backbone
        self.sigma_data = float(sigma_data)

    def extra_repr(self) -> str:
        return f"sigma_data={self.sigma_data:g}"

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The preconditioning coefficients at noise level ``sigma``.

        Args:
            sigma: noise levels, any shape.

        Returns:
            ``(c_skip, c_out, c_in, c_noise)``, each of ``sigma``'s shape and dtype.
        """
        sigma_data = self.sigma_data
        # Table 1 of arXiv:2206.00364 (EDM column)
        c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
        c_out = sigma * sigma_data / (sigma**2 + sigma_data**2).sqrt()
        c_in = 1 / (sigma_data**2 + sigma**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: Tensor, sigma: float | Tensor, cond: Tensor | None) -> Tensor:
        """Denoise ``x`` at noise level ``sigma``.

        The preconditioning runs in float32, or in float64 if ``x`` is float64 (as a sampler
        integrating in float64 wants); the backbone always sees float32, as in EDM.

        Args:
            x: noisy showers, shape (B, ...).
            sigma: noise level: a float, a 0-d tensor or a (B,) tensor (one per shower).
            cond: conditions, shape (B, n_cond), or None; passed to the backbone unchanged.

        Returns:
            D_x: the denoised showers, shape (B, ...), float32 (float64 if ``x`` is float64).
        """
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        batch = x.shape[0]
        sigma = torch.as_tensor(sigma, dtype=dtype, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(batch)
        elif sigma.numel() != batch:
            raise ValueError(
                f"sigma must be a scalar or have one value per shower ({batch}), "
                f"got {sigma.numel()} values"
            )
        x = x.to(dtype)
        c_skip, c_out, c_in, c_noise = self.scalings(sigma.reshape(batch, *[1] * (x.ndim - 1)))
        F_x = self.backbone((c_in * x).to(torch.float32), c_noise.reshape(batch).float(), cond)
        if F_x.shape != x.shape:
            raise ValueError(
                f"the backbone returned shape {tuple(F_x.shape)}, not {tuple(x.shape)}"
            )
        # eq. 7 of arXiv:2206.00364
        D_x = c_skip * x + c_out * F_x.to(dtype)
        return D_x
