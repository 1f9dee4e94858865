"""``caloforge distill``: a consistency student in the model directory, as a sampler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import DISTILL_TINY, MESH

from caloforge.cli import main
from caloforge.data.factorized import layer_energies
from caloforge.errors import SpecError
from caloforge.fastsim import load_model, shower_seeds
from caloforge.fastsim.distill import kept_steps, student_at
from caloforge.fastsim.model import SamplerSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(*args: str | Path) -> int:
    return main([*map(str, args)])


@pytest.mark.parametrize("family", ["factorized", "calodit"])
@pytest.mark.parametrize("method", ["cd", "ect"])
def test_distill_resumes_and_the_student_samples(
    teachers, tmp_path: Path, family: str, method: str
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "student"
    args = ["distill", "--model", teachers[family], "--data", teachers["data"], "--out", out]
    assert _run(*args, "--method", method, "--steps", "2", *DISTILL_TINY) == 0
    record = json.loads((out / "model.json").read_text())
    student = record["students"][method]
    assert student["method"] == method
    assert student["trained_steps"] == 2
    assert student["part"] == ("shape" if family == "factorized" else "shower")
    assert (out / student["network"]["weights"]).exists()
    # the teacher's own networks are copied unchanged
    teacher = json.loads((teachers[family] / "model.json").read_text())
    assert record["networks"] == teacher["networks"]
    assert "students" not in teacher

    # a second run of the same student is refused unless resumed; resumed, it goes on
    assert _run(*args, "--method", method, "--steps", "4", *DISTILL_TINY) != 0
    assert _run(*args, "--method", method, "--steps", "4", "--resume", *DISTILL_TINY) == 0
    rows = (out / f"distill-{method}" / "metrics.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3, 4]
    assert json.loads((out / "model.json").read_text())["students"][method]["trained_steps"] == 4

    model = load_model(out)
    n = 6
    e = np.full(n, 1e4)
    seeds = shower_seeds(3, range(n))
    for steps in (1, 2):
        showers = model.generate(e, np.full(n, 1.5), np.zeros(n), "par04-siw", seeds, settings=SamplerSettings(method, steps))  # fmt: skip
        assert showers.shape == (n, MESH.n_voxels)
        assert np.isfinite(showers).all()
        again = model.generate(e[:2], np.full(2, 1.5), np.zeros(2), "par04-siw", seeds[:2], settings=SamplerSettings(method, steps))  # fmt: skip
        np.testing.assert_array_equal(again, showers[:2])  # each shower its own seed
        if family == "factorized":  # the student shares out the energy model's layer energies
            teacher_layers = layer_energies(
                model.generate(e, np.full(n, 1.5), np.zeros(n), "par04-siw", seeds), MESH.shape
            )
            np.testing.assert_allclose(layer_energies(showers, MESH.shape), teacher_layers, rtol=1e-4)  # fmt: skip
    with pytest.raises(SpecError, match="at most 2 steps"):
        model.generate(e, np.full(n, 1.5), np.zeros(n), "par04-siw", seeds, settings=SamplerSettings(method, 3))  # fmt: skip

    # the command line: sample with the student
    h5 = tmp_path / "s.h5"
    assert _run("sample", "--model", out, "--detector", "par04-siw", "--energy", "10", "-n", "4", "--sampler", method, "--out", h5, "--no-progress") == 0  # fmt: skip


def test_the_student_can_become_the_default_sampler(teachers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m"
    args = ["distill", "--model", teachers["factorized"], "--data", teachers["data"], "--out", out]
    assert _run(*args, "--steps", "1", "--make-default", *DISTILL_TINY) == 0
    model = load_model(out)
    assert model.record.sampler == "cd"
    assert SamplerSettings().describe(model)["sampler"] == "cd"
    assert SamplerSettings().describe(model)["steps"] == 2
    assert SamplerSettings("heun").describe(model) == {"sampler": "heun", "steps": 32}


def test_distill_refuses_what_it_cannot_use(
    teachers, tmp_path: Path, make_caloforge_file, capsys
) -> None:  # type: ignore[no-untyped-def]
    base = ["distill", "--model", teachers["calodit"], "--out", tmp_path / "x", *DISTILL_TINY]
    # another detector than the teacher's
    spec = {"energy_spec_gev": "log:1:100", "theta_spec_rad": "0.87:2.27"}
    kwargs = {"mesh": MESH, "energies": np.full(8, 1e4), "theta": np.full(8, 1.5)}
    other = make_caloforge_file(tmp_path / "o.h5", **kwargs, attrs={**spec, "detector_name": "par04-scipb"})  # fmt: skip
    assert _run(*base, "--data", other) == 1
    assert "not trained on par04-scipb" in capsys.readouterr().err
    # energies outside the teacher's range
    high = make_caloforge_file(tmp_path / "h.h5", **{**kwargs, "energies": np.full(8, 5e5)}, attrs=spec)  # fmt: skip
    assert _run(*base, "--data", high) == 1
    assert "leave the trained range" in capsys.readouterr().err
    assert _run(*base, "--data", teachers["data"], "--method", "nope") != 0
    assert "method" in capsys.readouterr().err
    # a name that would shadow a diffusion sampler, or is not a file name
    assert _run(*base, "--data", teachers["data"], "--name", "heun") == 1
    assert "--name" in capsys.readouterr().err
    assert _run(*base, "--data", teachers["data"], "--name", "../x") == 1
    capsys.readouterr()
    # a resumed run keeps its data
    assert _run(*base, "--data", teachers["data"], "--steps", "1") == 0
    assert (
        _run(*base, "--data", teachers["data"], teachers["data"], "--steps", "2", "--resume") == 1
    )
    assert "keeps its data" in capsys.readouterr().err
    # into a folder holding another model
    assert _run(*base[:3], "--out", teachers["factorized"], "--data", teachers["data"]) != 0
    assert "another model" in capsys.readouterr().err


def test_a_kept_checkpoint_gives_its_student_to_a_model_directory(teachers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m"
    args = ["distill", "--model", teachers["factorized"], "--data", teachers["data"], "--out", out]
    keep = ["--set", "train.checkpoint_every=1", "--set", "train.keep_every=2"]
    assert _run(*args, "--steps", "5", *DISTILL_TINY, *keep) == 0
    assert kept_steps(out, "cd") == [2, 4, 5]  # multiples of 2, and the last two
    picked = student_at(out, "cd", 2, tmp_path / "at-2")
    early, last = load_model(picked), load_model(out)
    assert early.record.students["cd"].trained_steps == 2
    assert early.record.networks == last.record.networks  # the teacher's networks, copied
    pairs = zip(early.students["cd"].parameters(), last.students["cd"].parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)  # two more steps moved the EMA
    n = 3
    seeds = shower_seeds(3, range(n))
    showers = early.generate(np.full(n, 1e4), np.full(n, 1.5), np.zeros(n), "par04-siw", seeds, settings=SamplerSettings("cd", 1))  # fmt: skip
    assert np.isfinite(showers).all()
    # the step-5 checkpoint's student is the one the run exported
    again = load_model(student_at(out, "cd", 5, tmp_path / "at-5"))
    for a, b in zip(again.students["cd"].parameters(), last.students["cd"].parameters(), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b)
    with pytest.raises(SpecError, match=r"no checkpoint of step 1 .*kept: 2, 4, 5"):
        student_at(out, "cd", 1, tmp_path / "at-1")
    with pytest.raises(SpecError, match="no student 'ect'"):
        student_at(out, "ect", 2, tmp_path / "x")
    assert not (tmp_path / "at-1").exists()
    assert not (tmp_path / "x").exists()
