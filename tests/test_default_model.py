"""The shipped default model and the demo's shipped Geant4 showers."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from caloforge.cli import main
from caloforge.data.readers import read_showers
from caloforge.fastsim import default_model_dir, load_model, shower_seeds
from caloforge.fastsim.demo import reference_path
from caloforge.fastsim.model import SamplerSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shipped_files_within_their_budgets() -> None:
    model = default_model_dir()
    assert sum(p.stat().st_size for p in model.iterdir()) <= 20 * 2**20
    assert reference_path().stat().st_size <= 15 * 2**20
    card = (model / "MODEL_CARD.md").read_text()
    assert "Verdict" in card
    assert "AUC, high level" in card


def test_default_model_metadata() -> None:
    model = load_model("default")
    # energy apart from shape (issue 14): an energy model and a shape model
    assert model.record.family == "factorized"
    assert model.record.networks["energy"].preset == "energy-mlp"
    assert model.record.networks["shape"].preset == "calodit-layers"
    assert list(model.detectors) == ["par04-siw", "par04-scipb"]
    assert model.record.particle == "gamma"
    # K training detectors + the spare slot for adaptation
    assert model.preprocessing.conditions.n_slots == 3
    completed = model.record.training.completed_steps
    assert completed is not None
    assert completed >= 1000


def test_default_model_samples_with_its_distilled_student() -> None:
    """Issue 16: a 1-step consistency student of the shape network is the default sampler; the
    32-step teacher stays available, and the card's numbers of both ship with the model."""
    model = load_model("default")
    assert model.record.sampler == "cd"
    student = model.record.students["cd"]
    assert student.part == "shape"
    assert student.default_steps == 1
    assert SamplerSettings().describe(model) == {"sampler": "cd", "steps": 1, "student": "cd"}
    assert SamplerSettings("heun").describe(model)["steps"] == 32
    quality = model.record.quality
    assert quality is not None
    labels = list(quality.samplers)
    assert labels[0] == "cd (1 step, shipped)"
    assert any(label.startswith("heun (32 steps") for label in labels[1:])


@functools.cache
def _fifty_gev() -> tuple[np.ndarray, np.ndarray]:
    """Geant4's 50 GeV showers shipped for the demo, and eight from the shipped model (drawn
    once for the tests that compare them)."""
    ref = read_showers(reference_path())
    n = 8
    model = load_model("default")
    showers = model.generate(
        np.full(n, 5e4), np.full(n, np.pi / 2), np.zeros(n), "par04-siw", shower_seeds(3, range(n))
    )
    assert showers.shape == (n, ref.showers.shape[1])
    assert np.isfinite(showers).all()
    assert (showers >= 0).all()
    return ref.showers[np.isclose(ref.energies, 5e4)], showers


def test_default_model_hits_and_depth_follow_geant4() -> None:
    """Eight 50 GeV showers: Geant4's number of hit voxels (within 10 %) and the layer with the
    most of them (within two of the 45 layers). Counts, not energies: the energies of the
    shipped model's hit voxels are too spread (see the next test)."""
    g4, showers = _fifty_gev()
    hits_ratio = (showers > 0).sum(axis=1).mean() / (g4 > 0).sum(axis=1).mean()
    assert abs(hits_ratio - 1) < 0.1
    layers = g4.shape[1] // 45

    def z_max(x: np.ndarray) -> float:
        return float(np.argmax((x > 0).reshape(len(x), 45, layers).sum(axis=(0, 2))))

    assert abs(z_max(showers) - z_max(g4)) <= 2


def test_default_model_response_matches_geant4() -> None:
    """Eight 50 GeV showers carry Geant4's mean response E_tot / E_inc (within 10 %)."""
    g4, showers = _fifty_gev()
    assert abs(showers.sum(axis=1).mean() / g4.sum(axis=1).mean() - 1) < 0.1


def test_sample_default_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gen.h5"
    code = main(
        [
            "sample", "--model", "default", "--detector", "par04-scipb", "--energy", "10",
            "--theta", "1.57", "--phi", "0", "-n", "3", "--out", str(out),
            "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with h5py.File(out) as f:
        assert f.attrs["detector_name"] == "par04-scipb"
        assert f["showers"].shape == (3, 45 * 16 * 9)
        generator = json.loads(f.attrs["generator"])
    assert generator["model"] == "default"
    assert (generator["sampler"], generator["steps"]) == ("cd", 1)  # the shipped student


def test_demo_reference_points() -> None:
    ref = read_showers(reference_path())
    assert ref.attrs["detector_name"] == "par04-siw"
    energies, counts = np.unique(ref.energies, return_counts=True)
    np.testing.assert_allclose(energies, [1e4, 5e4, 1e5])
    assert (counts >= 200).all()
    np.testing.assert_allclose(ref.theta, np.pi / 2, atol=1e-3)


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The main job (~9 minutes): the shipped model against the shipped Geant4 showers."""
    code = main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "demo" / "report" / "metrics.json").read_text())
    assert metrics["conditions"]["mode"] == "points"
    assert (tmp_path / "demo" / "report" / "index.html").exists()
