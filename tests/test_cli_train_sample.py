"""CLI smoke test: train 2 steps on two detectors, resume, sample, evaluate; bad requests."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from caloforge.cli import main
from caloforge.config import ClassifierConfig, EvaluationConfig
from caloforge.fastsim import load_model
from caloforge.fastsim.demo import run_demo
from caloforge.fastsim.model import SamplerSettings
from caloforge.geometry.mesh import MeshSpec

MESH = MeshSpec(n_z=6, n_phi=4, n_r=3)
TINY = [
    "--set",
    "train.log_every=1",
    "--set",
    "model.embed_dim=16",
    "--set",
    "model.depth=1",
    "--set",
    "model.num_heads=2",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _files(make_caloforge_file, tmp_path: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    paths = []
    for k, detector in enumerate(("par04-siw", "par04-scipb")):
        rng = np.random.default_rng(k)
        n = 60
        paths.append(
            make_caloforge_file(
                tmp_path / f"{detector}.h5",
                mesh=MESH,
                energies=10 ** rng.uniform(3, 5, n),
                theta=rng.uniform(0.87, 2.27, n),
                phi=rng.uniform(0, 2 * np.pi, n),
                seed=k,
                attrs={
                    "detector_name": detector,
                    "detector": {"name": detector},
                    "energy_spec_gev": "log:1:100",
                    "theta_spec_rad": "0.87:2.27",
                    "phi_spec_rad": "0:6.2832",
                },
            )
        )
    return paths


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(result: tuple[int, str, str], *words: str) -> None:
    code, _, err = result
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("caloforge: error:")
    for word in words:
        assert word in err


def test_train_resume_sample_evaluate(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _files(make_caloforge_file, tmp_path)
    run = tmp_path / "run"
    train = ["train", "--data", *data, "--out", run, "--batch-size", "8", "--no-progress", *TINY]
    code, _, err = _run(capsys, *train, "--steps", "2", "--set", "train.checkpoint_every=1")
    assert code == 0, err
    meta = json.loads((run / "model.json").read_text())
    assert meta["training"]["completed_steps"] == 2
    assert list(meta["detectors"]) == ["par04-siw", "par04-scipb"]
    assert meta["preprocessing"]["conditions"]["energy_range_mev"] == [1000.0, 100000.0]
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header + 2 steps
    loss_png = (run / "loss.png").read_bytes()  # the loss figure, 6 x 4 inches at 100 dpi
    assert loss_png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", loss_png[16:24]) == (600, 400)

    _one_line_error(_run(capsys, *train, "--steps", "3"), "--resume")
    code, _, err = _run(capsys, *train, "--steps", "3", "--resume")
    assert code == 0, err
    assert json.loads((run / "model.json").read_text())["training"]["completed_steps"] == 3

    gen = tmp_path / "gen.h5"
    sample = [
        "sample",
        "--model",
        run,
        "--detector",
        "par04-siw",
        "--energy",
        "log:1:100",
        "--theta",
        "0.87:2.27",
        "--phi",
        "0:6.2832",
        "--sampler-steps",
        "2",
        "--no-progress",
    ]
    code, _, err = _run(capsys, *sample, "-n", "40", "--batch-size", "16", "--out", gen)
    assert code == 0, err
    with h5py.File(gen) as f:
        showers = f["showers"][:]
        assert showers.shape == (40, MESH.n_voxels)
        assert f.attrs["detector_name"] == "par04-siw"
        assert float(f.attrs["sampling_fraction"]) > 0
    assert (showers >= 0).all()
    assert ((showers == 0) | (showers >= 0.5e-3)).all()  # the 0.5 keV threshold
    code, out, err = _run(capsys, "inspect", gen)
    assert code == 0, out + err

    # a shower does not depend on the batch it was drawn in
    again = tmp_path / "again.h5"
    code, _, err = _run(capsys, *sample, "-n", "40", "--batch-size", "7", "--out", again)
    assert code == 0, err
    with h5py.File(again) as f:
        np.testing.assert_allclose(f["showers"][:], showers, rtol=1e-4, atol=1e-9)

    # the sampler keeps its estimates within the training data's range, even when the model
    # overshoots it everywhere
    model = load_model(run)
    shower_transform = model.preprocessing.shower
    assert shower_transform.max_value is not None
    with torch.no_grad():
        model.net.backbone.final_layer.linear.bias.fill_(50.0)
    energies = np.full(8, 5e4)
    kwargs = {"steps": 4, "seeds": list(range(8))}
    u_max = math.exp(shower_transform.max_value * shower_transform.std + shower_transform.mean)
    bounded = model.generate(energies, np.full(8, 1.5), np.zeros(8), "par04-siw", **kwargs)
    assert bounded.max() / 5e4 <= u_max * (1 + 1e-5)
    preprocessing = replace(model.preprocessing, shower=replace(shower_transform, max_value=None))
    model.record = replace(model.record, preprocessing=preprocessing)
    free = model.generate(energies, np.full(8, 1.5), np.zeros(8), "par04-siw", **kwargs)
    assert free.max() / 5e4 > 10 * u_max

    report = tmp_path / "report"
    code, _, err = _run(
        capsys,
        "evaluate",
        "--reference",
        data[0],
        "--generated",
        gen,
        "--out",
        report,
        "--classifier-epochs",
        "1",
        "--classifier-repeats",
        "1",
        "--no-plots",
        "--no-progress",
    )
    assert code == 0, err
    assert "auc_high" in json.loads((report / "metrics.json").read_text())

    # the demo: the model against Geant4-like showers at fixed points
    points = make_caloforge_file(
        tmp_path / "points.h5",
        mesh=MESH,
        energies=np.repeat([1e4, 5e4], 30),
        theta=np.full(60, 1.5708),
        phi=np.zeros(60),
        seed=5,
        attrs={"energy_spec_gev": "10,50", "theta_spec_rad": "1.5708", "phi_spec_rad": "0"},
    )
    meta = json.loads((run / "model.json").read_text())
    meta["quality"] = {  # as scripts/ship_default_model.py adds
        "verdict": "POOR MODEL: a test",
        "samplers": {"teacher (heun, 2 steps)": "AUC high 0.99"},
    }
    (run / "model.json").write_text(json.dumps(meta))
    config = EvaluationConfig(classifier=ClassifierConfig(epochs=1, repeats=1), plots=False)
    result = run_demo(tmp_path / "demo", model=run, reference=points, config=config)
    assert list(result.notes[:3]) == [
        "sampled with heun-stochastic (32 steps)",
        f"model card of {run}: POOR MODEL: a test",
        "at release, teacher (heun, 2 steps): AUC high 0.99",
    ]
    assert "POOR MODEL: a test" in (tmp_path / "demo" / "report" / "index.html").read_text()
    assert result.metrics["conditions"]["mode"] == "points"
    assert len(result.metrics["conditions"]["bins"]) == 2
    assert (tmp_path / "demo" / "generated.h5").exists()
    # another sampler of the model (e.g. the teacher of a shipped student); an unknown one is
    # refused before anything is written
    other = run_demo(tmp_path / "demo-euler", model=run, reference=points, config=config, settings=SamplerSettings("euler", 2))  # fmt: skip
    assert other.notes[0] == "sampled with euler (2 steps)"
    code, _, err = _run(capsys, "demo", "--model", run, "--out", tmp_path / "demo-bad", "--sampler", "nope")  # fmt: skip
    assert code != 0
    assert "'nope' is unknown" in err
    assert not (tmp_path / "demo-bad").exists()


def test_bad_sample_requests(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _files(make_caloforge_file, tmp_path)
    run = tmp_path / "run"
    code, _, err = _run(
        capsys,
        "train",
        "--data",
        *data,
        "--out",
        run,
        "--steps",
        "1",
        "--batch-size",
        "4",
        "--no-progress",
        *TINY,
    )
    assert code == 0, err
    base = ["sample", "--model", run, "--sampler-steps", "1", "-n", "3", "--no-progress"]
    out = tmp_path / "x.h5"
    _one_line_error(
        _run(capsys, *base, "--detector", "cld-like", "--energy", "10", "--out", out), "cld-like"
    )
    _one_line_error(
        _run(capsys, *base, "--detector", "par04-siw", "--energy", "500", "--out", out), "range"
    )
    _one_line_error(
        _run(
            capsys,
            *base,
            "--detector",
            "par04-siw",
            "--energy",
            "10",
            "--theta",
            "0.9",
            "--particle",
            "e-",
            "--out",
            out,
        ),
        "gamma",
    )
    _one_line_error(
        _run(
            capsys,
            *base,
            "--detector",
            "par04-siw",
            "--energy",
            "10",
            "--model",
            tmp_path / "nowhere",
            "--out",
            out,
        ),
        "no trained model",
    )
    assert not out.exists()
    code, _, err = _run(
        capsys,
        *base,
        "--detector",
        "par04-siw",
        "--energy",
        "500",
        "--allow-extrapolation",
        "--out",
        out,
    )
    assert code == 0, err
    _one_line_error(
        _run(capsys, *base, "--detector", "par04-siw", "--energy", "10", "--sampler-steps", "0",
             "--out", tmp_path / "y.h5"), ">= 1",
    )  # fmt: skip
    _one_line_error(
        _run(capsys, *base, "--detector", "par04-siw", "--energy", "10", "--sampler", "euler",
             "--s-churn", "5", "--out", tmp_path / "y.h5"), "churn",
    )  # fmt: skip
    churned = tmp_path / "churn.h5"
    code, _, err = _run(
        capsys, *base, "--detector", "par04-siw", "--energy", "10", "--s-churn", "5",
        "--s-tmin", "0.05", "--s-noise", "1.003", "--out", churned,
    )  # fmt: skip
    assert code == 0, err
    with h5py.File(churned) as f:
        generator = json.loads(f.attrs["generator"])
    assert (generator["S_churn"], generator["S_tmin"], generator["S_noise"]) == (5, 0.05, 1.003)
    # a resumed run keeps its settings and data: conflicting requests are refused
    resume = ["train", "--data", *data, "--out", run, "--resume", "--no-progress"]
    _one_line_error(
        _run(capsys, *resume, "--set", "model.depth=2"), "only the number of steps may change"
    )
    _one_line_error(_run(capsys, *resume, "--limit", "10"), "--limit")
    _one_line_error(
        _run(capsys, "train", "--data", tmp_path / "missing.h5", "--out", tmp_path / "r2"),
        "missing",
    )
    _one_line_error(
        _run(capsys, "train", "--data", *data, "--out", tmp_path / "r3", "--set", "train.lrr=1"),
        "unknown setting",
    )


def test_torchrun_two_processes(make_caloforge_file, tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m caloforge train` trains one model with DDP over gloo."""
    data = _files(make_caloforge_file, tmp_path)
    run = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "caloforge",
        "train",
        "--data",
        *map(str, data),
        "--out",
        str(run),
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--no-progress",
        *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-8000:]
    meta = json.loads((run / "model.json").read_text())
    assert meta["training"]["completed_steps"] == 2
    assert (run / "metrics.csv").read_text().count("\n") == 3  # one writer: no duplicated rows
