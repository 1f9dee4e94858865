"""``caloforge adapt``: a pretrained model fitted to a new detector through its spare slot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import MESH, _file

from caloforge.cli import main
from caloforge.errors import DataError
from caloforge.fastsim import load_model, shower_seeds
from caloforge.fastsim.adapt import COND_WEIGHT, extend_model, trainable

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_ADAPT = ["--steps", "2", "--patience", "0", "--no-progress"]


def _run(*args: str | Path) -> int:
    return main([*map(str, args)])


@pytest.fixture(scope="module")
def scipb(make_caloforge_file, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A tiny par04-scipb file (a detector the tiny teachers never saw)."""
    path = tmp_path_factory.mktemp("scipb") / "scipb.h5"
    return _named(_file(make_caloforge_file, path, lambda e: np.full_like(e, 0.02), seed=3), "par04-scipb")  # fmt: skip


def _named(path: Path, detector: str) -> Path:
    """``path`` with its showers said to be of ``detector``."""
    import h5py

    with h5py.File(path, "r+") as f:
        f.attrs["detector_name"] = detector
    return path


def test_the_new_detector_takes_the_spare_slot_and_a_new_one_is_made(teachers) -> None:  # type: ignore[no-untyped-def]
    parent = load_model(teachers["factorized"])
    child = extend_model(parent, "par04-scipb", {"detector_name": "par04-scipb"})
    assert child.preprocessing.conditions.detectors == ("par04-siw", "par04-scipb")
    assert child.preprocessing.conditions.n_slots == 3
    for part, net in child.networks.items():
        old, new = parent.networks[part].state_dict(), net.state_dict()
        w_old, w_new = old[COND_WEIGHT], new[COND_WEIGHT]
        assert w_new.shape[1] == w_old.shape[1] + 1
        # columns up to the old spare slot are the parent's, the new spare slot copies it, the
        # rest (the shape model's layer logits) shift by one
        torch.testing.assert_close(w_new[:, :6], w_old[:, :6])
        torch.testing.assert_close(w_new[:, 6], w_old[:, 5])
        torch.testing.assert_close(w_new[:, 7:], w_old[:, 6:])
        for key in old:
            if key != COND_WEIGHT:
                torch.testing.assert_close(new[key], old[key])
    # the known detector's showers are the parent's, shower for shower
    n = 4
    e, theta, phi = np.full(n, 2e4), np.full(n, 1.5), np.zeros(n)
    seeds = shower_seeds(2, range(n))
    np.testing.assert_allclose(
        child.generate(e, theta, phi, "par04-siw", seeds, steps=3),
        parent.generate(e, theta, phi, "par04-siw", seeds, steps=3),
        rtol=1e-5,
        atol=1e-6,
    )


def test_strategies_train_fewer_weights(teachers) -> None:  # type: ignore[no-untyped-def]
    net = load_model(teachers["calodit"]).networks["shower"]
    counts = {s: trainable(net, s) for s in ("full", "bias", "frozen")}
    assert counts["full"] == sum(p.numel() for p in net.parameters())
    assert 0 < counts["frozen"] < counts["full"]
    assert 0 < counts["bias"] < counts["full"]
    trainable(net, "bias")
    embeddings = ("backbone.cond_embedder.", "backbone.noise_embedder.")
    for name, p in net.named_parameters():
        assert p.requires_grad == (name.endswith(".bias") or name.startswith(embeddings)), name


def test_adapt_resumes_samples_both_detectors_and_names_its_parent(
    teachers, scipb, make_caloforge_file, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "adapted"
    args = ["adapt", "--model", teachers["factorized"], "--data", scipb, "--out", out]
    assert _run(*args, "--detector", "par04-scipb", *TINY_ADAPT) == 0
    record = json.loads((out / "model.json").read_text())
    assert record["preprocessing"]["conditions"]["detectors"] == ["par04-siw", "par04-scipb"]
    assert record["adapted_from"]["detector"] == "par04-scipb"
    assert record["adapted_from"]["data"] == [str(scipb)]
    assert record["training"]["part_steps"] == {"energy": 2, "shape": 2}
    card = (out / "MODEL_CARD.md").read_text()  # names its parent and its data
    assert f"adapted from {teachers['factorized']}" in card
    assert f"`{scipb}`" in card
    assert "strategy `full`" in card
    assert f"caloforge sample --model {out} --detector par04-scipb" in card
    assert _run(*args, *TINY_ADAPT) == 1  # a second run needs --resume
    assert _run(*args, "--steps", "3", "--patience", "0", "--resume", "--no-progress") == 0
    assert json.loads((out / "model.json").read_text())["training"]["part_steps"] == {"energy": 3, "shape": 3}  # fmt: skip
    model = load_model(out)
    n = 3
    for detector in ("par04-siw", "par04-scipb"):
        showers = model.generate(np.full(n, 1e4), np.full(n, 1.5), np.zeros(n), detector, shower_seeds(1, range(n)), steps=2)  # fmt: skip
        assert np.isfinite(showers).all()
    # and again, to a third detector: the child has its own spare slot
    third = _named(_file(make_caloforge_file, tmp_path / "pbwo4.h5", lambda e: np.full_like(e, 0.9), seed=4), "pbwo4")  # fmt: skip
    assert _run("adapt", "--model", out, "--data", third, "--out", tmp_path / "again", *TINY_ADAPT) == 0  # fmt: skip
    again = load_model(tmp_path / "again").preprocessing
    assert again.conditions.detectors == ("par04-siw", "par04-scipb", "pbwo4")
    # each new detector's layer code has its own statistics (a response of 0.9 on a code fitted
    # to sampling calorimeters of 0.03); the known ones keep theirs
    parent_fit = load_model(teachers["factorized"]).preprocessing.layers.code_fit
    assert len(again.layers.code_fit) == 3
    assert again.layers.code_fit[: len(parent_fit)] == parent_fit


def test_adapt_refuses_what_it_cannot_use(
    teachers, scipb, make_caloforge_file, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    base = ["adapt", "--model", teachers["calodit"], "--out", tmp_path / "x", *TINY_ADAPT]
    assert _run(*base, "--data", teachers["data"]) == 1  # a detector the parent knows
    assert "knows par04-siw already" in capsys.readouterr().err
    assert _run(*base, "--data", scipb, "--detector", "pbwo4") == 1
    assert "not pbwo4" in capsys.readouterr().err
    assert _run(*base, "--data", scipb, "--strategy", "lora") == 1
    assert "--strategy" in capsys.readouterr().err
    other_mesh = make_caloforge_file(tmp_path / "m.h5", energies=np.full(8, 1e4), theta=np.full(8, 1.5), attrs={"detector_name": "par04-scipb", "energy_spec_gev": "log:1:100", "theta_spec_rad": "0.87:2.27"})  # fmt: skip
    assert _run(*base, "--data", other_mesh) == 1
    assert "mesh" in capsys.readouterr().err
    high = make_caloforge_file(tmp_path / "h.h5", mesh=MESH, energies=np.full(8, 5e5), theta=np.full(8, 1.5), attrs={"detector_name": "par04-scipb", "energy_spec_gev": "log:1:100", "theta_spec_rad": "0.87:2.27"})  # fmt: skip
    assert _run(*base, "--data", high) == 1
    assert "leave the trained range" in capsys.readouterr().err
    hot = _named(_file(make_caloforge_file, tmp_path / "hot.h5", lambda e: np.full_like(e, 2.0), n=16), "par04-scipb")  # fmt: skip
    factorized = ["adapt", "--model", teachers["factorized"], "--out", tmp_path / "x", *TINY_ADAPT]
    assert _run(*factorized, "--data", hot) == 1  # a response beyond the layer code's scale
    assert "response E_tot/E_inc reaches 2" in capsys.readouterr().err
    assert not (tmp_path / "x" / "model.json").exists()


def test_an_adapted_model_samples_evaluates_distils_and_exports(
    teachers, scipb, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from test_pipeline import DISTILL_TINY

    adapted = tmp_path / "adapted"
    assert _run("adapt", "--model", teachers["factorized"], "--data", scipb, "--out", adapted, *TINY_ADAPT) == 0  # fmt: skip
    generated = tmp_path / "gen.h5"
    assert _run("sample", "--model", adapted, "--detector", "par04-scipb", "--energy", "log:1:100",
                "--theta", "0.87:2.27", "--phi", "0:6.2832", "-n", "40", "--sampler-steps", "2",
                "--out", generated, "--no-progress") == 0  # fmt: skip
    assert _run("evaluate", "--reference", scipb, "--generated", generated, "--out", tmp_path / "report", "--no-progress") == 0  # fmt: skip
    assert (tmp_path / "report" / "metrics.json").exists()
    assert _run("distill", "--model", adapted, "--data", scipb, "--out", adapted, "--steps", "2", *DISTILL_TINY) == 0  # fmt: skip
    assert "cd" in load_model(adapted).students
    pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "adapted.onnx"
    capsys.readouterr()
    assert _run("export", "--onnx", adapted, "--sampler", "cd", "--sampler-steps", "1", "--out", onnx_file) == 0  # fmt: skip
    assert '"par04-scipb"' in capsys.readouterr().out  # the new detector has its slot


def test_replay_trains_a_known_detector_beside_the_new_one(
    teachers, scipb, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Adapting again moves the weights every detector shares: ``--replay`` keeps the known
    detectors' showers in the training, in their own slots."""
    base = ["adapt", "--model", teachers["factorized"], "--data", scipb, *TINY_ADAPT]
    assert _run(*base, "--out", tmp_path / "alone") == 0
    assert _run(*base, "--out", tmp_path / "kept", "--replay", teachers["data"]) == 0
    record = json.loads((tmp_path / "kept" / "model.json").read_text())
    assert record["adapted_from"]["replay"] == [str(teachers["data"])]
    files = {f["path"]: f["detector"] for f in record["training"]["files"]}
    assert files == {str(scipb): "par04-scipb", str(teachers["data"]): "par04-siw"}

    def trained_on(run: str) -> int:
        card = (tmp_path / run / "MODEL_CARD.md").read_text()
        return int(card.split(" showers trained on")[0].rsplit("; ", 1)[1])

    assert trained_on("kept") > trained_on("alone")
    assert "replayed" in (tmp_path / "kept" / "MODEL_CARD.md").read_text()
    # the replayed detector keeps its code statistics; the new one gets its own
    parent_fit = load_model(teachers["factorized"]).preprocessing.layers.code_fit
    kept_fit = load_model(tmp_path / "kept").preprocessing.layers.code_fit
    assert kept_fit[: len(parent_fit)] == parent_fit
    assert kept_fit == load_model(tmp_path / "alone").preprocessing.layers.code_fit
    # replay takes only detectors the parent knows, never the new one
    assert _run(*base, "--out", tmp_path / "x", "--replay", scipb) == 1
    assert "replay takes showers of the parent's detectors (par04-siw)" in capsys.readouterr().err
    # a resumed run keeps its replay
    assert _run(*base, "--out", tmp_path / "kept", "--resume") == 1
    assert "replay differ" in capsys.readouterr().err


def test_a_resumed_adaptation_keeps_the_network_it_finished(
    teachers, scipb, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Killed while the shape network trained, after the energy network had finished: the
    resumed run keeps the energy network's weights and its record of them."""
    import shutil

    out = tmp_path / "adapted"
    args = ["adapt", "--model", teachers["factorized"], "--data", scipb, "--out", out, *TINY_ADAPT]
    assert _run(*args) == 0
    energy = load_model(out).networks["energy"].state_dict()
    shutil.rmtree(out / "adapt-shape" / "checkpoints")  # the shape network had not checkpointed
    assert _run(*args, "--resume") == 0
    resumed = load_model(out)  # the record's checksums match the weights on disk
    for key, value in resumed.networks["energy"].state_dict().items():
        torch.testing.assert_close(value, energy[key])
    assert resumed.record.training.part_steps == {"energy": 2, "shape": 2}


def test_a_parent_without_a_spare_slot_is_refused(teachers, scipb, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Weights with one condition column per detector and none spare (e.g. converted from
    another tool) cannot give a new detector a slot: refused in one line, nothing written."""
    import shutil

    from safetensors.torch import load_file, save_file

    from caloforge.atomic import file_sha256

    parent = tmp_path / "parent"
    shutil.copytree(teachers["factorized"], parent)
    record = json.loads((parent / "model.json").read_text())
    for network in record["networks"].values():
        weights = parent / network["weights"]
        state = load_file(weights)
        state[COND_WEIGHT] = state[COND_WEIGHT][:, :-1].contiguous()  # no spare column
        save_file(state, weights)
        network["sha256"] = file_sha256(weights)  # a consistent record: only the width is wrong
    (parent / "model.json").write_text(json.dumps(record))
    out = tmp_path / "x"
    assert _run("adapt", "--model", parent, "--data", scipb, "--out", out, *TINY_ADAPT) == 1
    err = capsys.readouterr().err
    assert "no spare slot" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert not out.exists() or not any(out.iterdir())
    for network in record["networks"].values():  # another width: said as such
        weights = parent / network["weights"]
        state = load_file(weights)
        state[COND_WEIGHT] = state[COND_WEIGHT][:, :-1].contiguous()
        save_file(state, weights)
        network["sha256"] = file_sha256(weights)
    (parent / "model.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="condition columns, not the"):
        load_model(parent)
