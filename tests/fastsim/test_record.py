"""The model directory format: the typed record, its versions and the model families."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from caloforge.errors import DataError
from caloforge.fastsim import load_model
from caloforge.fastsim.families import FAMILIES, family_of
from caloforge.fastsim.model import SamplerSettings, copy_model, default_model_dir
from caloforge.fastsim.record import FORMAT_VERSION, META_FILE, ModelRecord


def _shipped() -> dict:
    return json.loads((default_model_dir() / META_FILE).read_text())


@pytest.fixture
def calodit(teachers: dict[str, Path]) -> Path:
    """A model of the one-network family (a tiny trained one: the shipped default may be of
    another family)."""
    return teachers["calodit"]


def _record(model: Path) -> dict:
    return json.loads((model / META_FILE).read_text())


def test_the_record_round_trips() -> None:
    data = _shipped()
    record = ModelRecord.from_dict(data)
    assert record.to_dict() == data
    assert data["format_version"] == FORMAT_VERSION
    assert record.family in FAMILIES
    assert family_of(record).parts == tuple(record.networks)


def test_version_1_records_are_read_as_calodit(calodit: Path, tmp_path: Path) -> None:
    """A model written before the record was typed (one network, fields at the top level)."""
    data = _record(calodit)
    network = data["networks"]["shower"]
    v1 = {k: v for k, v in data.items() if k not in ("format_version", "family", "networks")}
    v1.update(preset=network["preset"], model=network["options"], sigma_data=network["sigma_data"])
    copy_model(calodit, tmp_path)
    (tmp_path / META_FILE).write_text(json.dumps(v1))
    old, new = load_model(tmp_path), load_model(calodit)
    # version 1 recorded no weight checksums
    unchecked = {k: replace(n, sha256=None) for k, n in new.record.networks.items()}
    assert old.record == replace(new.record, networks=unchecked)
    for a, b in zip(old.net.state_dict().values(), new.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other"}, "not a caloforge model"),
        ({"format_version": 99}, "format version 99"),
        ({"family": "flow-of-the-future"}, "unknown model family"),
        ({"networks": {}}, "a calodit model has the networks shower"),
        ({"preprocessing": {}}, "malformed model description"),
    ],
)
def test_bad_records_are_refused(calodit: Path, tmp_path: Path, change: dict, message: str) -> None:
    copy_model(calodit, tmp_path)
    (tmp_path / META_FILE).write_text(json.dumps({**_record(calodit), **change}))
    with pytest.raises(DataError, match=message):
        load_model(tmp_path)


def test_missing_or_truncated_weights_are_one_clear_error(calodit: Path, tmp_path: Path) -> None:
    copy_model(calodit, tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(DataError, match="is damaged"):
        load_model(tmp_path)
    record = _record(tmp_path)
    del record["networks"]["shower"]["sha256"]  # a record without checksums (older writers)
    (tmp_path / META_FILE).write_text(json.dumps(record))
    with pytest.raises(DataError, match="cannot load the weights"):
        load_model(tmp_path)
    weights.unlink()
    with pytest.raises(DataError, match="weights of its shower network"):
        load_model(tmp_path)


def test_saved_weights_are_the_models_and_the_record_says_when(
    calodit: Path, tmp_path: Path
) -> None:
    model = load_model(calodit)
    later = model.with_trained("shower", model.net, 12345)
    later.save(tmp_path)
    again = load_model(tmp_path)
    expected = replace(model.record, training=replace(model.record.training, completed_steps=12345))
    assert again.record == replace(expected, networks=again.record.networks)
    shower = again.record.networks["shower"]
    assert shower == model.record.networks["shower"]  # the same weights, the same checksum
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


def test_saved_weights_carry_a_checksum_that_is_checked(calodit: Path, tmp_path: Path) -> None:
    load_model(calodit).save(tmp_path)
    record = json.loads((tmp_path / META_FILE).read_text())
    assert len(record["networks"]["shower"]["sha256"]) == 64
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # a flipped bit inside a tensor: the file still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match="damaged"):
        load_model(tmp_path)


@pytest.mark.parametrize(("default_steps", "resolved"), [(None, 2), (1, 1), (2, 2)])
def test_a_students_default_steps(
    students: dict[str, Path], tmp_path: Path, default_steps: int | None, resolved: int
) -> None:
    copy_model(students["factorized"], tmp_path)
    data = _record(tmp_path)
    if default_steps is not None:
        data["students"]["cd"]["default_steps"] = default_steps
    (tmp_path / META_FILE).write_text(json.dumps(data))
    model = load_model(tmp_path)
    assert model.record.to_dict()["students"] == data["students"]  # round trip
    assert SamplerSettings("cd").resolve(model) == ("cd", resolved)
    assert SamplerSettings("cd", steps=1).resolve(model) == ("cd", 1)


@pytest.mark.parametrize("default_steps", [0, 3])
def test_default_steps_beyond_the_students_levels_are_refused(
    students: dict[str, Path], tmp_path: Path, default_steps: int
) -> None:
    copy_model(students["factorized"], tmp_path)
    data = _record(tmp_path)
    data["students"]["cd"]["default_steps"] = default_steps
    (tmp_path / META_FILE).write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"default_steps must lie in 1\.\.2"):
        load_model(tmp_path)
