"""The factorised pipeline: an energy model and a shape model in one model directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caloforge.cli import main
from caloforge.data.factorized import layer_energies
from caloforge.fastsim import load_model, shower_seeds
from caloforge.geometry.mesh import MeshSpec

MESH = MeshSpec(n_z=6, n_phi=4, n_r=3)
TINY = [
    "--family", "factorized",
    "--set", "model.embed_dim=16", "--set", "model.depth=1", "--set", "model.num_heads=2",
    "--set", "model.patch_size=[3,4,1]",
    "--set", "energy.model.hidden=16", "--set", "energy.model.depth=1",
    "--set", "train.log_every=1", "--set", "energy.train.log_every=1",
    "--set", "train.checkpoint_every=1", "--set", "energy.train.checkpoint_every=1",
    "--batch-size", "8", "--no-progress",
]  # fmt: skip

CALODIT_TINY = [
    "--set", "model.embed_dim=16", "--set", "model.depth=1", "--set", "model.num_heads=2",
    "--set", "model.patch_size=[3,4,3]", "--set", "train.checkpoint_every=1",
    "--batch-size", "8", "--no-progress",
]  # fmt: skip
DISTILL_TINY = [
    "--batch-size", "8", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
    "--no-progress",
]  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _file(make, path: Path, response, n: int = 80, seed: int = 0) -> Path:  # type: ignore[no-untyped-def]
    """Showers whose total is ``response(E) * E`` with a fixed longitudinal and radial shape."""
    rng = np.random.default_rng(seed)
    energies = 10 ** rng.uniform(3, 5, n)
    z = np.arange(MESH.n_z)[:, None, None]
    r = np.arange(MESH.n_r)[None, None, :]
    shape = np.exp(-0.5 * ((z - 2.0) / 1.2) ** 2 - r) * np.ones((1, MESH.n_phi, 1))
    shape = rng.gamma(20.0, shape.reshape(-1) / 20.0, (n, MESH.n_voxels))
    showers = shape / shape.sum(axis=1, keepdims=True) * (response(energies) * energies)[:, None]
    return make(
        path,
        mesh=MESH,
        energies=energies,
        showers=showers,
        theta=rng.uniform(0.87, 2.27, n),
        phi=rng.uniform(0, 2 * np.pi, n),
        seed=seed,
        attrs={"energy_spec_gev": "log:1:100", "theta_spec_rad": "0.87:2.27"},
    )


def _train(*args: str | Path) -> None:
    assert main(["train", *map(str, args)]) == 0


def test_the_pipeline_trains_resumes_and_samples(make_caloforge_file, tmp_path: Path) -> None:
    data = _file(make_caloforge_file, tmp_path / "a.h5", lambda e: np.full_like(e, 0.03))
    run = tmp_path / "run"
    common = ["--data", data, "--out", run, *TINY]
    _train(*common, "--steps", "2", "--set", "energy.train.steps=3")
    record = json.loads((run / "model.json").read_text())
    assert record["family"] == "factorized"
    assert record["training"]["part_steps"] == {"energy": 3, "shape": 2}
    assert sorted(p.name for p in run.glob("*.safetensors")) == [
        "energy.safetensors",
        "shape.safetensors",
    ]
    assert (run / "energy" / "metrics.csv").exists()
    assert (run / "shape" / "checkpoints").is_dir()

    _train(*common, "--steps", "3", "--resume", "--part", "shape")
    record = json.loads((run / "model.json").read_text())
    assert record["training"]["part_steps"] == {"energy": 3, "shape": 3}

    model = load_model(run)
    n = 12
    energies = np.full(n, 1e4)
    showers = model.generate(
        energies, np.full(n, 1.5), np.zeros(n), "par04-siw", shower_seeds(1, range(n)), steps=4
    )
    assert showers.shape == (n, MESH.n_voxels)
    assert ((showers == 0) | (showers >= 0.5e-3)).all()  # the threshold
    # a shower does not depend on its batch
    again = model.generate(
        energies[:3], np.full(3, 1.5), np.zeros(3), "par04-siw", shower_seeds(1, range(3)), steps=4
    )
    np.testing.assert_allclose(again, showers[:3], rtol=1e-5)
    # the CLI samples it as any model
    out = tmp_path / "gen.h5"
    code = main([
        "sample", "--model", str(run), "--detector", "par04-siw", "--energy", "10",
        "-n", "4", "--sampler-steps", "2", "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert code == 0


def test_one_part_alone_leaves_a_loadable_model(make_caloforge_file, tmp_path: Path) -> None:
    data = _file(make_caloforge_file, tmp_path / "a.h5", lambda e: np.full_like(e, 0.03))
    run = tmp_path / "run"
    _train("--data", data, "--out", run, *TINY, "--part", "energy", "--set", "energy.train.steps=2")  # fmt: skip
    record = json.loads((run / "model.json").read_text())
    assert record["training"]["part_steps"] == {"energy": 2}
    assert (run / "shape.safetensors").exists()  # its initial weights
    load_model(run)
    assert main(["train", "--data", str(data), "--out", str(run), *TINY, "--resume", "--part", "shower"]) == 1  # fmt: skip


def test_a_trained_energy_model_follows_its_energy_condition(
    make_caloforge_file, tmp_path: Path
) -> None:
    """The response rises from 0.02 at 1 GeV to 0.04 at 100 GeV; 1500 steps of the energy
    model (about 30 s; 600 learn it without occupancy bits, not with them) learn it, and every
    generated layer keeps its energy."""

    def response(e: np.ndarray) -> np.ndarray:
        return 0.02 + 0.01 * np.log10(e / 1e3)

    data = _file(make_caloforge_file, tmp_path / "a.h5", response, n=400)
    run = tmp_path / "run"
    _train(
        "--data", data, "--out", run, *TINY, "--part", "energy",
        "--set", "energy.train.steps=1500", "--set", "energy.train.batch_size=64",
        "--set", "energy.train.checkpoint_every=1500", "--set", "energy.train.warmup_steps=20",
        "--set", "energy.model.hidden=64", "--set", "energy.model.depth=2",
    )  # fmt: skip
    model = load_model(run)
    n = 64
    for gev in (1.5, 60.0):
        energies = np.full(n, gev * 1e3)
        args = (energies, np.full(n, 1.5), np.zeros(n), "par04-siw", shower_seeds(2, range(n)))
        showers = model.generate(*args, steps=16)
        generated = float(np.median(showers.sum(axis=1) / energies))
        assert generated == pytest.approx(float(response(energies[:1])[0]), rel=0.15), gev
        # the layer energies are the energy model's: all the shape model does is share them,
        # and the energy model alone draws the same ones for the same seeds
        layers = layer_energies(showers, MESH.shape)
        assert (layers.sum(axis=1) > 0).all()
        np.testing.assert_allclose(layers, model.generate_layers(*args, steps=16), rtol=1e-4, atol=1e-3)  # fmt: skip


def test_training_one_part_keeps_the_other_parts_checksum(
    make_caloforge_file, tmp_path: Path
) -> None:
    data = _file(make_caloforge_file, tmp_path / "a.h5", lambda e: np.full_like(e, 0.03))
    run = tmp_path / "run"
    _train("--data", data, "--out", run, *TINY, "--part", "energy", "--set", "energy.train.steps=2")  # fmt: skip
    energy = json.loads((run / "model.json").read_text())["networks"]["energy"]["sha256"]
    _train("--data", data, "--out", run, *TINY, "--resume", "--part", "shape", "--steps", "2")
    record = json.loads((run / "model.json").read_text())
    assert record["networks"]["energy"]["sha256"] == energy
    assert record["training"]["part_steps"] == {"energy": 2, "shape": 2}
    load_model(run)  # both checksums verified
