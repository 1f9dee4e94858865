"""``benchmarks/fidelity.py --samples``: generated showers kept and reused by prefix."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from caloforge.fastsim import load_model, shower_seeds
from caloforge.fastsim.model import SamplerSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from fidelity import SampleCache, _sample_key

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_prefix_of_the_showers_is_the_smaller_run(teachers) -> None:  # type: ignore[no-untyped-def]
    """The premise of the cache: each shower has its own noise stream, so the first k showers
    of a run are exactly a run of k showers."""
    model = load_model(teachers["factorized"])
    e = np.geomspace(2e3, 80e3, 6)
    theta, phi = np.full(6, 1.5), np.linspace(0, 6, 6)
    detector = next(iter(model.detectors))
    full = model.generate(e, theta, phi, detector, shower_seeds(1, range(6)), steps=2)
    part = model.generate(e[:3], theta[:3], phi[:3], detector, shower_seeds(1, range(3)), steps=2)  # fmt: skip
    np.testing.assert_array_equal(full[:3], part)


def test_the_cache_gives_back_a_prefix_of_the_same_model_seed_and_sampler(teachers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    model = load_model(teachers["factorized"])
    path = tmp_path / "samples.npz"
    key = _sample_key(model, 1, None)
    e = np.arange(1.0, 7.0)
    showers = np.random.default_rng(0).random((6, 4))
    SampleCache(path, key).put("model", e, showers)
    again = SampleCache(path, key)
    np.testing.assert_array_equal(again.get("model", e[:4]), showers[:4])
    assert again.get("model", e[1:5]) is None  # other conditions
    assert again.get("model", np.arange(1.0, 9.0)) is None  # more than kept
    assert again.get("g4_layers", e) is None
    assert SampleCache(path, _sample_key(model, 2, None)).get("model", e) is None  # other seed
    other = _sample_key(model, 1, SamplerSettings(steps=4))
    assert SampleCache(path, other).get("model", e) is None  # other sampler
    assert not path.with_name(path.name + ".part.npz").exists()
