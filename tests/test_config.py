"""The run configuration: YAML, --set overrides, unknown keys and wrong types rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from caloforge.config import RunConfig, TrainConfig, config_to_dict, load_config
from caloforge.errors import SpecError


def test_defaults_yaml_and_overrides(tmp_path: Path) -> None:
    assert load_config(RunConfig) == RunConfig()
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: 1.0e-4\n  betas: [0.9, 0.99]\nmodel:\n  depth: 2\n")
    config = load_config(
        RunConfig, path, ["train.steps=7", "diffusion.sampler=euler", "train.lr=2e-4"]
    )
    assert config.train == TrainConfig(lr=2e-4, betas=(0.9, 0.99), steps=7)
    assert config.diffusion.sampler == "euler"
    assert config.model == {"depth": 2}
    # the resolved config round-trips through YAML
    again = load_config(RunConfig, None, [])
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(yaml.safe_dump(config_to_dict(config)))
    assert load_config(RunConfig, dumped) == config
    assert again == RunConfig()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lrr=1"], "unknown setting"),
        (["nope.x=1"], "unknown setting"),
        (["train.steps=1.5"], "integer"),
        (["train.lr=fast"], "number"),
        (["train.betas=[0.9]"], "2 values"),
        (["train"], "section.key=value"),
        (["train.val_every=0"], "train.val_every = 0 is out of range"),
        (["train.batch_size=0"], "train.batch_size"),
        (["train.ema_decay=1"], "train.ema_decay"),
        (
            ["train.keep_every=250", "train.checkpoint_every=100"],
            "train.keep_every = 250 would keep no checkpoint",
        ),
        (["diffusion.p_std=0"], "diffusion.p_std"),
        (["diffusion.sigma_min=100"], "diffusion.sigma_min"),
        (["diffusion.s_churn=-1"], "diffusion.s_churn"),
        (["voxel_values=energy"], "voxel_values = 'energy' is out of range"),
        (["voxel_values=log-energy", "occupancy=false"], "voxel_values"),
    ],
)
def test_bad_settings(overrides: list[str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_config(RunConfig, None, overrides)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_config(RunConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(SpecError, match="YAML"):
        load_config(RunConfig, bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="mapping"):
        load_config(RunConfig, bad)
