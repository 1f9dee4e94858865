"""Condition specs: what showers to make (particle, energy, angles), and the per-shower draw.

Spec syntax (command line and YAML): ``50`` fixed, ``A:B`` uniform in [A, B), ``log:A:B``
log-uniform in [A, B). Energies are in GeV, angles in rad; phi is taken modulo 2 pi.
Every shower's conditions and Geant4 seed come from its own generator, seeded by
(run seed, shower index), so a shower never depends on which worker or chunk simulated it.
Geant4-free: ``simulate`` and ``sample`` draw their conditions here, training reads the ranges
of its files' specs here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from caloforge.errors import SpecError

ENERGY_RANGE_GEV = (1.0, 1000.0)
THETA_RANGE = (0.87, 2.27)
PARTICLES = {
    "gamma": "gamma",
    "photon": "gamma",
    "e-": "e-",
    "electron": "e-",
    "e+": "e+",
    "positron": "e+",
}


@dataclass(frozen=True)
class ValueSpec:
    """A fixed value, a distribution on [low, high), or a uniform choice among values."""

    kind: str  # "fixed", "uniform", "log" or "choice"
    low: float
    high: float
    values: tuple[float, ...] = ()  # the values of a "choice"

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{self.low:.12g}"
        if self.kind == "choice":
            return ",".join(f"{v:.12g}" for v in self.values)
        prefix = "log:" if self.kind == "log" else ""
        return f"{prefix}{self.low:.12g}:{self.high:.12g}"

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one value (always consumes one uniform number, whatever the kind)."""
        x = float(rng.random())
        if self.kind == "fixed":
            return self.low
        if self.kind == "choice":
            return self.values[min(int(x * len(self.values)), len(self.values) - 1)]
        if self.kind == "log":
            return math.exp(math.log(self.low) + x * (math.log(self.high) - math.log(self.low)))
        return self.low + x * (self.high - self.low)


def parse_spec(text: str, what: str) -> ValueSpec:
    """Parse ``50``, ``A:B``, ``log:A:B`` or ``10,50,100`` (each value equally likely).

    Raises:
        SpecError: if the text is malformed, not finite or the range is empty.
    """
    if "," in str(text):
        try:
            choices = tuple(float(p) for p in str(text).split(","))
        except ValueError:
            raise SpecError(f"{text!r}: expected numbers as in 10,50,100", subject=what) from None
        if not all(math.isfinite(v) for v in choices) or len(set(choices)) != len(choices):
            raise SpecError(f"{text!r}: values must be finite and distinct", subject=what)
        return ValueSpec("choice", min(choices), max(choices), choices)
    parts = str(text).strip().split(":")
    kind = "fixed"
    if parts[0] == "log":
        kind, parts = "log", parts[1:]
        if len(parts) != 2:
            raise SpecError(f"{text!r}: log-uniform needs log:A:B", subject=what)
    elif len(parts) == 2:
        kind = "uniform"
    if len(parts) not in (1, 2):
        raise SpecError(f"{text!r}: expected 50, A:B or log:A:B", subject=what)
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SpecError(
            f"{text!r}: expected numbers as in 50, A:B or log:A:B", subject=what
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise SpecError(f"{text!r}: values must be finite", subject=what)
    if kind == "fixed":
        return ValueSpec("fixed", values[0], values[0])
    low, high = values
    if not high > low:
        raise SpecError(f"{text!r}: the range A:B needs A < B", subject=what)
    if kind == "log" and low <= 0:
        raise SpecError(f"{text!r}: log-uniform needs A > 0", subject=what)
    return ValueSpec(kind, low, high)


def parse_particle(name: str) -> str:
    """Canonical Geant4 name (``gamma``, ``e-``, ``e+``) of a particle given by the user."""
    try:
        return PARTICLES[name.lower()]
    except KeyError:
        raise SpecError(f"unknown particle {name!r}; choose gamma, e- or e+") from None


@dataclass(frozen=True)
class PrimarySpec:
    """What to shoot: particle, energy (GeV) and angles (rad)."""

    particle: str
    energy: ValueSpec
    theta: ValueSpec
    phi: ValueSpec

    def check_ranges(self, *, allow_out_of_range: bool = False) -> None:
        """Reject energies outside [1 GeV, 1 TeV] and theta outside [0.87, 2.27] unless allowed.

        Raises:
            SpecError: naming the offending condition and the allowed range.
        """
        if self.energy.low <= 0:
            raise SpecError(f"{self.energy}: energies must be positive", subject="energy")
        if not 0 < self.theta.low <= self.theta.high < math.pi:
            raise SpecError(
                f"{self.theta}: theta must lie in (0, pi) to reach the barrel", subject="theta"
            )
        if allow_out_of_range:
            return
        lo, hi = ENERGY_RANGE_GEV
        if self.energy.low < lo or self.energy.high > hi:
            raise SpecError(
                f"{self.energy} GeV is outside [{lo:g}, {hi:g}] GeV",
                subject="energy",
                override="allow_out_of_range",
                action="force it",
            )
        lo, hi = THETA_RANGE
        if self.theta.low < lo or self.theta.high > hi:
            raise SpecError(
                f"{self.theta} rad is outside [{lo}, {hi}] rad",
                subject="theta",
                override="allow_out_of_range",
                action="force it",
            )


@dataclass(frozen=True)
class ShowerConditions:
    """Conditions of one shower."""

    index: int
    energy_mev: float
    theta: float
    phi: float  # in [0, 2 pi)
    g4_seed: int


def draw_conditions(spec: PrimarySpec, seed: int, indices: range) -> list[ShowerConditions]:
    """Conditions of the showers ``indices`` of a run with ``seed``, each from its own stream."""
    out = []
    for i in indices:
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        energy_gev = spec.energy.sample(rng)
        theta = spec.theta.sample(rng)
        phi = spec.phi.sample(rng) % (2 * math.pi)
        g4_seed = int(rng.integers(1, 2**31 - 1))
        out.append(ShowerConditions(i, energy_gev * 1000.0, theta, phi, g4_seed))
    return out
