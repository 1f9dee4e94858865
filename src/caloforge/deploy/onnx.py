"""``caloforge export --onnx``: one sampler of a model as one ONNX graph, checked with ONNX Runtime.

The graph is :class:`~caloforge.deploy.graph.ShowerGraph` (inputs, output and units are
documented there and in ``docs/commands/export.md``), exported by ``torch.onnx`` with a
dynamic batch dimension, then run by ONNX Runtime at batch 1 and 8 against PyTorch. ``model.json``'s facts a caller needs travel in the graph's metadata
(``metadata_props``): the detectors in one-hot order, the condition ranges, the mesh, the
energy scale, the sampler and the noise width.

Needs the ``onnx`` extra (``pip install caloforge[onnx]``: onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caloforge import __version__
from caloforge.atomic import atomic_file, check_output
from caloforge.errors import SpecError
from caloforge.fastsim.model import FastSimModel, SamplerSettings, load_model

log = logging.getLogger(__name__)

OPSET = 18
"""The ONNX opset of the exported graphs (ONNX Runtime >= 1.14 runs it)."""
INPUTS = ("energy_gev", "theta", "phi", "detector", "noise")
OUTPUT = "showers"


def _need_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise SpecError(
            f"ONNX export needs the onnx extra ({exc.name} is missing): "
            "pip install 'caloforge[onnx]'"
        ) from None


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: the ONNX file.
        metadata: the graph's metadata (what a caller needs to know).
        max_rel_diff: ONNX Runtime against PyTorch on the same inputs: the largest
            difference relative to the largest voxel of its shower.
    """

    path: Path
    metadata: dict[str, str]
    max_rel_diff: float


def example_inputs(graph: Any, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``n`` random showers' inputs of a graph: conditions within its ranges, the first
    detector, and standard normal noise."""
    from caloforge.deploy.graph import ShowerGraph

    assert isinstance(graph, ShowerGraph)
    g = torch.Generator().manual_seed(seed)
    lo, hi = graph.log_e
    energy = torch.exp(lo + (hi - lo) * torch.rand(n, generator=g)) / 1e3
    t_lo, t_hi = graph.theta_range
    theta = t_lo + (t_hi - t_lo) * torch.rand(n, generator=g)
    phi = 2 * torch.pi * torch.rand(n, generator=g)
    detector = torch.zeros(n, graph.n_slots)
    detector[:, 0] = 1.0
    noise = torch.randn(n, graph.noise_size, generator=g)
    return energy, theta, phi, detector, noise


def metadata(model: FastSimModel, graph: Any) -> dict[str, str]:
    """The facts of ``model.json`` a caller of the graph needs, as strings."""
    pre = model.preprocessing
    return {
        "producer": f"caloforge {__version__}",
        "family": model.record.family,
        "sampler": graph.sampler,
        "sampler_steps": str(graph.steps),
        "noise_size": str(graph.noise_size),
        "noise_layout": json.dumps(graph.noise_sizes),
        "detectors": json.dumps([*pre.conditions.detectors, "(spare)"]),
        "meshes": json.dumps({name: d["mesh"] for name, d in model.detectors.items()}),
        "energy_range_gev": json.dumps([v / 1e3 for v in pre.conditions.energy_range_mev]),
        "theta_range_rad": json.dumps(list(pre.conditions.theta_range)),
        "mesh_z_phi_r": json.dumps(list(pre.mesh_shape)),
        "particle": model.record.particle,
        "energy_scale": "calibrated" if model.record.calibrated else "raw (active material)",
        "unit_in": "energy_gev: GeV; theta, phi: rad; detector: one-hot; noise: N(0, 1)",
        "unit_out": "showers: MeV per voxel, index (z * n_phi + phi) * n_r + r",
    }


def export_onnx(
    model: str | Path | FastSimModel,
    out: str | Path,
    *,
    settings: SamplerSettings | None = None,
    overwrite: bool = False,
    check_showers: int = 8,
) -> OnnxExport:
    """Write one sampler of ``model`` as an ONNX graph and check it with ONNX Runtime.

    Args:
        model: ``"default"``, a model directory, or a loaded model.
        out: the ``.onnx`` file (written atomically).
        settings: the sampler and steps (default: the model's sampler).
        overwrite: replace an existing file.
        check_showers: showers run through both ONNX Runtime and PyTorch.

    Raises:
        SpecError: without the onnx extra, or for a sampler the graph cannot express.
        DataError: for a missing or broken model.
        OutputError: if ``out`` cannot be written.
    """
    _need_onnx()
    import onnx
    import onnxruntime

    from caloforge.deploy.graph import ShowerGraph

    out = Path(out)
    check_output(out, overwrite=overwrite)
    if not isinstance(model, FastSimModel):
        model = load_model(model)
    graph = ShowerGraph(model, settings).eval()
    inputs = example_inputs(graph, 2)
    with atomic_file(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        # The TorchScript exporter: the unrolled samplers make graphs of thousands of nodes,
        # which it exports in seconds where torch.export (dynamo=True) takes ~20x longer.
        torch.onnx.export(
            graph,
            inputs,
            str(tmp),
            dynamo=False,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={name: {0: "batch"} for name in (*INPUTS, OUTPUT)},
            opset_version=OPSET,
        )
        proto = onnx.load(str(tmp))
        info = metadata(model, graph)
        for key, value in info.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        diff = max(_parity(session, graph, example_inputs(graph, n, seed=1)) for n in (1, check_showers))  # fmt: skip
    return OnnxExport(out, info, diff)


def _parity(session: Any, graph: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> float:
    """Largest |ONNX Runtime - PyTorch| relative to the largest voxel of its shower."""
    feed = {name: t.numpy() for name, t in zip(INPUTS, inputs, strict=True)}
    (got,) = session.run([OUTPUT], feed)
    with torch.no_grad():
        want = graph(*inputs).numpy()
    scale = np.maximum(np.abs(want).max(axis=1, keepdims=True), 1e-30)
    return float((np.abs(got - want) / scale).max())
