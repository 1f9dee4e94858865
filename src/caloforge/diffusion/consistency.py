"""Consistency models from an EDM teacher: the student, its two training losses, its sampler.

A consistency model ``f(x, sigma)`` maps a point of the probability-flow ODE at any noise
level straight to the ODE's end (the clean shower), so one network evaluation draws a sample.

- **The student** (:class:`ConsistencyPrecond`): EDM's preconditioning with the boundary
  condition of Song et al. (arXiv:2303.01469, Appendix C), ``f(x, sigma_min) = x``::

      c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)
      c_out  = sigma_data (sigma - sigma_min) / sqrt(sigma_data^2 + sigma^2)

  ``c_in`` and ``c_noise`` are EDM's, so the student starts from the teacher's weights.
- **Consistency distillation** (:class:`ConsistencyDistillationLoss`, CD, Algorithm 2 of
  arXiv:2303.01469, as CaloClouds II): on a Karras grid of ``N`` levels, a clean shower is
  noised to ``sigma_{n+1}``, the teacher takes one Heun step to ``sigma_n``, and the student at
  ``sigma_{n+1}`` is pulled towards the *target* network (an EMA of the student, decay ``mu``)
  at ``sigma_n``.
- **Easy consistency tuning** (:class:`EasyConsistencyLoss`, ECT, Geng et al.,
  arXiv:2406.14548): no teacher evaluation. The same noise at two levels ``t > r`` of one
  clean shower; the student at ``t`` is pulled towards its own stop-gradient output at ``r``.
  ``r = t (1 - n(t) / q^stage)``, ``n(t) = 1 + k sigmoid(-b t)``, so training starts as
  denoising (``r`` clipped to 0: the target is the clean shower) and tightens ``dt = t - r``
  by ``q`` every stage; loss weight ``1 / (t - r)``.

Both use the pseudo-Huber distance of Song & Dhariwal (arXiv:2310.14189),
``sqrt(|a - b|^2 / d + c^2) - c`` per shower (``d`` its values; ``c`` small), which is
less driven by outliers than the squared distance.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from caloforge.diffusion.precond import Denoiser, EDMPrecond
from caloforge.diffusion.samplers import Noise
from caloforge.diffusion.schedules import karras_sigmas


class ConsistencyPrecond(EDMPrecond):
    """``f(x, sigma) = c_skip x + c_out F(c_in x, c_noise, cond)`` with ``f(x, sigma_min) = x``.

    Args:
        backbone: as :class:`~caloforge.diffusion.precond.EDMPrecond`'s.
        sigma_data: the teacher's ``sigma_data``.
        sigma_min: the smallest noise level, where the student is the identity.
    """

    def __init__(self, backbone: nn.Module, *, sigma_data: float, sigma_min: float) -> None:
        super().__init__(backbone, sigma_data=sigma_data)
        if not sigma_min > 0:
            raise ValueError(f"sigma_min must be positive, got {sigma_min}")
        self.sigma_min = float(sigma_min)

    def extra_repr(self) -> str:
        return f"sigma_data={self.sigma_data:g}, sigma_min={self.sigma_min:g}"

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        _, _, c_in, c_noise = super().scalings(sigma)
        s_d, shifted = self.sigma_data, sigma - self.sigma_min
        # Appendix C of arXiv:2303.01469: the boundary condition f(x, sigma_min) = x
        c_skip = s_d**2 / (shifted**2 + s_d**2)
        c_out = shifted * s_d / (s_d**2 + sigma**2).sqrt()
        return c_skip, c_out, c_in, c_noise

    @classmethod
    def from_teacher(cls, teacher: EDMPrecond, sigma_min: float) -> ConsistencyPrecond:
        """A student with a copy of the teacher's backbone and weights."""
        return cls(copy.deepcopy(teacher.backbone), sigma_data=teacher.sigma_data, sigma_min=sigma_min)  # fmt: skip


class ConsistencyStudent(nn.Module):
    """The student being trained (``online``) and its target network (``target``, no gradient).

    The target is part of the module so that checkpoints keep it; :meth:`update_target` moves
    it towards the online network after every optimiser step: ``target <- mu target + (1 - mu)
    online`` (``mu = 0``: the target is the online network, with its gradient stopped).
    """

    def __init__(self, online: ConsistencyPrecond, target_decay: float) -> None:
        super().__init__()
        if not 0 <= target_decay < 1:
            raise ValueError(f"the target decay must lie in [0, 1), got {target_decay}")
        self.online = online
        self.target = copy.deepcopy(online).requires_grad_(False)
        self.target_decay = float(target_decay)

    def forward(self, x: Tensor, sigma: float | Tensor, cond: Tensor | None) -> Tensor:
        return self.online(x, sigma, cond)

    @torch.no_grad()
    def update_target(self) -> None:
        for t, p in zip(self.target.parameters(), self.online.parameters(), strict=True):
            t.lerp_(p.detach(), 1.0 - self.target_decay)


def pseudo_huber(a: Tensor, b: Tensor, c: float) -> Tensor:
    """``sqrt(mean((a - b)^2) + c^2) - c`` per row (B,), the mean over each row's values."""
    sq = (a - b).square().reshape(a.shape[0], -1).mean(dim=1)
    return (sq + c * c).sqrt() - c


def _unwrap(net: nn.Module) -> ConsistencyStudent:
    student = getattr(net, "module", net)  # under DDP, the wrapped module
    if not isinstance(student, ConsistencyStudent):
        raise TypeError(f"a consistency loss trains a ConsistencyStudent, not {type(student)}")
    return student


class ConsistencyDistillationLoss:
    """Consistency distillation from an EDM teacher (see the module doc).

    Args:
        teacher: the EDM denoiser (frozen).
        n_levels: the levels ``N`` of the Karras grid (CaloClouds II: 18).
        sigma_min, sigma_max, rho: the grid.
        huber_c: the pseudo-Huber constant.
    """

    def __init__(
        self,
        teacher: Denoiser,
        *,
        n_levels: int = 18,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        huber_c: float = 0.03,
    ) -> None:
        if n_levels < 2:
            raise ValueError(f"the grid needs at least 2 levels, got {n_levels}")
        self.teacher = teacher
        self.levels = karras_sigmas(n_levels, sigma_min, sigma_max, rho)[:-1].flip(0)  # increasing
        self.huber_c = huber_c

    def noise_levels(self, normal: Tensor) -> Tensor:
        """``sigma_{n+1}`` with ``n`` uniform in 0..N-2, from standard normal draws."""
        uniform = 0.5 * (1 + torch.erf(normal / math.sqrt(2)))
        n = (uniform * (len(self.levels) - 1)).long().clamp(0, len(self.levels) - 2)
        return self.levels[n + 1]

    def __call__(
        self, net: nn.Module, x: Tensor, cond: Tensor, *, sigma: Tensor, noise: Tensor
    ) -> Tensor:
        student = _unwrap(net)
        batch = x.shape[0]
        index = torch.searchsorted(self.levels, sigma.to(self.levels.dtype))
        index = index.clamp(1, len(self.levels) - 1)
        sigma_next, sigma_prev = self.levels[index], self.levels[index - 1]  # sigma_{n+1}, sigma_n
        x_next = x + sigma_next.reshape(batch, *[1] * (x.ndim - 1)) * noise
        with torch.no_grad():
            # one Heun step of the teacher per shower, each from its own level
            x_prev = _heun_rows(self.teacher, x_next, sigma_next, sigma_prev, cond)
            target = student.target(x_prev, sigma_prev, cond)
        return pseudo_huber(net(x_next, sigma_next, cond), target, self.huber_c)


def _heun_rows(
    denoiser: Denoiser, x: Tensor, sigma: Tensor, sigma_next: Tensor, cond: Tensor | None
) -> Tensor:
    """:func:`~caloforge.diffusion.samplers.heun_step` with one pair of levels per row (all > 0)."""
    shape = (x.shape[0], *[1] * (x.ndim - 1))
    s, s_next = sigma.reshape(shape), sigma_next.reshape(shape)
    d = (x - denoiser(x, sigma, cond)) / s
    x_next = x + (s_next - s) * d
    d_prime = (x_next - denoiser(x_next, sigma_next, cond)) / s_next
    return x + (s_next - s) * (d + d_prime) / 2


class EasyConsistencyLoss:
    """Easy consistency tuning (see the module doc); call :meth:`set_step` before each step.

    Args:
        total_steps: the run's steps; the stage grows every ``total_steps / stages``.
        stages: how often ``dt`` shrinks (ECT: 8).
        q: the factor it shrinks by per stage (ECT: 2).
        k, b: ``n(t) = 1 + k sigmoid(-b t)`` (ECT: 8, 1).
        p_mean, p_std: ``ln t ~ N(p_mean, p_std^2)`` (ECT: -1.1, 2.0).
        sigma_min: below it ``r`` is 0: the target is the clean shower.
        huber_c: the pseudo-Huber constant.
    """

    def __init__(
        self,
        total_steps: int,
        *,
        stages: int = 8,
        q: float = 2.0,
        k: float = 8.0,
        b: float = 1.0,
        p_mean: float = -1.1,
        p_std: float = 2.0,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        huber_c: float = 0.03,
    ) -> None:
        if total_steps < 1 or stages < 1 or not q > 1:
            raise ValueError("need total_steps >= 1, stages >= 1 and q > 1")
        self.total_steps, self.stages, self.q, self.k, self.b = total_steps, stages, q, k, b
        self.p_mean, self.p_std = p_mean, p_std
        self.sigma_min, self.sigma_max, self.huber_c = sigma_min, sigma_max, huber_c
        self.step = 0

    def set_step(self, step: int) -> None:
        """The optimiser step about to be taken (the stage follows from it)."""
        self.step = step

    @property
    def stage(self) -> int:
        return min(self.step * self.stages // self.total_steps, self.stages - 1)

    def noise_levels(self, normal: Tensor) -> Tensor:
        """``t``, log-normal, within [sigma_min, sigma_max]."""
        return (self.p_mean + self.p_std * normal).exp().clamp(self.sigma_min, self.sigma_max)

    def pair_level(self, t: Tensor) -> Tensor:
        """``r`` of each ``t`` at the current stage (0 where it falls below ``sigma_min``)."""
        n_t = 1 + self.k * torch.sigmoid(-self.b * t)
        r = t * (1 - n_t / self.q**self.stage)
        return torch.where(r < self.sigma_min, torch.zeros_like(r), r)

    def __call__(
        self, net: nn.Module, x: Tensor, cond: Tensor, *, sigma: Tensor, noise: Tensor
    ) -> Tensor:
        student = _unwrap(net)
        batch = x.shape[0]
        shape = (batch, *[1] * (x.ndim - 1))
        t, r = sigma, self.pair_level(sigma)
        with torch.no_grad():
            at_r = student.target(x + r.reshape(shape) * noise, r.clamp(min=self.sigma_min), cond)
            target = torch.where((r > 0).reshape(shape), at_r, x)  # r = 0: the clean shower
        weight = 1 / (t - r)
        return weight * pseudo_huber(net(x + t.reshape(shape) * noise, t, cond), target, self.huber_c)  # fmt: skip


@torch.no_grad()
def sample_consistency(
    student: Denoiser,
    x_T: Tensor,
    sigmas: Sequence[float],
    *,
    cond: Tensor | None,
    noise: Noise | None = None,
    sigma_min: float = 0.002,
) -> Tensor:
    """Multistep consistency sampling (Algorithm 1 of arXiv:2303.01469).

    ``x = f(x_T, sigmas[0])``; then for each later level ``s``: ``x = f(x + sqrt(s^2 -
    sigma_min^2) z, s)`` with fresh noise ``z``.

    Args:
        student: ``f(x, sigma, cond)``.
        x_T: initial noise times ``sigmas[0]``, shape (B, ...).
        sigmas: decreasing noise levels, one per network evaluation.
        cond: conditions (B, n_cond) or None.
        noise: per-shower noise source, needed for more than one level.
        sigma_min: the student's ``sigma_min``.

    Returns:
        The samples, shape (B, ...).
    """
    if not sigmas:
        raise ValueError("a consistency sampler needs at least one noise level")
    x = student(x_T, x_T.new_full((len(x_T),), sigmas[0]), cond)
    for level in sigmas[1:]:
        if noise is None:
            raise ValueError("a multistep consistency sampler needs a noise source")
        z = noise.randn(x.shape[1:], dtype=x.dtype).to(x.device)
        x_s = x + math.sqrt(max(level**2 - sigma_min**2, 0.0)) * z
        x = student(x_s, x.new_full((len(x),), level), cond)
    return x


__all__ = [
    "ConsistencyDistillationLoss",
    "ConsistencyPrecond",
    "ConsistencyStudent",
    "EasyConsistencyLoss",
    "pseudo_huber",
    "sample_consistency",
]
