"""``benchmarks/fidelity.py --samples``: generated showers kept and reused by prefix."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import MESH

from caloforge.evaluate import Comparison
from caloforge.fastsim import load_model, shower_seeds
from caloforge.fastsim.model import SamplerSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from fidelity import SampleCache, _bins, _sample_key

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
    conds = np.column_stack([np.arange(1.0, 7.0), np.full(6, 1.5)])  # energy, theta
    showers = np.random.default_rng(0).random((6, 4))
    SampleCache(path, key).put("model", conds, showers)
    again = SampleCache(path, key)
    np.testing.assert_array_equal(again.get("model", conds[:4]), showers[:4])
    assert again.get("model", conds[1:5]) is None  # other conditions
    other_theta = conds[:4].copy()
    other_theta[2, 1] = 1.6
    assert again.get("model", other_theta) is None
    assert again.get("model", np.vstack([conds, conds[:2]])) is None  # more than kept
    assert again.get("g4_layers", conds) is None
    assert SampleCache(path, _sample_key(model, 2, None)).get("model", conds) is None  # other seed
    other = _sample_key(model, 1, SamplerSettings(steps=4))
    assert SampleCache(path, other).get("model", conds) is None  # other sampler
    # showers at other conditions replace those kept; a prefix of those kept does not
    again.put("model", conds[1:3], showers[:2])
    np.testing.assert_array_equal(SampleCache(path, key).get("model", conds[1:3]), showers[:2])
    again.put("model", conds[1:2], showers[5:6])
    np.testing.assert_array_equal(SampleCache(path, key).get("model", conds[1:3]), showers[:2])
    assert not path.with_name(path.name + ".part.npz").exists()


def _reference(make, tmp_path: Path, n: int) -> Path:  # type: ignore[no-untyped-def]
    """Halves A and B (and A's first half) at the same energies, so that B covers A's range."""
    rng = np.random.default_rng(3)
    energies = np.tile(np.geomspace(1.5e3, 90e3, n // 4), 4)
    z = np.arange(MESH.n_z)[:, None, None]
    shape = np.exp(-0.5 * ((z - 2.0) / 1.2) ** 2 - np.arange(MESH.n_r)) * np.ones(
        (1, MESH.n_phi, 1)
    )
    showers = rng.gamma(20.0, shape.reshape(-1) / 20.0, (n, MESH.n_voxels)) * energies[:, None] / 1e3  # fmt: skip
    theta = np.tile(np.linspace(0.9, 2.2, n // 4), 4)
    return make(tmp_path / "ref.h5", mesh=MESH, energies=energies, showers=showers,
                theta=theta, phi=rng.uniform(0, 6, n), seed=9,
                attrs={"energy_spec_gev": "log:1:100", "theta_spec_rad": "0.87:2.27"})  # fmt: skip


def test_a_second_run_reuses_the_showers_and_reports_per_bin(teachers, make_caloforge_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    from fidelity import fidelity

    n = 80
    reference = _reference(make_caloforge_file, tmp_path, n)
    samples = tmp_path / "samples.npz"
    first = fidelity(str(teachers["factorized"]), str(reference), n, samples=samples)
    assert samples.exists()
    assert "s sampling)" in first.text
    again = fidelity(str(teachers["factorized"]), str(reference), n // 2, samples=samples)
    assert "(cached samples)" in again.text
    halo = next(line for line in first.text.splitlines() if line.startswith("| Geant4 (A) |"))
    assert len(halo.split("|")) == MESH.n_r + 3  # one cell per radial bin
    assert "| G4 layers + model shapes |" in first.text
    with np.load(samples) as kept:
        assert len(kept["model"]) == len(kept["g4_layers"]) == 40  # the larger run's, kept
    # the per-bin table, here from a hand-made metrics record (40 showers are too few a bin)
    bin_ = {"label": "E 1-10 GeV", "n_generated": 500, "auc_high": {"value": 0.61, "error": 0.01},
            "separation_power": {"e_ratio": 0.02},
            "baseline": {"auc_high": {"value": 0.5, "error": 0.02}, "separation_power": {"e_ratio": 0.01}}}  # fmt: skip
    skipped = {"label": "E 100-1000 GeV", "n_generated": 3, "skipped": "fewer than 50 showers"}
    table = _bins(replace(first.model, metrics={"conditions": {"bins": [bin_, skipped]}}))
    assert "| E 1-10 GeV | 500 | 0.61 ± 0.01 | 0.5 ± 0.02 | 0.02 | 0.01 |" in table
    assert not any("100-1000" in line for line in table)
    assert _bins(first.model) == []  # every bin of the tiny run skipped: no table


@pytest.mark.slow
def test_the_report_is_caloforge_evaluates(teachers, make_caloforge_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    from fidelity import fidelity

    report = tmp_path / "report"
    reference = _reference(make_caloforge_file, tmp_path, 80)
    found = fidelity(str(teachers["factorized"]), str(reference), 80, diagnostics=False, report=report)  # fmt: skip
    kept = Comparison.from_metrics(json.loads((report / "metrics.json").read_text()))
    assert kept.auc_high == found.model.auc_high
    assert (report / "index.html").exists()
