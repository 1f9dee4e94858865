"""``caloforge train --init MODEL``: a run that starts from a trained model's weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import TINY, _file

from caloforge.cli import main
from caloforge.fastsim import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STILL = ["--set", "train.lr=1e-12", "--set", "train.lr_min=0", "--set", "energy.train.lr=1e-12", "--set", "energy.train.lr_min=0"]  # fmt: skip
"""Learning rates that leave the weights where they start."""


def _train(*args: str | Path) -> int:
    return main(["train", *map(str, args)])


def test_a_run_starts_from_the_models_weights_and_preprocessing(
    teachers: dict[str, Path], make_caloforge_file, tmp_path: Path
) -> None:
    parent_dir = teachers["factorized"]
    # other showers: fitting on them would give other transforms and another sigma_data
    data = _file(make_caloforge_file, tmp_path / "b.h5", lambda e: np.full_like(e, 0.05), seed=7)
    run = tmp_path / "run"
    common = ["--data", data, "--out", run, *TINY, "--steps", "2", "--set", "energy.train.steps=2"]
    assert _train(*common, *STILL, "--init", parent_dir) == 0

    parent, child = load_model(parent_dir), load_model(run)
    assert child.preprocessing.to_dict() == parent.preprocessing.to_dict()
    for part, net in child.networks.items():
        assert child.record.networks[part].sigma_data == parent.record.networks[part].sigma_data
        for (name, w), w0 in zip(net.state_dict().items(), parent.networks[part].state_dict().values(), strict=True):  # fmt: skip
            torch.testing.assert_close(w, w0, atol=1e-6, rtol=0, msg=f"{part} {name}")
    init_from = json.loads((run / "model.json").read_text())["init_from"]
    assert init_from["model"] == str(parent_dir)
    assert init_from["steps"] == {"energy": 2, "shape": 2}

    # without the tiny learning rates the weights move away from the parent's
    moved = tmp_path / "moved"
    assert _train(*common[:2], "--out", moved, *common[4:], "--init", parent_dir) == 0
    w = load_model(moved).networks["shape"].state_dict()
    w0 = parent.networks["shape"].state_dict()
    assert any(not torch.equal(w[k], w0[k]) for k in w)

    # a resumed run keeps its starting model
    assert _train(*common, *STILL, "--steps", "3", "--resume") == 1
    assert _train(*common, *STILL, "--steps", "3", "--resume", "--init", parent_dir) == 0
    assert load_model(run).record.training.part_steps["shape"] == 3


def test_a_starting_model_that_does_not_fit_is_refused(
    teachers: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = teachers["data"]
    base = ["--data", data, *TINY, "--steps", "1", "--set", "energy.train.steps=1"]
    # another shape network
    code = _train(*base, "--out", tmp_path / "a", "--set", "model.embed_dim=32", "--init", teachers["factorized"])  # fmt: skip
    assert code == 1
    assert "the shape network of" in capsys.readouterr().err
    # another shape code
    code = _train(*base, "--out", tmp_path / "d", "--set", "voxel_values=log-energy", "--init", teachers["factorized"])  # fmt: skip
    assert code == 1
    assert "holds voxel values 'fraction'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    # another family
    assert _train(*base, "--out", tmp_path / "b", "--init", teachers["calodit"]) == 1
    assert "is a calodit model" in capsys.readouterr().err
    # no model there
    assert _train(*base, "--out", tmp_path / "c", "--init", tmp_path / "nothing") == 1
    assert "no trained model there" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "c").exists()


def test_a_run_refuses_to_resume_from_a_changed_starting_model(
    teachers: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "parent"
    shutil.copytree(teachers["factorized"], parent)
    run = tmp_path / "run"
    common = ["--data", teachers["data"], "--out", run, *TINY, "--set", "energy.train.steps=1"]
    assert _train(*common, "--steps", "1", "--init", parent) == 0
    record = json.loads((parent / "model.json").read_text())
    record["training"]["steps"] += 1
    (parent / "model.json").write_text(json.dumps(record))
    assert _train(*common, "--steps", "2", "--resume", "--init", parent) == 1
    assert "has changed since the run" in capsys.readouterr().err


def test_a_run_from_a_global_code_gives_the_energy_model_a_conditional_one(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    """``energy.conditional`` from a model without it: the energy code is fitted per detector
    and energy, the energy network starts afresh, the shape network and its conditions are
    the parent's."""
    data = teachers["data"]
    base = ["--data", data, *TINY, "--set", "energy.train.steps=2"]
    parent_dir = tmp_path / "global"
    assert _train(*base, "--steps", "2", "--out", parent_dir, "--set", "energy.conditional=false") == 0  # fmt: skip
    run = tmp_path / "run"
    assert _train(*base, *STILL, "--steps", "2", "--out", run, "--init", parent_dir, "--set", "energy.conditional=true") == 0  # fmt: skip
    parent, child = load_model(parent_dir), load_model(run)
    p_layers, c_layers = parent.preprocessing.layers, child.preprocessing.layers
    assert p_layers is not None
    assert c_layers is not None
    assert not p_layers.conditional
    assert c_layers.conditional
    assert (c_layers.mean, c_layers.std, c_layers.log_mean) == (p_layers.mean, p_layers.std, p_layers.log_mean)  # fmt: skip
    assert child.preprocessing.fractions == parent.preprocessing.fractions
    w, w0 = child.networks["shape"].state_dict(), parent.networks["shape"].state_dict()
    assert all(torch.allclose(w[k], w0[k], atol=1e-6) for k in w)
    e, e0 = child.networks["energy"].state_dict(), parent.networks["energy"].state_dict()
    assert any(e[k].shape == e0[k].shape and not torch.allclose(e[k], e0[k]) for k in e)
    assert json.loads((run / "model.json").read_text())["init_from"]["fresh"] == ["energy"]
    showers = child.generate(np.full(3, 5e3), np.full(3, 1.5), np.zeros(3), next(iter(child.detectors)), [1, 2, 3])  # fmt: skip
    assert np.isfinite(showers).all()


def test_a_shape_run_from_a_conditional_model_keeps_its_energy_network(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    """The default's stages: ``--part shape --init`` a model with a conditional code trains the
    shape network further and keeps the energy network and its code as they were."""
    run = tmp_path / "run"
    args = ["--data", teachers["data"], *TINY, "--steps", "2", "--out", run, "--part", "shape"]
    assert _train(*args, "--init", teachers["factorized"], "--set", "energy.conditional=true") == 0  # fmt: skip
    parent, child = load_model(teachers["factorized"]), load_model(run)
    assert child.preprocessing.to_dict() == parent.preprocessing.to_dict()
    e, e0 = child.networks["energy"].state_dict(), parent.networks["energy"].state_dict()
    assert all(torch.equal(e[k], e0[k]) for k in e)
    w, w0 = child.networks["shape"].state_dict(), parent.networks["shape"].state_dict()
    assert any(not torch.equal(w[k], w0[k]) for k in w)
    assert "fresh" not in json.loads((run / "model.json").read_text())["init_from"]
