"""A model's whole sampler as one torch module: conditions and noise in, voxel energies out.

:class:`ShowerGraph` is what ``caloforge export --onnx`` writes as an ONNX graph, and what a
C++ framework (Geant4's Par04, DD4hep's DDFastShowerML) runs per particle. It chains, in
float32 and in torch operations only, what :meth:`caloforge.fastsim.FastSimModel.generate`
does in numpy: the condition transform, the sampler of every network (the ODE sampler
unrolled, or a consistency student's one or two evaluations), the inverse transforms, the
rescaling of each layer to its energy and the read-out threshold that keeps layer energies.

Inputs (B showers; names as in the ONNX graph):

- ``energy_gev`` (B,): incident energy in GeV;
- ``theta``, ``phi`` (B,): direction in rad;
- ``detector`` (B, K + 1): the detector's one-hot row (slot order of ``model.json``; the last
  slot is the spare one);
- ``noise`` (B, D): standard normal numbers, D = :attr:`ShowerGraph.noise_size` per shower,
  the sampler's initial and fresh noise one after the other (the caller draws them, so a C++
  run is reproducible and comparable with Python).

Output ``showers`` (B, Z * A * R): voxel energies in MeV on the training files' energy scale
(raw energy in the active material, or calibrated), index ``(z * A + a) * R + r``.

The condition ranges are not checked in the graph: the caller keeps to the ranges in
``model.json``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from caloforge.data.contract import voxel_threshold
from caloforge.data.factorized import LOG_FLOOR_MEV, STD_FLOOR
from caloforge.diffusion.schedules import karras_sigmas
from caloforge.errors import SpecError
from caloforge.fastsim.families import FACTORIZED
from caloforge.fastsim.model import FastSimModel, SamplerSettings


@dataclass(frozen=True)
class Plan:
    """How one network is sampled in the graph: its noise levels, and whether by a student."""

    sigmas: tuple[float, ...]  # an ODE grid ending in 0, or the student's levels
    student: bool
    sigma_min: float = 0.002

    @property
    def noise_draws(self) -> int:
        """Standard normal draws per value: the initial noise, and one per later student level."""
        return len(self.sigmas) if self.student else 1


def _tensor(values: tuple[float, ...]) -> Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _expit(x: Tensor, alpha: float) -> Tensor:
    return ((torch.sigmoid(x) - alpha) / (1 - 2 * alpha)).clamp(0.0, 1.0)


def _logit(u: Tensor, alpha: float) -> Tensor:
    p = alpha + (1 - 2 * alpha) * u.clamp(0.0, 1.0)
    return torch.log(p) - torch.log1p(-p)


class ShowerGraph(nn.Module):
    """One sampler of a model as a module (see the module doc).

    Args:
        model: a loaded model.
        settings: the sampler (default: the model's); stochastic churn is not supported
            (its fresh noise per step would be more inputs), a student is.
    """

    l_mean: Tensor  # buffers of the factorised family's transforms
    l_std: Tensor
    c_mean: Tensor  # the energy model's code, per slot: (S, Z, K) polynomials in log E_inc
    c_log_std: Tensor  # (empty: no occupancy bits; K = 1: a global code)
    fc_mean: Tensor  # the shape model's code (empty: no occupancy channel)
    fc_std: Tensor
    fc_slope: Tensor  # its slope in log E_layer (fraction-by-layer values; empty otherwise)
    lg_mean: Tensor  # the shape model's log layer conditions (empty: logits alone)
    lg_std: Tensor
    f_mean: Tensor
    f_std: Tensor

    def __init__(self, model: FastSimModel, settings: SamplerSettings | None = None) -> None:
        super().__init__()
        settings = settings or SamplerSettings()
        sampler, steps = settings.resolve(model)
        record, diffusion = model.record, model.record.diffusion
        student = record.students.get(sampler)
        # the networks without a student keep the model's ODE sampler
        ode, ode_steps = (diffusion.sampler, diffusion.steps) if student else (sampler, steps)
        churn = {**diffusion.churn, **(settings.churn if student is None else {})}
        if ode == "heun-stochastic" and churn["S_churn"] > 0:
            raise SpecError("a graph samples deterministically: no S_churn", subject="sampler")
        self.ode = "euler" if ode == "euler" else "heun"
        grid = karras_sigmas(ode_steps, diffusion.sigma_min, diffusion.sigma_max, diffusion.rho)
        self.family = record.family
        self.mesh = tuple(model.preprocessing.mesh_shape)
        pre = model.preprocessing
        self.plans: dict[str, Plan] = {}
        nets: dict[str, nn.Module] = {}
        for part in model.networks:
            if student is not None and part == student.part:
                self.plans[part] = Plan(tuple(student.sigmas[:steps]), True, student.sigma_min)
                nets[part] = model.students[sampler]
            else:
                self.plans[part] = Plan(tuple(grid.tolist()), False)
                nets[part] = model.networks[part]
        self.nets = nn.ModuleDict(nets)
        self.sampler, self.steps = sampler, steps
        lo, hi = (math.log(v) for v in pre.conditions.energy_range_mev)
        self.log_e = (lo, hi)
        self.theta_range = pre.conditions.theta_range
        self.n_slots = pre.conditions.n_slots
        self.threshold = float(voxel_threshold(record.calibrated)[0])
        self.clamp: tuple[float, float] | None = None
        if pre.shower is not None:
            self.shower_t = pre.shower
            if pre.shower.max_value is not None:
                self.clamp = (pre.shower.zero_level, pre.shower.max_value)
        if pre.layers is not None and pre.fractions is not None:
            self.layers_t, self.fractions_t = pre.layers, pre.fractions
            self.register_buffer("l_mean", _tensor(pre.layers.mean))
            self.register_buffer("l_std", _tensor(pre.layers.std))
            if pre.layers.occupancy:
                means, log_stds = pre.layers.code_coefficients(self.n_slots)
                self.register_buffer("c_mean", torch.from_numpy(means).float())
                self.register_buffer("c_log_std", torch.from_numpy(log_stds).float())
            else:
                self.register_buffer("c_mean", _tensor(()))
                self.register_buffer("c_log_std", _tensor(()))
            self.register_buffer("lg_mean", _tensor(pre.layers.log_mean))
            self.register_buffer("lg_std", _tensor(pre.layers.log_std))
            self.register_buffer("f_mean", _tensor(pre.fractions.mean))
            self.register_buffer("f_std", _tensor(pre.fractions.std))
            self.register_buffer("fc_mean", _tensor(pre.fractions.code_mean))
            self.register_buffer("fc_std", _tensor(pre.fractions.code_std))
            self.register_buffer("fc_slope", _tensor(pre.fractions.code_slope))

    # ------------------------------------------------------------------------------------
    @property
    def noise_sizes(self) -> dict[str, int]:
        """Standard normal numbers per shower drawn for each network, in graph order."""
        z, a, r = self.mesh
        out = {}
        for part, plan in self.plans.items():
            if self.family == FACTORIZED:
                values = self.layers_t.width if part == "energy" else z * a * r * self.fractions_t.channels  # fmt: skip
            else:
                values = z * a * r
            out[part] = values * plan.noise_draws
        return out

    @property
    def noise_size(self) -> int:
        """D: the standard normal numbers per shower (the ``noise`` input's width)."""
        return sum(self.noise_sizes.values())

    def conditions(self, energy_gev: Tensor, theta: Tensor, phi: Tensor, detector: Tensor) -> Tensor:  # fmt: skip
        """The condition rows, as :class:`~caloforge.data.transforms.ConditionTransform`."""
        lo, hi = self.log_e
        t_lo, t_hi = self.theta_range
        e = (torch.log(energy_gev * 1e3) - lo) / (hi - lo) if hi > lo else energy_gev * 0
        t = (theta - t_lo) / (t_hi - t_lo) if t_hi > t_lo else theta * 0
        return torch.cat([torch.stack([e, t, torch.sin(phi), torch.cos(phi)], 1), detector], 1)

    def _sample(self, part: str, z: Tensor, cond: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Run ``part``'s sampler from its noise ``z`` (B, draws * values)."""
        plan, net = self.plans[part], self.nets[part]
        b = z.shape[0]
        draws = z.reshape(b, plan.noise_draws, -1)

        def denoise(x: Tensor, sigma: float) -> Tensor:
            out = net(x, x.new_full((b,), sigma), cond)
            if self.clamp is not None and self.family != FACTORIZED:
                out = out.clamp(*self.clamp)
            return out

        if plan.student:
            x = denoise(draws[:, 0].reshape(b, *shape) * plan.sigmas[0], plan.sigmas[0])
            for i, level in enumerate(plan.sigmas[1:], start=1):
                scale = math.sqrt(max(level**2 - plan.sigma_min**2, 0.0))
                x = denoise(x + scale * draws[:, i].reshape(b, *shape), level)
            return x
        sigmas = plan.sigmas
        x = draws[:, 0].reshape(b, *shape) * sigmas[0]
        for s, s_next in itertools.pairwise(sigmas):
            d = (x - denoise(x, s)) / s
            x_next = x + (s_next - s) * d
            if self.ode == "heun" and s_next > 0:
                d2 = (x_next - denoise(x_next, s_next)) / s_next
                x_next = x + (s_next - s) * (d + d2) / 2
            x = x_next
        return x

    def forward(self, energy_gev: Tensor, theta: Tensor, phi: Tensor, detector: Tensor, noise: Tensor) -> Tensor:  # fmt: skip
        cond = self.conditions(energy_gev, theta, phi, detector)
        sizes = list(self.noise_sizes.values())
        parts = dict(zip(self.noise_sizes, torch.split(noise, sizes, dim=1), strict=True))
        energies = energy_gev * 1e3  # MeV
        if self.family == FACTORIZED:
            return self._factorized(parts, cond, energies, detector)
        x = self._sample("shower", parts["shower"], cond, (1, *self.mesh))
        t = self.shower_t
        y = x.reshape(x.shape[0], -1) * t.std + t.mean
        showers = (torch.exp(y.clamp(max=1.0)) - t.eps).clamp(0.0, 1.0) * energies[:, None]
        return torch.where(showers < self.threshold, torch.zeros_like(showers), showers)

    # ------------------------------------------------------------------------------------
    def _code_stats(self, energies: Tensor, detector: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`LayerTransform._code_stats`: per shower the code's mean and spread (B, Z)."""
        k = self.c_mean.shape[2]
        if self.layers_t.conditional:
            lo, hi = self.layers_t.code_range
            t = ((2 * torch.log(energies) - lo - hi) / (hi - lo)).clamp(-1.0, 1.0)
        else:
            t = torch.zeros_like(energies)
        powers = torch.stack([t**j for j in range(k - 1, -1, -1)], 1)  # (B, K)
        mean = torch.einsum("bs,szk,bk->bz", detector, self.c_mean, powers)
        log_std = torch.einsum("bs,szk,bk->bz", detector, self.c_log_std, powers)
        return mean, torch.exp(log_std).clamp(min=STD_FLOOR)

    def _layers(self, x: Tensor, energies: Tensor, detector: Tensor) -> Tensor:
        """:meth:`LayerTransform.decode`: the energy model's code (B, Z or 2 Z) -> layer
        energies (B, Z)."""
        z = self.mesh[0]
        index = torch.arange(z, device=x.device)
        if self.layers_t.occupancy:
            mean, std = self._code_stats(energies, detector)
            u = _expit(x[:, :z] * std + mean, self.layers_t.alpha)
            bits = x[:, z:]
            occupied = (bits > 0) | (_one_hot_max(bits[:, None])[:, 0] & ~(bits > 0).any(1, keepdim=True))  # fmt: skip
        else:  # every layer takes its share
            u = _expit(x * self.l_std + self.l_mean, self.layers_t.alpha)
            occupied = torch.ones_like(u, dtype=torch.bool)
        last = torch.where(occupied, index, torch.full_like(index, -1)).amax(1)  # (B,)
        left = u[:, 0] * self.layers_t.total_scale * energies
        out = []
        for i in range(z):
            share = torch.ones_like(left) if i == z - 1 else torch.where(last == i, 1.0, u[:, i + 1])  # fmt: skip
            e_i = torch.where(occupied[:, i], share * left, torch.zeros_like(left))
            out.append(e_i)
            left = left - e_i
        return torch.stack(out, 1).clamp(min=0.0)

    def _layer_conditions(self, layers: Tensor, energies: Tensor) -> Tensor:
        """:meth:`LayerTransform.conditions`: layer energies (B, Z) -> standardised logits, then
        (if the model has them) standardised logs."""
        total = layers.sum(1)
        left = torch.flip(torch.cumsum(torch.flip(layers, [1]), 1), [1])
        ratio = torch.where(left[:, :-1] > 0, layers[:, :-1] / left[:, :-1].clamp(min=1e-30), 0.0)
        u = torch.cat([(total / (self.layers_t.scale * energies))[:, None], ratio], 1)
        x = (_logit(u, self.layers_t.alpha) - self.l_mean) / self.l_std
        if not self.layers_t.log_mean:
            return x
        y = (torch.log(layers.clamp(min=0.0) + LOG_FLOOR_MEV) - self.lg_mean) / self.lg_std
        return torch.cat([x, y], 1)

    def _factorized(self, parts: dict[str, Tensor], cond: Tensor, energies: Tensor, detector: Tensor) -> Tensor:  # fmt: skip
        z, a, r = self.mesh
        b = cond.shape[0]
        code = (self.layers_t.width,)
        layers = self._layers(self._sample("energy", parts["energy"], cond, code), energies, detector)  # fmt: skip
        shape_cond = torch.cat([cond, self._layer_conditions(layers, energies)], 1)
        channels = self.fractions_t.channels
        x = self._sample("shape", parts["shape"], shape_cond, (channels, *self.mesh)).reshape(b, -1)  # fmt: skip
        if channels == 1:
            logits = x * self.f_std + self.f_mean
            f = _expit(logits, self.fractions_t.alpha).reshape(b, z, a * r)
            best = _one_hot_max(logits.reshape(b, z, a * r))
        else:  # :meth:`FractionTransform.decode`: the occupied voxels' fractions
            v = z * a * r
            values = (x[:, :v] * self.fc_std + self.fc_mean).reshape(b, z, a * r)
            if self.fractions_t.code_slope:  # fraction-by-layer: about a line in log E_layer
                ell = torch.log(layers.clamp(min=0.0) + LOG_FLOOR_MEV)[..., None]
                values = values + self.fc_slope.reshape(z, a * r) * ell
            bits = x[:, v:].reshape(b, z, a * r)
            if self.fractions_t.values != "log-energy":
                f = torch.where(bits > 0, _expit(values, self.fractions_t.alpha), 0.0)
            else:  # log energies: shares of the largest energy drawn in the layer
                values = torch.where(bits > 0, values, torch.full_like(values, -torch.inf))
                top = values.amax(2, keepdim=True)
                top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
                f = torch.where(bits > 0, torch.exp(values - top), 0.0)
            best = _one_hot_max(bits)
        dead = (f.sum(2, keepdim=True) <= 0) & (layers[..., None] > 0)
        f = torch.where(dead & best, torch.ones_like(f), f)
        sums = f.sum(2, keepdim=True)
        f = torch.where(sums > 0, f / sums.clamp(min=1e-30), torch.zeros_like(f))
        return _conserve_threshold(f * layers[..., None], self.threshold).reshape(b, -1)


def _one_hot_max(x: Tensor) -> Tensor:
    """(B, Z, V) -> True at each row's first largest value."""
    return torch.arange(x.shape[2], device=x.device) == x.argmax(2, keepdim=True)


def _conserve_threshold(x: Tensor, threshold: float) -> Tensor:
    """:func:`caloforge.data.factorized.conserve_threshold` on (B, Z, V) layer-major voxels."""
    x = x.clamp(min=0.0)
    layers = x.sum(2, keepdim=True)
    kept = torch.where(x >= threshold, x, torch.zeros_like(x))
    survivors = kept.sum(2, keepdim=True)
    none = (survivors <= 0) & (layers >= threshold)
    kept = torch.where(none & _one_hot_max(x), layers.expand_as(x), kept)
    survivors = kept.sum(2, keepdim=True)
    factor = torch.where(survivors > 0, layers / survivors.clamp(min=1e-30), torch.zeros_like(layers))  # fmt: skip
    return kept * factor
