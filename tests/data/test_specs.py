from __future__ import annotations

import math

import numpy as np
import pytest

from caloforge.data.specs import (
    PrimarySpec,
    ValueSpec,
    draw_conditions,
    parse_particle,
    parse_spec,
)
from caloforge.errors import SpecError


def test_parse_spec_forms():
    assert parse_spec("50", "energy") == ValueSpec("fixed", 50.0, 50.0)
    assert parse_spec("1:100", "energy") == ValueSpec("uniform", 1.0, 100.0)
    assert parse_spec("log:1:1000", "energy") == ValueSpec("log", 1.0, 1000.0)
    assert str(parse_spec("log:1:1000", "energy")) == "log:1:1000"
    assert parse_spec("10,50,100", "energy") == ValueSpec(
        "choice", 10.0, 100.0, (10.0, 50.0, 100.0)
    )
    assert str(parse_spec("10,50,100", "energy")) == "10,50,100"


def test_choice_draws_every_value_equally():
    spec = parse_spec("10,50,100", "energy")
    rng = np.random.default_rng(0)
    values = [spec.sample(rng) for _ in range(3000)]
    counts = {v: values.count(v) for v in (10.0, 50.0, 100.0)}
    assert sum(counts.values()) == 3000
    assert all(900 < c < 1100 for c in counts.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "expected numbers"),
        ("1:2:3", "expected 50, A:B or log:A:B"),
        ("log:5", "log:A:B"),
        ("5:1", "A < B"),
        ("log:0:10", "A > 0"),
        ("nan", "finite"),
        ("10,x", "10,50,100"),
        ("10,10", "distinct"),
    ],
)
def test_malformed_specs(text, message):
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(text, "energy")
    # the library names the quantity, not a command-line flag (the CLI adds that)
    assert info.value.subject == "energy"
    assert "--" not in str(info.value)


def test_particles():
    assert parse_particle("photon") == "gamma"
    assert parse_particle("e-") == "e-"
    with pytest.raises(SpecError, match="unknown particle 'pi\\+'"):
        parse_particle("pi+")


def _spec(energy="log:1:100", theta="0.87:2.27", phi="0:6.2832") -> PrimarySpec:
    return PrimarySpec(
        "gamma", parse_spec(energy, "energy"), parse_spec(theta, "theta"), parse_spec(phi, "phi")
    )


def test_ranges_are_enforced_unless_forced():
    with pytest.raises(SpecError, match=r"^energy .*outside \[1, 1000\] GeV") as info:
        _spec(energy="0.5:10").check_ranges()
    assert (info.value.subject, info.value.override) == ("energy", "allow_out_of_range")
    with pytest.raises(SpecError, match="allow_out_of_range"):
        _spec(energy="2000").check_ranges()
    with pytest.raises(SpecError, match=r"^theta .* outside \[0.87, 2.27\]"):
        _spec(theta="0.5").check_ranges()
    _spec(energy="0.5:2000", theta="0.5").check_ranges(allow_out_of_range=True)
    with pytest.raises(SpecError, match="theta must lie in"):
        _spec(theta="0").check_ranges(allow_out_of_range=True)


def test_conditions_depend_only_on_seed_and_index():
    spec = _spec()
    all_ = draw_conditions(spec, 7, range(10))
    part = draw_conditions(spec, 7, range(4, 10))
    assert all_[4:] == part
    assert draw_conditions(spec, 8, range(10)) != all_


def test_conditions_follow_their_distributions():
    c = draw_conditions(_spec(phi="6:7"), 1, range(4000))
    e = np.array([x.energy_mev for x in c]) / 1000
    assert e.min() >= 1
    assert e.max() < 100
    # log-uniform: log10 E is uniform on [0, 2)
    assert np.mean(np.log10(e)) == pytest.approx(1.0, abs=0.05)
    phi = np.array([x.phi for x in c])
    assert phi.min() >= 0  # taken modulo 2 pi
    assert phi.max() < 2 * math.pi
    assert len({x.g4_seed for x in c}) == len(c)
