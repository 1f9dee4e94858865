"""Consistency students: the boundary condition, the two losses, the few-step sampler."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from caloforge.diffusion.consistency import (
    ConsistencyDistillationLoss,
    ConsistencyPrecond,
    ConsistencyStudent,
    EasyConsistencyLoss,
    pseudo_huber,
    sample_consistency,
)
from caloforge.diffusion.precond import EDMPrecond
from caloforge.diffusion.samplers import ShowerNoise, heun_step


class Linear(nn.Module):
    """A backbone ``F(x, c_noise, cond) = w * x + b`` (shapes kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.3))
        self.b = nn.Parameter(torch.tensor(0.1))

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor | None) -> Tensor:
        del c_noise, cond
        return self.w * x + self.b


def test_the_student_is_the_identity_at_sigma_min_and_the_teacher_far_above() -> None:
    teacher = EDMPrecond(Linear(), sigma_data=0.7)
    student = ConsistencyPrecond.from_teacher(teacher, sigma_min=0.002)
    x = torch.randn(5, 3)
    torch.testing.assert_close(student(x, 0.002, None), x)
    # far above sigma_min the boundary-condition scalings are EDM's
    for sigma in (5.0, 80.0):
        torch.testing.assert_close(student(x, sigma, None), teacher(x, sigma, None), rtol=2e-3, atol=2e-3)  # fmt: skip
    assert student.backbone is not teacher.backbone  # a copy: training it leaves the teacher


def test_the_target_follows_the_online_network_by_its_decay() -> None:
    online = ConsistencyPrecond(Linear(), sigma_data=1.0, sigma_min=0.002)
    student = ConsistencyStudent(online, target_decay=0.9)
    assert not any(p.requires_grad for p in student.target.parameters())
    with torch.no_grad():
        online.backbone.w.fill_(1.3)
    student.update_target()
    assert student.target.backbone.w.item() == pytest.approx(0.9 * 0.3 + 0.1 * 1.3)
    frozen = ConsistencyStudent(online, target_decay=0.0)
    with torch.no_grad():
        online.backbone.w.fill_(2.0)
    frozen.update_target()
    assert frozen.target.backbone.w.item() == pytest.approx(2.0)


def test_pseudo_huber_is_quadratic_near_zero_and_linear_far_away() -> None:
    a = torch.zeros(2, 4)
    small, large = torch.full((2, 4), 1e-4), torch.full((2, 4), 10.0)
    c = 0.01
    assert pseudo_huber(small, a, c)[0].item() == pytest.approx(1e-8 / (2 * c), rel=1e-3)
    assert pseudo_huber(large, a, c)[0].item() == pytest.approx(10.0 - c, rel=1e-3)
    assert pseudo_huber(a, a, c).abs().max().item() == 0.0


def _student_and_teacher() -> tuple[ConsistencyStudent, EDMPrecond]:
    teacher = EDMPrecond(Linear(), sigma_data=1.0)
    return ConsistencyStudent(ConsistencyPrecond.from_teacher(teacher, 0.002), 0.95), teacher


def test_cd_pairs_adjacent_levels_of_its_grid_through_one_teacher_heun_step() -> None:
    student, teacher = _student_and_teacher()
    loss = ConsistencyDistillationLoss(teacher, n_levels=6)
    levels = loss.levels
    assert torch.all(levels[1:] > levels[:-1])
    assert levels[0].item() == pytest.approx(0.002)
    assert levels[-1].item() == pytest.approx(80.0)
    normal = torch.linspace(-4, 4, 101)
    sigma = loss.noise_levels(normal)
    assert set(sigma.tolist()) == set(levels[1:].tolist())  # every sigma_{n+1}, never sigma_0

    x, noise = torch.randn(3, 4), torch.randn(3, 4)
    sigma = levels[[1, 3, 5]]
    value = loss(student, x, torch.zeros(3, 0), sigma=sigma, noise=noise)
    # by hand: the teacher's Heun step one level down, then the target there
    expected = []
    for i, n in enumerate([1, 3, 5]):
        x_next = x[i : i + 1] + levels[n] * noise[i : i + 1]
        x_prev = heun_step(teacher, x_next, levels[n], levels[n - 1], None)
        target = student.target(x_prev, levels[n - 1], None)
        expected.append(pseudo_huber(student(x_next, levels[n], None), target, loss.huber_c))
    torch.testing.assert_close(value, torch.cat(expected))


def test_a_student_equal_to_an_exact_teacher_has_no_cd_loss() -> None:
    """Data that is one point y: the exact denoiser is ``D(x) = y`` at every level, and the
    consistency function ``f(x, sigma) = y`` too. A student that is exactly it has zero loss."""
    y = torch.tensor([[0.5, -0.2]])

    class Exact(nn.Module):
        def forward(self, x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
            del sigma, cond
            return y.expand_as(x)

    exact = Exact()

    class Wrapped(ConsistencyStudent):
        def forward(self, x: Tensor, sigma: float | Tensor, cond: Tensor | None) -> Tensor:
            return exact(x, sigma, cond)  # type: ignore[arg-type]

    student = Wrapped(ConsistencyPrecond(Linear(), sigma_data=1.0, sigma_min=0.002), 0.0)
    student.target = exact  # type: ignore[assignment]
    loss = ConsistencyDistillationLoss(exact, n_levels=10, huber_c=0.0)
    sigma = loss.noise_levels(torch.randn(4))
    value = loss(student, y.expand(4, 2), torch.zeros(4, 0), sigma=sigma, noise=torch.randn(4, 2))
    assert value.abs().max().item() < 1e-6


def test_ect_starts_as_denoising_and_tightens_dt_by_q_per_stage() -> None:
    loss = EasyConsistencyLoss(800, stages=8, q=2.0)
    t = torch.tensor([0.5, 2.0, 20.0])
    loss.set_step(0)
    assert torch.all(loss.pair_level(t) == 0)  # r clipped to 0: the target is the data
    gaps = []
    for stage in (3, 4, 5):
        loss.set_step(stage * 100)
        assert loss.stage == stage
        r = loss.pair_level(t)
        assert torch.all(r > 0)
        assert torch.all(r < t)
        gaps.append(t - r)
    torch.testing.assert_close(gaps[0] / gaps[1], torch.full((3,), 2.0))
    torch.testing.assert_close(gaps[1] / gaps[2], torch.full((3,), 2.0))
    loss.set_step(10_000)  # past the end: the last stage
    assert loss.stage == 7


def test_ect_at_stage_zero_is_a_denoising_loss_towards_the_clean_data() -> None:
    student, _ = _student_and_teacher()
    loss = EasyConsistencyLoss(100, huber_c=0.0)
    loss.set_step(0)
    x, noise = torch.randn(3, 4), torch.randn(3, 4)
    t = torch.tensor([0.3, 1.0, 7.0])
    value = loss(student, x, torch.zeros(3, 0), sigma=t, noise=noise)
    by_hand = (student(x + t[:, None] * noise, t, None) - x).square().mean(dim=1).sqrt() / t
    torch.testing.assert_close(value, by_hand)


def test_the_losses_train_a_student_through_backward() -> None:
    student, teacher = _student_and_teacher()
    for loss in (ConsistencyDistillationLoss(teacher), EasyConsistencyLoss(10)):
        sigma = loss.noise_levels(torch.randn(8))
        value = loss(student, torch.randn(8, 4), torch.zeros(8, 0), sigma=sigma, noise=torch.randn(8, 4))  # fmt: skip
        value.mean().backward()
        assert student.online.backbone.w.grad is not None
        assert student.target.backbone.w.grad is None
        student.zero_grad()


def test_multistep_sampling_adds_fresh_noise_of_each_showers_own_stream() -> None:
    student = ConsistencyPrecond(Linear(), sigma_data=1.0, sigma_min=0.002)
    seeds = [11, 12, 13]
    z = ShowerNoise(seeds).randn((4,))
    one = sample_consistency(student, z * 80.0, [80.0], cond=None)
    torch.testing.assert_close(one, student(z * 80.0, 80.0, None))
    noise = ShowerNoise(seeds)
    x_T = noise.randn((4,)) * 80.0
    two = sample_consistency(student, x_T, [80.0, 0.8], cond=None, noise=noise)
    again = ShowerNoise(seeds[1:])
    x_T1 = again.randn((4,)) * 80.0
    alone = sample_consistency(student, x_T1, [80.0, 0.8], cond=None, noise=again)
    torch.testing.assert_close(two[1:], alone)  # a shower does not depend on its batch
    # by hand for the first shower
    own = ShowerNoise(seeds[:1])
    x0 = student(own.randn((4,)) * 80.0, 80.0, None)
    x1 = x0 + math.sqrt(0.8**2 - 0.002**2) * own.randn((4,))
    torch.testing.assert_close(two[:1], student(x1, 0.8, None))
    with pytest.raises(ValueError, match="noise source"):
        sample_consistency(student, x_T, [80.0, 0.8], cond=None)
