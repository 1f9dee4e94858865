"""The sampler as one graph (``ShowerGraph``) and its ONNX export, checked with ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import MESH

from caloforge.cli import main
from caloforge.data.factorized import layer_energies
from caloforge.deploy.graph import ShowerGraph
from caloforge.errors import SpecError
from caloforge.fastsim import load_model, shower_seeds
from caloforge.fastsim.model import SamplerSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _graph_noise(graph: ShowerGraph, seeds: list[int]) -> torch.Tensor:
    """The noise ``generate`` draws for these seeds, laid out as the graph's input: per shower
    its generator's draws in sampling order (energy model, then shape model)."""
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed % (1 << 64))
        rows.append(torch.cat([torch.randn(n, generator=g) for n in _draw_sizes(graph)]))
    return torch.stack(rows)


def _draw_sizes(graph: ShowerGraph) -> list[int]:
    sizes = []
    for part, total in graph.noise_sizes.items():
        draws = graph.plans[part].noise_draws
        sizes += [total // draws] * draws
    return sizes


@pytest.mark.parametrize(
    ("family", "sampler", "steps"),
    [
        ("factorized", "cd", 1),
        ("factorized", "cd", 2),
        ("factorized", "heun", 3),
        ("calodit", "cd", 2),
        ("calodit", "heun", 3),
        (
            "factorized-classic",
            "heun",
            3,
        ),  # a model without occupancy bits nor log layer conditions
        ("factorized-log-energy", "heun", 3),  # a shape code of log voxel energies
        ("factorized-by-layer", "heun", 3),  # logits about a line in log E_layer
    ],
)
def test_the_graph_makes_the_showers_generate_makes(
    teachers, students, family: str, sampler: str, steps: int
) -> None:  # type: ignore[no-untyped-def]
    model = load_model(students[family] if family in students else teachers[family])
    settings = SamplerSettings(sampler, steps)
    graph = ShowerGraph(model, settings).eval()
    n = 6
    rng = np.random.default_rng(0)
    energies = 10 ** rng.uniform(3, 5, n)
    theta, phi = rng.uniform(0.9, 2.2, n), rng.uniform(0, 2 * np.pi, n)
    seeds = shower_seeds(5, range(n))
    want = model.generate(energies, theta, phi, "par04-siw", seeds, settings=settings)
    detector = torch.zeros(n, graph.n_slots)
    detector[:, 0] = 1
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)
    with torch.no_grad():
        got = graph(f32(energies / 1e3), f32(theta), f32(phi), detector, _graph_noise(graph, seeds)).numpy()  # fmt: skip
    # float32 here, float64 transforms in generate: equal within rounding, voxel by voxel
    scale = want.max(axis=1, keepdims=True)
    assert np.abs(got - want).max() <= 2e-3 * scale.max()
    np.testing.assert_allclose(got.sum(axis=1), want.sum(axis=1), rtol=1e-4)
    if family.startswith("factorized"):
        assert model.preprocessing.fractions.channels == (1 if family == "factorized-classic" else 2)  # type: ignore[union-attr]  # fmt: skip
        assert bool(model.preprocessing.layers.log_mean) == (family != "factorized-classic")  # type: ignore[union-attr]  # fmt: skip
        np.testing.assert_allclose(layer_energies(got, MESH.shape), layer_energies(want, MESH.shape), rtol=1e-4, atol=1e-3)  # fmt: skip
        values = {"factorized-log-energy": "log-energy", "factorized-by-layer": "fraction-by-layer"}  # fmt: skip
        assert model.preprocessing.fractions.values == values.get(family, "fraction")  # type: ignore[union-attr]


@pytest.mark.parametrize("family", ["factorized", "calodit"])
def test_export_onnx_matches_pytorch_with_a_dynamic_batch(
    students, tmp_path: Path, capsys, family: str
) -> None:  # type: ignore[no-untyped-def]
    import onnx
    import onnxruntime

    out = tmp_path / "m.onnx"
    model_dir = students[family]
    code = main(["export", "--onnx", str(model_dir), "--sampler", "cd", "--sampler-steps", "2", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "matches PyTorch" in capsys.readouterr().out
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["sampler"] == "cd"
    assert json.loads(meta["detectors"]) == ["par04-siw", "(spare)"]
    assert json.loads(meta["mesh_z_phi_r"]) == list(MESH.shape)
    graph = ShowerGraph(load_model(model_dir), SamplerSettings("cd", 2)).eval()
    energy_noise = 2 * MESH.shape[0] if family == "factorized" else 0  # the occupancy codes
    voxel_noise = 2 * (2 if family == "factorized" else 1) * MESH.n_voxels  # 2 steps
    assert int(meta["noise_size"]) == graph.noise_size == energy_noise + voxel_noise
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["energy_gev", "theta", "phi", "detector", "noise"]  # fmt: skip
    for n in (1, 5, 33):  # any batch
        g = torch.Generator().manual_seed(n)
        inputs = (
            10 ** (torch.rand(n, generator=g) * 2),
            0.9 + torch.rand(n, generator=g),
            6 * torch.rand(n, generator=g),
            torch.nn.functional.one_hot(torch.zeros(n, dtype=torch.long), 2).float(),
            torch.randn(n, graph.noise_size, generator=g),
        )
        (got,) = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)})  # fmt: skip
        with torch.no_grad():
            want = graph(*inputs).numpy()
        assert got.shape == (n, MESH.n_voxels)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_export_onnx_refuses_what_it_cannot_do(
    students, tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    base = ["export", "--onnx", str(students["calodit"]), "--out", str(tmp_path / "x.onnx")]
    assert main([*base, "--sampler", "nope"]) == 1
    assert "'nope' is unknown" in capsys.readouterr().err
    assert main([*base, "--sampler", "cd", "--sampler-steps", "3"]) == 1
    assert "at most 2 steps" in capsys.readouterr().err
    with pytest.raises(SpecError, match="deterministically"):
        ShowerGraph(load_model(students["calodit"]), SamplerSettings("heun-stochastic", 2, {"S_churn": 1.0}))  # fmt: skip
    assert main(["export", "some.h5", "--onnx", "default", "--out", str(tmp_path / "y")]) == 1
    assert "not both" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # not installed
    assert main(base) == 1
    assert "pip install 'caloforge[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
