"""Energy apart from shape: layer energies and within-layer fractions, and their transforms.

The factorised models (CaloFlow, CaloDREAM, CaloDiffusion 2.0) generate a shower in two steps:
a small model draws the energy of each layer, a voxel model draws how each layer's energy is
shared among its voxels, and every generated layer is rescaled to its generated energy. Layer
and total energies are then exactly the energy model's, whatever the voxel model does.

Layer energies (Z layers, ``E_i`` in MeV, ``E_inc`` the incident energy)::

    u_0     = sum_i E_i / (scale * E_inc)              # total response, in (0, 1)
    u_{i+1} = E_i / sum_{j >= i} E_j,  i < Z - 1       # CaloFlow's fractions of what is left
    x       = (logit(alpha + (1 - 2 alpha) u) - mean) / std     # per dimension

The energy model does not learn these Z logits directly: an empty layer (``u = 0``, the
logit ``logit(alpha)``, e.g. half the showers' first layer in par04-siw) and the last layer
that holds energy (``u = 1``) are point masses beside a continuum, and a diffusion model smears
them into the gap (layer energies of a few keV where Geant4 has 0 or a MIP's ~100 keV). Its
code (:meth:`LayerTransform.encode`, 2 Z values) splits each layer into an occupancy bit
(+1 holds energy, -1 empty: the sign decides, far from both) and the logit of its ``u``,
standardised over the showers where it is defined; where it is not (empty layer, last
occupied layer: it takes all that is left), the decoder ignores it, and the training code
holds the value of that dimension in a shower of nearly the same incident energy (and the same
detector) where it is defined. The value is then distributed alike whatever the bit: a filler
of another distribution (e.g. a standard normal draw, the global spread) makes a mixture that
the network, which draws bit and value jointly, smears into the occupied values (measured: the
occupied first layer's code 1.5 times Geant4's spread, its 99th percentile 3 times Geant4's
energy). The total ``u_0`` is always defined, so decoded layer energies sum to it exactly.

The code's values are standardised either globally (one mean and spread per dimension) or, in
models fitted with ``conditional`` codes, per detector slot and incident energy: mean and log
spread of each dimension are quadratics in ``log E_inc`` fitted to their values in
:data:`CODE_BINS` energy bins. A global code makes the network resolve what matters at the
scale of the whole training set: the response ``u_0`` of two sampling calorimeters (sampling
fractions 3 % and 17 %) lies in two narrow peaks far apart, and at 10-100 GeV its spread in
one detector is ~1/40 of the global one, so a small denoising error widens the generated
resolution (measured: +29 % at 10-100 GeV). Standardised per detector and energy, every value
has about unit spread wherever the network draws it. A slot without fitted statistics (the
spare one) uses the global ones.

Within-layer fractions (``f_v = E_v / E_layer(v)``, 0 in an empty layer)::

    y = (logit(alpha + (1 - 2 alpha) f) - mean_v) / std_v       # per voxel

Most voxels are empty (``f = 0``: beyond the third radial bin, fewer than 1 in 10 holds a
hit), the same point mass beside a continuum: a diffusion model smears it into many tiny hits
and too little energy in the outer bins. The shape model's code (:meth:`FractionTransform.encode`)
has two channels per voxel, as the energy model's: the standardised logit of ``f`` where the
voxel holds energy (elsewhere ignored, and in training the value of that voxel in a shower of
nearly the same energy where it holds energy), and its occupancy bit.

The value of an occupied voxel is, by default, the logit of its fraction ``f``. With
``values="log-energy"`` it is instead the standardised ``log(E_v / MeV)`` of its energy, and
:meth:`FractionTransform.decode` shares each layer's energy in proportion to the ``E_v`` drawn:
the result is as bounded (no voxel above its layer), but a hit's value no longer depends on its
layer's energy. In Geant4 it hardly does: beyond the first radial bins of par04-siw, the
10/50/90 % quantiles of the hit energies are 0.06/0.23/0.75 MeV in layers of 1 MeV and of 1 GeV
alike, a fraction spanning three decades that a fraction model must learn as ``1 / E_i``.

With ``values="fraction-by-layer"`` the value is the logit of the fraction again, standardised
about a line in the log of its layer's energy: ``(logit f - a_v - b_zr log(E_i / MeV)) / s_zr``,
the intercept ``a_v`` per voxel, the slope and the spread per layer and radial bin (pooled over
phi), all fitted where the voxel holds energy. In the core a voxel's fraction hardly depends on
its layer's energy (``b ~ 0``); in the halo it goes as ``1 / E_i`` (``b ~ -1``), and a global
standardisation spreads it over the three decades of layer energies, so that the intrinsic
spread of a hit's energy is a small part of the unit spread the network resolves. Decoding
needs only the layer energies, which the energy model draws first; the fractions stay bounded.

The shape model is conditioned on the layers twice (:meth:`LayerTransform.conditions`): the
Z logits above, and the standardised ``log(E_i / MeV + LOG_FLOOR_MEV)``. A hit in an outer
voxel is one particle's deposit, of an energy that hardly depends on its layer's (in
par04-siw, beyond the first radial bins, the spread of ``log f`` at a given ``log E_i`` is that
of ``log E_v`` itself, ~1.1); its fraction ``f = E_v / E_i`` thus needs ``log E_i``, which the
logits give only as a product over every earlier layer.

Both transforms are bounded: a fraction never leaves [0, 1], so a denoising error cannot become
a voxel holding more than its layer (an unbounded ``log(E)`` turns small errors into large
energies). Showers are thresholded before the fit, so the layer energies the energy model
learns are those the evaluation sees; :func:`conserve_threshold` applies the threshold to
generated showers without losing layer energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from caloforge.config import VOXEL_VALUES
from caloforge.errors import SpecError

ALPHA = 1e-6

"""The logit's margin (CaloDREAM's, CaloDiffusion's)."""
STD_FLOOR = 1e-3
"""Smallest standard deviation of a transformed dimension (a voxel that is always empty)."""
PRIOR_COUNT = 20
"""Pseudo-values of the pooled statistics in the occupancy codes' per-dimension statistics."""
DONORS = 32
"""Showers of nearest incident energy among which an undefined code value borrows a defined one."""
CODE_DEGREE = 2
"""Degree in log(E_inc) of the conditional standardisation of the energy model's code."""
CODE_BINS = 16
"""Incident-energy bins (quantiles, per detector) whose statistics the code's polynomials fit."""
CODE_SCALE = 1.5
"""Least ``scale`` of a conditional code's total ``u_0``: 1.5 times the largest response of any
raw (uncalibrated) calorimeter, whose deposits never exceed the incident energy, so that a
homogeneous detector adapted to later (response ~1) fits the code of sampling ones (~0.02-0.2)."""
LOG_FLOOR_MEV = 1e-4
"""Added to a layer energy before its log (the shape model's conditions): an empty layer sits
~2 units below one holding a single voxel at the 0.5 keV raw read-out threshold."""


def _borrow(
    x: np.ndarray,
    defined: np.ndarray,
    energies: np.ndarray,
    groups: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """``x`` (N, D) with each undefined value replaced by that dimension's value in a row of
    the same group where it is defined, drawn among the :data:`DONORS` nearest in energy (a
    standard normal draw where no row of the group has it)."""
    out = x.copy()
    labels = np.zeros(len(x), np.int64) if groups is None else np.asarray(groups)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rows = rows[np.argsort(energies[rows], kind="stable")]  # by incident energy
        for d in np.flatnonzero(~defined[rows].all(axis=0)):
            have, need = rows[defined[rows, d]], rows[~defined[rows, d]]
            if len(have) == 0:
                out[need, d] = rng.standard_normal(len(need))
                continue
            at = np.searchsorted(energies[have], energies[need])
            pick = np.clip(at + rng.integers(-DONORS // 2, DONORS // 2, len(need)), 0, len(have) - 1)  # fmt: skip
            out[need, d] = x[have[pick], d]
    return out


def _logit(u: np.ndarray, alpha: float) -> np.ndarray:
    p = alpha + (1 - 2 * alpha) * np.clip(u, 0.0, 1.0)
    return np.log(p) - np.log1p(-p)


def _log_energy(showers: np.ndarray) -> np.ndarray:
    """Voxel energies (N, V) in MeV -> log(E / MeV), 0 where a voxel is empty (float64)."""
    x = np.asarray(showers, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), 0.0)


def _log_layers(layers: np.ndarray) -> np.ndarray:
    """Layer energies (N, Z) in MeV -> log(E_i / MeV + LOG_FLOOR_MEV) (float64)."""
    return np.log(np.clip(np.asarray(layers, dtype=np.float64), 0.0, None) + LOG_FLOOR_MEV)


def _layer_logs(showers: np.ndarray, mesh_shape: tuple[int, int, int]) -> np.ndarray:
    """Voxel energies (N, V) -> (N, V): the log of each voxel's layer energy (:func:`_log_layers`)."""
    ell = _log_layers(layer_energies(showers, mesh_shape))
    return np.repeat(ell, showers.shape[1] // mesh_shape[0], axis=1)


def _expit(x: np.ndarray, alpha: float) -> np.ndarray:
    p = 0.5 * (1.0 + np.tanh(0.5 * x))  # the logistic function, without overflow
    return np.clip((p - alpha) / (1 - 2 * alpha), 0.0, 1.0)


def _shrunk_stats(
    total: np.ndarray, total_sq: np.ndarray, count: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-dimension mean and std of values seen ``count`` times (sums ``total``,
    ``total_sq``), each shrunk towards the pooled ones by :data:`PRIOR_COUNT` pseudo-values: a
    voxel that held energy in 3 training showers gets about the pooled spread, not the spread of
    3 values (which standardises a fourth value to thousands)."""
    n = max(float(count.sum()), 1.0)
    pooled_mean = float(total.sum()) / n
    pooled_second = float(total_sq.sum()) / n
    mean = (total + PRIOR_COUNT * pooled_mean) / (count + PRIOR_COUNT)
    second = (total_sq + PRIOR_COUNT * pooled_second) / (count + PRIOR_COUNT)
    std = np.maximum(np.sqrt(np.maximum(second - mean**2, 0.0)), STD_FLOOR)
    return tuple(mean.tolist()), tuple(std.tolist())


def layer_energies(showers: np.ndarray, mesh_shape: tuple[int, int, int]) -> np.ndarray:
    """Energy of each z layer: showers (N, Z * A * R) -> (N, Z), float64."""
    z = mesh_shape[0]
    return showers.reshape(len(showers), z, -1).sum(axis=2, dtype=np.float64)


@dataclass(frozen=True)
class LayerTransform:
    """Layer energies <-> Z standardised logits (:meth:`forward`, the shape model's layer
    conditions) and <-> the energy model's code (:meth:`encode`; see the module doc).

    Attributes:
        scale: ``u_0 = E_tot / (scale * E_inc)``: 1.5 times the largest training response.
        mean, std: per dimension (Z values each) of the logits.
        alpha: the logit's margin.
        code_mean, code_std: per dimension (Z values each) of the logits where they are
            defined, for the occupancy code; empty: the code is :meth:`forward` itself (models
            trained before the code existed).
        log_mean, log_std: per layer (Z values each) of ``log(E_i / MeV + LOG_FLOOR_MEV)``, the
            shape model's second set of layer conditions (:meth:`conditions`); empty: the
            logits alone (models trained before them).
        code_range: ``log(E_inc / MeV)`` at the ends of the training range, mapped to -1 and 1
            in the code's polynomials; empty: a global code.
        code_fit: per detector slot, the code's mean and log spread per dimension as
            polynomials in the mapped ``log E_inc`` (``[slot][0 mean | 1 log std][dim]``,
            :data:`CODE_DEGREE` + 1 coefficients, highest power first); empty: a global code.
        code_scale: the energy model's code's ``u_0 = E_tot / (code_scale * E_inc)``, at least
            :data:`CODE_SCALE` (a conditional code); 0: ``scale``.
    """

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    alpha: float = ALPHA
    code_mean: tuple[float, ...] = ()
    code_std: tuple[float, ...] = ()
    log_mean: tuple[float, ...] = ()
    log_std: tuple[float, ...] = ()
    code_range: tuple[float, ...] = ()
    code_fit: tuple[tuple[tuple[tuple[float, ...], ...], ...], ...] = ()
    code_scale: float = 0.0

    @property
    def total_scale(self) -> float:
        """The ``scale`` of the energy model's code's total ``u_0``."""
        return self.code_scale or self.scale

    @property
    def occupancy(self) -> bool:
        """Whether the energy model's code has occupancy bits (2 Z values, else Z)."""
        return bool(self.code_mean)

    @property
    def conditional(self) -> bool:
        """Whether the energy model's code is standardised per detector slot and energy."""
        return bool(self.code_fit)

    @property
    def width(self) -> int:
        """Values per shower of the energy model's code."""
        return len(self.mean) * (2 if self.occupancy else 1)

    @property
    def cond_width(self) -> int:
        """Values per shower of :meth:`conditions`: Z logits, and with the logs Z more."""
        return len(self.mean) * (2 if self.log_mean else 1)

    @staticmethod
    def defined(layers: np.ndarray) -> np.ndarray:
        """(N, Z) bool: where the logit of ``u`` carries information: ``u_0`` always, ``u_{i+1}``
        where layer ``i`` holds energy and a later layer does too."""
        occupied = layers > 0
        later = np.flip(np.cumsum(np.flip(occupied, 1), 1), 1) > 1  # (N, Z): a later one holds
        out = np.ones_like(occupied)
        out[:, 1:] = (occupied & later)[:, :-1]
        return out

    @staticmethod
    def fractions(layers: np.ndarray, energies: np.ndarray, scale: float) -> np.ndarray:
        """(N, Z) layer energies -> (N, Z) values in [0, 1]: u_0 and the Z - 1 fractions."""
        total = layers.sum(axis=1)  # (N,)
        left = np.cumsum(layers[:, ::-1], axis=1)[:, ::-1]  # (N, Z): sum_{j >= i} E_j
        u = np.zeros_like(layers, dtype=np.float64)
        u[:, 0] = total / (scale * energies)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(left[:, :-1] > 0, layers[:, :-1] / left[:, :-1], 0.0)
        u[:, 1:] = ratio
        return np.clip(u, 0.0, 1.0)

    @classmethod
    def fit(
        cls,
        layers: np.ndarray,
        energies: np.ndarray,
        alpha: float = ALPHA,
        occupancy: bool = True,
        logs: bool = True,
        groups: np.ndarray | None = None,
        conditional: bool = False,
    ) -> LayerTransform:
        """Fit on training layer energies (N, Z) and incident energies (N,); ``occupancy``:
        the energy model's code has occupancy bits; ``logs``: the shape model also sees the
        standardised log layer energies; ``conditional``: the code is standardised per
        detector slot (``groups``, (N,) slot of each shower; None: one) and energy (see the
        module doc and :meth:`with_conditional_code`)."""
        response = layers.sum(axis=1) / energies
        if not np.isfinite(response).all() or response.max(initial=0.0) <= 0:
            raise SpecError("cannot fit the layer transform: the showers hold no energy")
        scale = 1.5 * float(response.max())
        x = _logit(cls.fractions(layers, energies, scale), alpha)  # (N, Z)
        std = np.maximum(x.std(axis=0), STD_FLOOR)
        code: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
        if occupancy:
            held = np.where(cls.defined(layers), x, np.nan)
            code = _shrunk_stats(np.nansum(held, 0), np.nansum(held**2, 0), np.isfinite(held).sum(0))  # fmt: skip
        log: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
        if logs:
            y = _log_layers(layers)
            log = (tuple(y.mean(axis=0).tolist()), tuple(np.maximum(y.std(axis=0), STD_FLOOR).tolist()))  # fmt: skip
        out = cls(scale, tuple(x.mean(axis=0).tolist()), tuple(std.tolist()), alpha, *code, *log)
        return out.with_conditional_code(layers, energies, groups) if conditional else out

    def with_conditional_code(
        self, layers: np.ndarray, energies: np.ndarray, groups: np.ndarray | None = None
    ) -> LayerTransform:
        """This transform with the energy model's code standardised per detector slot and
        energy, fitted on training layer energies (N, Z), incident energies (N,) and slots
        (``groups``, (N,); None: one). Everything else (the shape model's conditions) is
        unchanged, so a trained shape model keeps working with it. In each slot and each of
        :data:`CODE_BINS` quantile bins of ``log E_inc``, the mean and spread of every
        dimension's defined values are measured, and quadratics are fitted to the means and
        log spreads, weighted by the square root of the bins' counts (a bin holding fewer than
        :data:`PRIOR_COUNT` values is left out; a dimension defined in too few bins gets the
        slot's own mean and spread). The code's total ``u_0`` is taken on the scale
        ``max(scale, CODE_SCALE)``."""
        if not self.occupancy:
            raise SpecError("a conditional code needs occupancy bits (models fitted with them)")
        log_e = np.log(np.asarray(energies, dtype=np.float64))
        lo, hi = float(log_e.min()), float(log_e.max())
        scale = max(self.scale, CODE_SCALE)
        x = _logit(self.fractions(layers, energies, scale), self.alpha)
        held = np.where(self.defined(layers), x, np.nan)  # the global statistics on that scale
        code = _shrunk_stats(np.nansum(held, 0), np.nansum(held**2, 0), np.isfinite(held).sum(0))  # fmt: skip
        base = replace(self, code_mean=code[0], code_std=code[1], code_range=(lo, max(hi, lo + 1e-6)), code_fit=(), code_scale=scale)  # fmt: skip
        return base.with_slot_codes(layers, energies, groups)

    def with_slot_codes(
        self, layers: np.ndarray, energies: np.ndarray, groups: np.ndarray | None = None
    ) -> LayerTransform:
        """This conditional code with statistics fitted for the slots of ``groups`` that have
        none yet (e.g. a new detector in the spare slot; see :meth:`with_conditional_code`),
        on the code's energy range; slots fitted already keep theirs, so the code of the
        detectors a model knows is unchanged."""
        if not self.code_range:
            raise SpecError("slot statistics need a conditional code (with_conditional_code)")
        t = self.code_t(energies)
        x = _logit(self.fractions(layers, energies, self.total_scale), self.alpha)
        defined = self.defined(layers)
        labels = np.zeros(len(x), np.int64) if groups is None else np.asarray(groups, np.int64)
        fits = list(self.code_fit)
        fallback = (np.asarray(self.code_mean), np.asarray(self.code_std))
        for slot in range(len(fits), int(labels.max(initial=0)) + 1):
            rows = labels == slot
            if not rows.any():  # a slot without showers: the global statistics
                fits.append(self._constant_fit())
                continue
            fits.append(_fit_slot(x[rows], defined[rows], t[rows], fallback))
        return replace(self, code_fit=tuple(fits))

    def _constant_fit(self) -> tuple[tuple[tuple[float, ...], ...], ...]:
        """The global code statistics as polynomials of degree :data:`CODE_DEGREE`."""
        zeros = (0.0,) * CODE_DEGREE
        means = tuple((*zeros, m) for m in self.code_mean)
        stds = tuple((*zeros, math.log(s)) for s in self.code_std)
        return means, stds

    def code_coefficients(self, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
        """The code's mean and log-spread polynomials for detector slots ``0 .. n_slots - 1``,
        each (n_slots, Z, K) (K coefficients, highest power first; K = 1 for a global code):
        a slot without fitted statistics has the global ones."""
        if not self.conditional:
            means = np.broadcast_to(np.asarray(self.code_mean)[None, :, None], (n_slots, len(self.mean), 1))  # fmt: skip
            stds = np.broadcast_to(np.log(np.asarray(self.code_std))[None, :, None], means.shape)
            return means.copy(), stds.copy()
        fits = [*self.code_fit[:n_slots]]
        fits += [self._constant_fit()] * (n_slots - len(fits))
        coefficients = np.asarray(fits, dtype=np.float64)  # (n_slots, 2, Z, K)
        return coefficients[:, 0], coefficients[:, 1]

    def code_t(self, energies: np.ndarray) -> np.ndarray:
        """Incident energies (MeV) -> the mapped ``log E_inc`` of the code's polynomials,
        clipped to [-1, 1] (the polynomials are not extrapolated)."""
        lo, hi = self.code_range
        log_e = np.log(np.asarray(energies, dtype=np.float64))
        return np.clip((2 * log_e - lo - hi) / (hi - lo), -1.0, 1.0)

    def _code_stats(self, energies: np.ndarray, groups: np.ndarray | int | None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Per shower, the code's mean and spread per dimension: (N, Z) each."""
        if not self.conditional:
            return np.asarray(self.code_mean)[None, :], np.asarray(self.code_std)[None, :]
        labels = np.zeros(len(energies), np.int64) if groups is None else np.broadcast_to(np.asarray(groups, np.int64), (len(energies),))  # fmt: skip
        means, stds = self.code_coefficients(int(labels.max(initial=0)) + 1)
        powers = self.code_t(energies)[:, None] ** np.arange(means.shape[2] - 1, -1, -1)  # (N, K)
        mean = np.einsum("nzk,nk->nz", means[labels], powers)
        std = np.maximum(np.exp(np.einsum("nzk,nk->nz", stds[labels], powers)), STD_FLOOR)
        return mean, std

    def forward(self, layers: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Layer energies (N, Z) in MeV -> standardised logits (N, Z), float32."""
        x = _logit(self.fractions(layers, energies, self.scale), self.alpha)
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def conditions(self, layers: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Layer energies (N, Z) in MeV -> the shape model's layer conditions (N, cond_width),
        float32: :meth:`forward`'s logits, then (if fitted) the standardised logs."""
        x = self.forward(layers, energies)
        if not self.log_mean:
            return x
        y = (_log_layers(layers) - np.asarray(self.log_mean)) / np.asarray(self.log_std)
        return np.concatenate([x, y.astype(np.float32)], axis=1)

    def inverse(self, values: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Standardised logits (N, Z) -> layer energies (N, Z) in MeV, never negative."""
        x = np.asarray(values, dtype=np.float64) * np.asarray(self.std) + np.asarray(self.mean)
        u = _expit(x, self.alpha)  # (N, Z)
        return self._share(u, np.ones(u.shape, bool), energies, self.scale)

    @staticmethod
    def _share(u: np.ndarray, occupied: np.ndarray, energies: np.ndarray, scale: float) -> np.ndarray:  # fmt: skip
        """Layer energies (N, Z) from the total ``u_0`` (on ``scale``) and the fractions of what
        is left: an occupied layer takes ``u`` of it, the last occupied one all of it, an empty
        one 0."""
        z = u.shape[1]
        last = z - 1 - np.flip(occupied, 1).argmax(axis=1)  # (N,): the last occupied layer
        left = u[:, 0] * scale * energies  # (N,): the total
        out = np.zeros_like(u)
        for i in range(z):
            share = np.ones(len(u)) if i == z - 1 else np.where(last == i, 1.0, u[:, i + 1])
            out[:, i] = np.where(occupied[:, i], share * left, 0.0)
            left = left - out[:, i]
        return np.clip(out, 0.0, None)

    def encode(
        self,
        layers: np.ndarray,
        energies: np.ndarray,
        seed: int = 0,
        groups: np.ndarray | None = None,
    ) -> np.ndarray:
        """Layer energies (N, Z) in MeV -> the energy model's code (N, width), float32: the
        standardised logits, then the occupancy bits (see the module doc). An undefined logit
        borrows that dimension's value from a shower of the same ``groups`` label (N,), e.g.
        the detector, drawn (``seed``) among the :data:`DONORS` of nearest incident energy
        where it is defined. Without occupancy bits: :meth:`forward`."""
        if not self.occupancy:
            return self.forward(layers, energies)
        x = _logit(self.fractions(layers, energies, self.total_scale), self.alpha)
        mean, std = self._code_stats(energies, groups)
        x = (x - mean) / std
        x = _borrow(x, self.defined(layers), energies, groups, np.random.default_rng(seed))
        bits = np.where(layers > 0, 1.0, -1.0)
        return np.concatenate([x, bits], axis=1).astype(np.float32)

    def decode(
        self, values: np.ndarray, energies: np.ndarray, groups: np.ndarray | int | None = None
    ) -> np.ndarray:
        """The energy model's code (N, width) -> layer energies (N, Z) in MeV, summing to the
        total ``u_0`` exactly: an occupied layer takes ``u`` of what is left, the last occupied
        one all of it (a shower with no bit set: the layer of the largest bit). ``groups``:
        the detector slot of each shower (or of all), for a conditional code (None: slot 0)."""
        if not self.occupancy:
            return self.inverse(values, energies)
        z = len(self.mean)
        values = np.asarray(values, dtype=np.float64)
        mean, std = self._code_stats(energies, groups)
        x = values[:, :z] * std + mean
        u = _expit(x, self.alpha)  # (N, Z)
        occupied = values[:, z:] > 0  # (N, Z)
        rows = np.arange(len(values))
        occupied[rows, values[:, z:].argmax(axis=1)] |= ~occupied.any(axis=1)
        return self._share(u, occupied, energies, self.total_scale)

    def to_dict(self) -> dict[str, Any]:
        out = {"scale": self.scale, "mean": list(self.mean), "std": list(self.std), "alpha": self.alpha}  # fmt: skip
        if self.occupancy:
            out.update(code_mean=list(self.code_mean), code_std=list(self.code_std))
        if self.log_mean:
            out.update(log_mean=list(self.log_mean), log_std=list(self.log_std))
        if self.conditional:
            out.update(code_range=list(self.code_range), code_fit=_lists(self.code_fit))
        if self.code_scale:
            out.update(code_scale=self.code_scale)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerTransform:
        code = (tuple(data.get("code_mean", ())), tuple(data.get("code_std", ())))
        log = (tuple(data.get("log_mean", ())), tuple(data.get("log_std", ())))
        for what, (mean, std) in (("code", code), ("log", log)):
            if len(mean) not in (0, len(data["mean"])) or len(mean) != len(std):
                raise SpecError(f"the layer transform's {what}_mean and {what}_std do not match its layers")  # fmt: skip
        fit = _tuples(data.get("code_fit", []))
        z, k = len(data["mean"]), CODE_DEGREE + 1
        if fit and (not code[0] or np.shape(fit)[1:] != (2, z, k) or len(data.get("code_range", ())) != 2):  # fmt: skip
            raise SpecError(f"the layer transform's code_fit is not [slot][2][{z}][{k}] with a code_range")  # fmt: skip
        extra = (tuple(data["code_range"]), fit) if fit else ()
        out = cls(float(data["scale"]), tuple(data["mean"]), tuple(data["std"]), float(data["alpha"]), *code, *log, *extra)  # fmt: skip
        return replace(out, code_scale=float(data.get("code_scale", 0.0)))


def _fit_slot(
    x: np.ndarray, defined: np.ndarray, t: np.ndarray, fallback: tuple[np.ndarray, np.ndarray]
) -> tuple[tuple[tuple[float, ...], ...], ...]:
    """One detector slot's code polynomials (see :meth:`LayerTransform.with_conditional_code`):
    logits ``x`` (N, Z), where they are ``defined`` (N, Z), mapped ``log E_inc`` ``t`` (N,);
    ``fallback``: the global mean and spread per dimension."""
    edges = np.quantile(t, np.linspace(0.0, 1.0, CODE_BINS + 1))
    bins = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, CODE_BINS - 1)
    held = np.where(defined, x, 0.0)
    centre = np.array([t[bins == b].mean() if (bins == b).any() else 0.0 for b in range(CODE_BINS)])  # fmt: skip
    count = np.stack([defined[bins == b].sum(0) for b in range(CODE_BINS)]).astype(np.float64)
    total = np.stack([held[bins == b].sum(0) for b in range(CODE_BINS)])  # (B, Z)
    total_sq = np.stack([(held[bins == b] ** 2).sum(0) for b in range(CODE_BINS)])
    mean = total / np.maximum(count, 1.0)
    std = np.sqrt(np.maximum(total_sq / np.maximum(count, 1.0) - mean**2, STD_FLOOR**2))
    weight = np.where(count >= PRIOR_COUNT, np.sqrt(count), 0.0)  # a bin of few values: none
    fit_m, fit_s = [], []
    for d in range(x.shape[1]):
        used = weight[:, d] > 0
        if used.sum() <= CODE_DEGREE:  # too few bins hold it: the slot's own statistics
            n = max(float(count[:, d].sum()), 1.0)
            m = float(total[:, d].sum()) / n
            spread = math.sqrt(max(float(total_sq[:, d].sum()) / n - m**2, STD_FLOOR**2))
            if count[:, d].sum() < PRIOR_COUNT:  # hardly ever defined: the global code
                m, spread = float(fallback[0][d]), float(fallback[1][d])
            fit_m.append((0.0,) * CODE_DEGREE + (m,))
            fit_s.append((0.0,) * CODE_DEGREE + (math.log(spread),))
            continue
        means, spreads = _bounded_fit(centre[used], mean[used, d], np.log(std[used, d]), weight[used, d])  # fmt: skip
        fit_m.append(means)
        fit_s.append(spreads)
    return tuple(fit_m), tuple(fit_s)


def _bounded_fit(
    centre: np.ndarray, mean: np.ndarray, log_std: np.ndarray, weight: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Polynomials in ``t`` (:data:`CODE_DEGREE`, highest power first) of one dimension's
    bin means and log spreads, of the highest degree that stays within the bins' values over
    the whole range ``t`` in [-1, 1]: the mean within the bins' means +- their largest spread,
    the spread within half the smallest and twice the largest. A quadratic fitted to bins that
    cover part of the range (a layer defined only above some energy) can dive outside it, and a
    spread a thousandth of the data's standardises that dimension to thousands (measured:
    par04-scipb's layer 39 at 1.5 GeV, code values up to 2e4, the energy model's sigma_data
    826). Degree 0 (the weighted averages) always stays within."""
    grid = np.linspace(-1.0, 1.0, 65)
    low_m, high_m = mean.min() - np.exp(log_std.max()), mean.max() + np.exp(log_std.max())
    low_s, high_s = log_std.min() - math.log(2.0), log_std.max() + math.log(2.0)
    for degree in range(min(CODE_DEGREE, len(centre) - 1), -1, -1):
        m = np.polyfit(centre, mean, degree, w=weight)
        s = np.polyfit(centre, log_std, degree, w=weight)
        at_m, at_s = np.polyval(m, grid), np.polyval(s, grid)
        inside = (at_m >= low_m).all() and (at_m <= high_m).all() and (at_s >= low_s).all() and (at_s <= high_s).all()  # fmt: skip
        if inside or degree == 0:
            pad = (0.0,) * (CODE_DEGREE - degree)
            return (*pad, *m.tolist()), (*pad, *s.tolist())
    raise AssertionError("unreachable: degree 0 always returns")


def _lists(value: Any) -> Any:
    """Nested tuples -> nested lists (JSON)."""
    return [_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _tuples(value: Any) -> Any:
    """Nested lists -> nested tuples (a frozen dataclass field)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, tuple | list) else float(value)


@dataclass(frozen=True)
class FractionTransform:
    """Voxel energies <-> standardised logits of their fraction of their layer, per voxel.

    Attributes:
        mesh_shape: (Z, A, R).
        mean, std: per voxel (Z * A * R values each) of the logits.
        alpha: the logit's margin.
        code_mean, code_std: per voxel, of the code's values where the voxel holds energy
            (empty: no occupancy channel).
        values: what the code's values are (:data:`VOXEL_VALUES`): the logits of the fractions,
            or the logs of the voxel energies, or the logits about a line in the log of the
            layer energy (codes with occupancy bits only).
        code_slope: per voxel, that line's slope (``fraction-by-layer`` only; ``code_mean`` is
            then its intercept).
    """

    mesh_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    alpha: float = ALPHA
    code_mean: tuple[float, ...] = ()
    code_std: tuple[float, ...] = ()
    values: str = "fraction"
    code_slope: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.values not in VOXEL_VALUES:
            raise SpecError(f"unknown voxel values {self.values!r}: one of {', '.join(VOXEL_VALUES)}")  # fmt: skip
        if self.values != "fraction" and not self.occupancy:
            raise SpecError(f"voxel values {self.values!r} need occupancy bits")

    @property
    def occupancy(self) -> bool:
        """Whether the shape model's code has an occupancy channel (2 channels, else 1)."""
        return bool(self.code_mean)

    @property
    def channels(self) -> int:
        """Channels per voxel of the shape model's code."""
        return 2 if self.occupancy else 1

    def fractions(self, showers: np.ndarray) -> np.ndarray:
        """(N, V) voxel energies -> (N, V) fractions of their layer (0 in an empty layer)."""
        n, z = len(showers), self.mesh_shape[0]
        by_layer = np.clip(showers, 0.0, None).reshape(n, z, -1).astype(np.float64)
        sums = by_layer.sum(axis=2, keepdims=True)  # (N, Z, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(sums > 0, by_layer / sums, 0.0)
        return f.reshape(n, -1)

    @classmethod
    def fit(
        cls,
        showers: np.ndarray,
        mesh_shape: tuple[int, int, int],
        alpha: float = ALPHA,
        occupancy: bool = True,
        values: str = "fraction",
    ) -> FractionTransform:
        """Fit the per-voxel mean and std on training showers (N, V), and with ``occupancy``
        those of the code's ``values`` (:data:`VOXEL_VALUES`) over the showers where the voxel
        holds energy (see the module doc)."""
        if values != "fraction" and not occupancy:
            raise SpecError(f"voxel values {values!r} need occupancy bits")
        empty = cls(tuple(mesh_shape), (), (), alpha)  # type: ignore[arg-type]
        v = showers.shape[1]
        total, total_sq = np.zeros(v), np.zeros(v)
        held, held_sq, count = np.zeros(v), np.zeros(v), np.zeros(v)
        for start in range(0, len(showers), 1000):  # chunks: no float64 copy of the set
            f = empty.fractions(showers[start : start + 1000])
            x = _logit(f, alpha)
            total += x.sum(axis=0)
            total_sq += np.square(x).sum(axis=0)
            if values == "log-energy":
                x = _log_energy(showers[start : start + 1000])
            x = np.where(f > 0, x, 0.0)
            held += x.sum(axis=0)
            held_sq += np.square(x).sum(axis=0)
            count += (f > 0).sum(axis=0)
        n = max(len(showers), 1)
        mean = total / n
        std = np.maximum(np.sqrt(np.maximum(total_sq / n - mean**2, 0.0)), STD_FLOOR)
        code: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
        if values == "fraction-by-layer":
            return cls._fit_by_layer(showers, tuple(mesh_shape), mean, std, alpha)  # type: ignore[arg-type]
        if occupancy:
            code = _shrunk_stats(held, held_sq, count)
        return cls(tuple(mesh_shape), tuple(mean.tolist()), tuple(std.tolist()), alpha, *code, values)  # type: ignore[arg-type]  # fmt: skip

    @classmethod
    def _fit_by_layer(
        cls,
        showers: np.ndarray,
        mesh_shape: tuple[int, int, int],
        mean: np.ndarray,
        std: np.ndarray,
        alpha: float,
    ) -> FractionTransform:
        """The ``fraction-by-layer`` code's statistics (module doc): least squares of the
        occupied voxels' logits on the log of their layer's energy, the slope and the residual
        spread pooled over phi per layer and radial bin, the intercept per voxel. A (layer,
        radial bin) with fewer than :data:`PRIOR_COUNT` occupied voxels gets slope 0."""
        z, a, r = mesh_shape
        empty = cls(mesh_shape, (), (), alpha)
        v = showers.shape[1]
        sums = np.zeros((6, v))  # n, sum l, sum l^2, sum y, sum y l, sum y^2 (per voxel)
        for start in range(0, len(showers), 1000):
            chunk = showers[start : start + 1000]
            f = empty.fractions(chunk)
            held = f > 0
            y = np.where(held, _logit(f, alpha), 0.0)
            ell = np.where(held, _layer_logs(chunk, mesh_shape), 0.0)
            for k, term in enumerate((held, ell, ell * ell, y, y * ell, y * y)):
                sums[k] += term.sum(axis=0)
        n, s_l, s_ll, s_y, s_yl, s_yy = sums
        by_bin = sums.reshape(6, z, a, r).sum(axis=2)  # pooled over phi: (6, Z, R)
        bn, bl, bll, by, byl = by_bin[:5]
        with np.errstate(invalid="ignore", divide="ignore"):
            var_l = bll / bn - (bl / bn) ** 2
            slope = np.where((bn >= PRIOR_COUNT) & (var_l > 1e-6), (byl / bn - bl * by / bn**2) / var_l, 0.0)  # fmt: skip
        slope_v = np.broadcast_to(slope[:, None, :], (z, a, r)).reshape(-1)
        # the intercept per voxel, shrunk towards its bin's by PRIOR_COUNT pseudo-values
        bin_intercept = np.where(bn > 0, (by - slope * bl) / np.maximum(bn, 1), 0.0)
        prior = np.broadcast_to(bin_intercept[:, None, :], (z, a, r)).reshape(-1)
        intercept = (s_y - slope_v * s_l + PRIOR_COUNT * prior) / (n + PRIOR_COUNT)
        # residual sum of squares per voxel, pooled over phi
        rss = s_yy - 2 * intercept * s_y - 2 * slope_v * s_yl + n * intercept**2 + 2 * intercept * slope_v * s_l + slope_v**2 * s_ll  # fmt: skip
        bin_rss = np.maximum(rss, 0.0).reshape(z, a, r).sum(axis=1)
        spread = np.sqrt(np.where(bn > 0, bin_rss / np.maximum(bn, 1), 1.0))
        spread = np.where(bn >= PRIOR_COUNT, np.maximum(spread, STD_FLOOR), 1.0)
        spread_v = np.broadcast_to(spread[:, None, :], (z, a, r)).reshape(-1)
        return cls(
            mesh_shape,
            tuple(mean.tolist()),
            tuple(std.tolist()),
            alpha,
            tuple(intercept.tolist()),
            tuple(spread_v.tolist()),
            "fraction-by-layer",
            tuple(slope_v.tolist()),
        )

    def forward(self, showers: np.ndarray) -> np.ndarray:
        """Voxel energies (N, V) -> standardised logits (N, V), float32."""
        x = _logit(self.fractions(showers), self.alpha)
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def inverse(self, values: np.ndarray, layers: np.ndarray) -> np.ndarray:
        """Standardised logits (N, V) and layer energies (N, Z) -> voxel energies (N, V) in MeV.

        Each layer's fractions are normalised to 1 and scaled to the layer's energy, so the
        layer energies are exactly ``layers``. A layer whose every fraction came out 0 gets
        its energy in its voxel of largest logit.
        """
        n, z = len(values), self.mesh_shape[0]
        x = np.asarray(values, dtype=np.float64) * np.asarray(self.std) + np.asarray(self.mean)
        f = _expit(x, self.alpha).reshape(n, z, -1)  # (N, Z, A*R)
        sums = f.sum(axis=2, keepdims=True)
        dead = (sums[..., 0] <= 0) & (layers > 0)  # (N, Z)
        if dead.any():
            best = x.reshape(n, z, -1).argmax(axis=2)  # (N, Z)
            rows, cols = np.nonzero(dead)
            f[rows, cols, best[rows, cols]] = 1.0
            sums = f.sum(axis=2, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(sums > 0, f / sums, 0.0)
        return (f * layers[..., None]).reshape(n, -1)

    def encode(
        self,
        showers: np.ndarray,
        energies: np.ndarray | None = None,
        seed: int = 0,
        groups: np.ndarray | None = None,
    ) -> np.ndarray:
        """Voxel energies (N, V) -> the shape model's code (N, channels * V), float32: the
        standardised logits (or log energies), then the occupancy bits. Where a voxel holds no
        energy its value
        is ignored by the decoder: 0, or, given the incident ``energies`` (N,), that voxel's
        value in a shower of the same ``groups`` label (e.g. the detector) drawn (``seed``)
        among the :data:`DONORS` of nearest energy where it holds energy (as
        :meth:`LayerTransform.encode`). Without an occupancy channel: :meth:`forward`."""
        if not self.occupancy:
            return self.forward(showers)
        v = showers.shape[1]
        out = np.empty((len(showers), 2 * v), np.float32)
        std = np.asarray(self.code_std)
        for start in range(0, len(showers), 1000):  # chunks: no float64 copy of the set
            chunk = showers[start : start + 1000]
            f = self.fractions(chunk)
            held = f > 0
            raw = _log_energy(chunk) if self.values == "log-energy" else _logit(f, self.alpha)
            x = (raw - self._centre(layer_energies(chunk, self.mesh_shape))) / std
            out[start : start + 1000, :v] = np.where(held, x, 0.0)
            out[start : start + 1000, v:] = np.where(held, 1.0, -1.0)
        if energies is not None:
            rng = np.random.default_rng(seed)
            for first in range(0, v, 512):  # column blocks: contiguous copies
                cols = slice(first, min(first + 512, v))
                held = out[:, v:][:, cols] > 0
                out[:, cols] = _borrow(out[:, cols], held, energies, groups, rng)
        return out

    def decode(self, values: np.ndarray, layers: np.ndarray) -> np.ndarray:
        """The shape model's code (N, channels * V) and layer energies (N, Z) -> voxel
        energies (N, V) in MeV: the occupied voxels share their layer's energy by their
        fractions, so the layer energies are exactly ``layers``; a layer with energy and no
        occupied voxel puts it in its voxel of largest bit."""
        if not self.occupancy:
            return self.inverse(values, layers)
        n = len(values)
        f, bits = self._occupied(values, layers)
        sums = f.sum(axis=2, keepdims=True)
        dead = (sums[..., 0] <= 0) & (layers > 0)  # (N, Z)
        if dead.any():
            rows, cols = np.nonzero(dead)
            f[rows, cols, bits[rows, cols].argmax(axis=1)] = 1.0
            sums = f.sum(axis=2, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(sums > 0, f / sums, 0.0)
        return (f * layers[..., None]).reshape(n, -1)

    def _centre(self, layers: np.ndarray) -> np.ndarray:
        """Layer energies (N, Z) -> (N, V): each voxel's code mean (with ``fraction-by-layer``
        values, the line in the log of its layer's energy)."""
        mean = np.asarray(self.code_mean)
        if not self.code_slope:
            return np.broadcast_to(mean, (len(layers), len(mean)))
        ell = _log_layers(layers)  # (N, Z)
        per_voxel = np.repeat(ell, len(mean) // self.mesh_shape[0], axis=1)
        return mean + np.asarray(self.code_slope) * per_voxel

    def _unstandardised(self, values: np.ndarray, layers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The code (N, 2 V) drawn for the layer energies (N, Z) -> its values as logits (or
        log energies) and its bits, both (N, Z, A*R), float64."""
        n, z = len(values), self.mesh_shape[0]
        v = math.prod(self.mesh_shape)
        values = np.asarray(values, dtype=np.float64)
        x = values[:, :v] * np.asarray(self.code_std) + self._centre(np.asarray(layers, np.float64))  # fmt: skip
        return x.reshape(n, z, -1), values[:, v:].reshape(n, z, -1)

    def _occupied(self, values: np.ndarray, layers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The code (N, 2 V) -> each voxel's share where its bit is set, 0 elsewhere, as the
        network drew it (before the shares of a layer are made to add up to 1), and the bits;
        both (N, Z, A*R). A share is the fraction, or (log-energy values) the energy divided by
        the largest one drawn in its layer."""
        x, bits = self._unstandardised(values, layers)
        if self.values != "log-energy":
            return np.where(bits > 0, _expit(x, self.alpha), 0.0), bits
        x = np.where(bits > 0, x, -np.inf)
        top = x.max(axis=2, keepdims=True)
        return np.where(bits > 0, np.exp(x - np.where(np.isfinite(top), top, 0.0)), 0.0), bits

    def drawn_sums(self, values: np.ndarray, layers: np.ndarray) -> np.ndarray:
        """The code (N, 2 V) and the layer energies (N, Z) it was drawn for -> (N, Z): the sum
        of each layer's fractions (or energies, divided by the layer's) as drawn, which
        :meth:`decode` rescales to the layer (1: the network's shares already add up to it). A
        diagnostic of the shape model: a sum far from 1 rescales every hit of its layer."""
        if not self.occupancy:
            raise SpecError("drawn sums need a code with occupancy bits")
        if self.values != "log-energy":
            return self._occupied(values, layers)[0].sum(axis=2)
        x, bits = self._unstandardised(values, layers)
        drawn = np.where(bits > 0, np.exp(x), 0.0).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(layers > 0, drawn / layers, 0.0)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "mesh_shape": list(self.mesh_shape),
            "mean": list(self.mean),
            "std": list(self.std),
            "alpha": self.alpha,
        }
        if self.occupancy:
            out.update(code_mean=list(self.code_mean), code_std=list(self.code_std))
        if self.values != "fraction":
            out["values"] = self.values
        if self.code_slope:
            out["code_slope"] = list(self.code_slope)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FractionTransform:
        shape = tuple(int(v) for v in data["mesh_shape"])
        if len(data["mean"]) != math.prod(shape) or len(data["std"]) != math.prod(shape):
            raise SpecError("the fraction transform's mean and std do not match its mesh")
        code = (tuple(data.get("code_mean", ())), tuple(data.get("code_std", ())))
        if len(code[0]) not in (0, math.prod(shape)) or len(code[0]) != len(code[1]):
            raise SpecError("the fraction transform's code_mean and code_std do not match its mesh")  # fmt: skip
        slope = tuple(data.get("code_slope", ()))
        values = str(data.get("values", "fraction"))
        if len(slope) != (math.prod(shape) if values == "fraction-by-layer" else 0):
            raise SpecError("the fraction transform's code_slope does not match its values and mesh")  # fmt: skip
        return cls(shape, tuple(data["mean"]), tuple(data["std"]), float(data["alpha"]), *code, values, slope)  # type: ignore[arg-type]  # fmt: skip


def conserve_threshold(
    showers: np.ndarray, mesh_shape: tuple[int, int, int], threshold: float
) -> np.ndarray:
    """Zero the voxels below ``threshold`` and give their energy to the layer's survivors.

    The survivors of each layer are scaled up (never below the threshold again) so that the
    layer keeps its energy; a layer with no survivor but at least ``threshold`` of energy puts
    it all in its largest voxel; a layer below the threshold is zeroed, as a read-out would.
    (CaloDiffusion's ``apply_mask_conserveE``, layer by layer.)

    Args:
        showers: (N, V) voxel energies in MeV.
        mesh_shape: (Z, A, R).
        threshold: in MeV.

    Returns:
        (N, V) float32.
    """
    n, z = len(showers), mesh_shape[0]
    x = np.clip(np.asarray(showers, dtype=np.float64), 0.0, None).reshape(n, z, -1)
    layers = x.sum(axis=2)  # (N, Z)
    kept = np.where(x >= threshold, x, 0.0)
    survivors = kept.sum(axis=2)  # (N, Z)
    none = (survivors <= 0) & (layers >= threshold)
    if none.any():
        rows, cols = np.nonzero(none)
        best = x[rows, cols].argmax(axis=1)
        kept[rows, cols, best] = layers[rows, cols]
        survivors = kept.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(survivors > 0, layers / survivors, 0.0)  # >= 1
    return (kept * factor[..., None]).reshape(n, -1).astype(np.float32)


def rescale_layers(
    showers: np.ndarray,
    mesh_shape: tuple[int, int, int],
    layers: np.ndarray,
    energies: np.ndarray | None = None,
) -> np.ndarray:
    """Showers (N, V) with each layer's voxels scaled to the energies ``layers`` (N, Z): their
    shapes kept, their layer energies replaced. A layer that was empty stays empty, unless the
    incident ``energies`` (N,) are given: then it takes the shape of that layer in the shower of
    nearest incident energy that has one, so that every layer gets its energy."""
    n, z = len(showers), mesh_shape[0]
    x = np.clip(np.asarray(showers, dtype=np.float64), 0.0, None).reshape(n, z, -1)
    sums = x.sum(axis=2)  # (N, Z)
    if energies is not None:
        x = x.copy()
        for k in range(z):
            need = np.flatnonzero((sums[:, k] <= 0) & (layers[:, k] > 0))
            have = np.flatnonzero(sums[:, k] > 0)
            if need.size == 0 or have.size == 0:
                continue
            have = have[np.argsort(energies[have])]
            pos = np.clip(np.searchsorted(energies[have], energies[need]), 1, len(have) - 1)
            left, right = have[pos - 1], have[np.minimum(pos, len(have) - 1)]
            nearer = np.abs(energies[left] - energies[need]) <= np.abs(energies[right] - energies[need])  # fmt: skip
            donor = have[:1].repeat(len(need)) if len(have) == 1 else np.where(nearer, left, right)
            x[need, k] = x[donor, k]
        sums = x.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(sums > 0, layers / sums, 0.0)[..., None]
    return (x * factor).reshape(n, -1).astype(np.float32)
