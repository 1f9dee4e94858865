"""Training a model: the run folder, its resume rules, and the training of its networks.

A run folder holds ``config.yaml`` (the resolved :class:`~caloforge.config.RunConfig`),
``run.json`` (the data it was started with), ``checkpoints/``, ``metrics.csv``, ``loss.png``
and the model itself (``model.json`` and weights, rewritten at every checkpoint), so that
``caloforge sample --model RUN`` works during and after training.

Resume rules: a folder that holds a run is continued only when asked to; a resumed run keeps
its settings, data and starting model, only its number of steps may change. Under ``torchrun``
every process runs :func:`fit`; the main one writes.

A run may start from a trained model's weights instead of random ones (``init``: e.g. the
shipped default, to train it further on a machine whose earlier run folder is gone). It then
keeps that model's preprocessing (transforms, condition ranges, detector slots and each
network's sigma_data), so the weights mean what they meant; its learning-rate schedule starts
again (a warm restart). The model's record names it (``init_from``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from caloforge.atomic import (
    file_sha256,
    os_reason,
    output_lock,
    write_json_atomic,
    write_text_atomic,
)
from caloforge.config import RunConfig, TrainConfig, config_to_dict, load_config
from caloforge.data.datasets import (
    FactorizedSet,
    NetworkData,
    TrainingSet,
    load_factorized_set,
    load_training_set,
)
from caloforge.data.transforms import Preprocessing
from caloforge.diffusion.loss import EDMLoss
from caloforge.errors import OutputError, SpecError
from caloforge.fastsim.families import CALODIT, FACTORIZED, FAMILIES, voxel_part
from caloforge.fastsim.model import FastSimModel, load_model, model_dir
from caloforge.fastsim.record import META_FILE, ModelRecord, NetworkRecord, TrainingRecord
from caloforge.resources import check_space
from caloforge.train import distributed
from caloforge.train.checkpoint import latest_checkpoint
from caloforge.train.loop import train

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did.

    Attributes:
        out: the run folder (also a model directory).
        steps: per network trained by this call, the optimiser steps it now has.
        is_main: whether this process is the main one (the one that reports).
    """

    out: Path
    steps: dict[str, int]
    is_main: bool

    def describe(self) -> str:
        """One line: what was trained."""
        if list(self.steps) == ["shower"]:
            return f"trained {self.steps['shower']} steps"
        return "trained " + ", ".join(f"the {p} network {n} steps" for p, n in self.steps.items())


def _flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"section.key": value}``."""
    if not isinstance(settings, dict):
        return {prefix: settings}
    out: dict[str, Any] = {}
    for key, value in settings.items():
        out.update(
            _flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}")
        )
    return out


def resolve_config(
    out: Path,
    data: Sequence[str | Path],
    *,
    config_path: str | Path | None,
    overrides: Sequence[str],
    steps: int | None,
    resume: bool,
    limit: int | None,
    init: str | Path | None = None,
) -> RunConfig:
    """The run's configuration: a new one, or the recorded one of a run being resumed.

    Raises:
        SpecError: for a folder holding a run without ``resume``, or a resumed run given other
            data, limit, starting model or settings than it was started with (only ``steps``
            may change).
    """
    resolved = out / CONFIG_FILE
    new_overrides = [*overrides, *([f"train.steps={steps}"] if steps is not None else [])]
    if latest_checkpoint(out / "checkpoints") is None and not resolved.exists():
        return load_config(RunConfig, config_path, new_overrides)
    if not resume:
        raise SpecError(
            f"{out} already holds a run; resume it or choose another output folder",
            override="resume",
            action="continue it",
        )
    config = load_config(RunConfig, resolved, [])  # a resumed run keeps its settings
    try:
        recorded = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        recorded = None  # killed before the first write: nothing to compare with
    if recorded is not None and [str(Path(p)) for p in data] != recorded["data"]:
        raise SpecError(f"differs from the files the run in {out} was started with", subject="data")
    if recorded is not None and limit != recorded.get("limit"):
        raise SpecError(f"differs from the run in {out} ({recorded.get('limit')})", subject="limit")
    started_from = (recorded or {}).get("init", {}).get("model")
    if recorded is not None and init is None and started_from is not None:
        raise SpecError(f"the run in {out} started from {started_from}; resume it with that --init")  # fmt: skip
    if recorded is not None and init is not None and started_from is None:
        raise SpecError(f"the run in {out} started from random weights; resume it without --init")  # fmt: skip
    if config_path or overrides:
        # the settings given explicitly (in a config file or as overrides) must be the run's
        requested = _flatten(config_to_dict(load_config(RunConfig, config_path, overrides)))
        given = {o.split("=", 1)[0].strip() for o in overrides}
        if config_path:  # readable: load_config has read it
            given |= set(_flatten(yaml.safe_load(Path(config_path).read_text("utf-8")) or {}))
        saved = _flatten(config_to_dict(config))
        differ = sorted(k for k in given - {"train.steps"} if requested.get(k) != saved.get(k))
        if differ:
            raise SpecError(
                f"{', '.join(differ)} differ from the run in {out} ({resolved}); "
                "a resumed run keeps its settings, only the number of steps may change"
            )
    if steps is not None and steps != config.train.steps:
        config = load_config(RunConfig, resolved, [f"train.steps={steps}"])
    return config


@dataclass(frozen=True)
class _Pipeline:
    """A model about to be trained: its record, and per part the tensors and settings."""

    record: ModelRecord
    parts: dict[str, tuple[NetworkData, TrainConfig]]
    files: list[dict[str, Any]]


def _record(
    config: RunConfig,
    family: str,
    networks: dict[str, NetworkRecord],
    data: TrainingSet | FactorizedSet,
) -> ModelRecord:
    """The record of a model about to be trained on ``data``."""
    return ModelRecord(
        family=family,
        networks=networks,
        preprocessing=data.preprocessing,
        detectors=data.detectors,
        particle=data.particle,
        calibrated=data.calibrated,
        diffusion=config.diffusion,
        training=TrainingRecord(data.files, config.train.steps),
    )


def _calodit(
    config: RunConfig, data: list[str | Path], limit: int | None, given: Preprocessing | None
) -> _Pipeline:
    """One CaloDiT of the whole shower (``given``: the preprocessing of an initial model)."""
    ts = load_training_set(
        data,
        val_fraction=config.train.val_fraction,
        seed=config.train.seed,
        limit=limit,
        preprocessing=given,
    )
    shower = NetworkRecord(config.preset, dict(config.model), ts.sigma_data)
    record = _record(config, CALODIT, {"shower": shower}, ts)
    tensors = NetworkData(ts.x, ts.cond, ts.val_x, ts.val_cond, ts.sigma_data)
    return _Pipeline(record, {"shower": (tensors, config.train)}, ts.files)


def _factorized(
    config: RunConfig, data: list[str | Path], limit: int | None, given: Preprocessing | None
) -> _Pipeline:
    """An energy model of the layer energies, and a shape model of the layer fractions."""
    fs = load_factorized_set(
        data,
        val_fraction=config.train.val_fraction,
        seed=config.train.seed,
        limit=limit,
        preprocessing=given,
        occupancy=config.occupancy,
        layer_logs=config.layer_logs,
        conditional_code=config.energy.conditional,
        voxel_values=config.voxel_values,
    )
    energy = NetworkRecord(
        config.energy.preset, dict(config.energy.model), fs.energy.sigma_data, "energy.safetensors"
    )
    shape = NetworkRecord(
        config.preset, dict(config.model), fs.shape.sigma_data, "shape.safetensors"
    )
    record = _record(config, FACTORIZED, {"energy": energy, "shape": shape}, fs)
    parts = {"energy": (fs.energy, config.energy.train), "shape": (fs.shape, config.train)}
    return _Pipeline(record, parts, fs.files)


def network_data(
    model: FastSimModel, data: Sequence[str | Path], settings: TrainConfig, limit: int | None
) -> tuple[dict[str, NetworkData], Preprocessing]:
    """Per network of a trained ``model``, its training inputs from ``data``, made with the
    model's own preprocessing (its transforms, condition ranges and detector slots); and that
    preprocessing, with statistics fitted for a detector slot that had none (a conditional
    layer code's new detector; the known detectors' are unchanged)."""
    kwargs: dict[str, Any] = {
        "val_fraction": settings.val_fraction,
        "seed": settings.seed,
        "limit": limit,
        "preprocessing": model.preprocessing,
    }
    if model.record.family == FACTORIZED:
        fs = load_factorized_set(data, **kwargs)
        preprocessing = replace(model.preprocessing, layers=fs.preprocessing.layers)
        return {"energy": fs.energy, "shape": fs.shape}, preprocessing
    ts = load_training_set(data, **kwargs)
    return {
        "shower": NetworkData(ts.x, ts.cond, ts.val_x, ts.val_cond, ts.sigma_data)
    }, model.preprocessing


def fit(
    out: str | Path,
    data: Sequence[str | Path],
    *,
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    steps: int | None = None,
    resume: bool = False,
    limit: int | None = None,
    part: str | None = None,
    init: str | Path | None = None,
    progress: bool = True,
) -> FitResult:
    """Train a model on shower files into the run folder ``out``, or resume the run there.

    A pipeline of several networks (family ``factorized``) trains them one after the other,
    each in its own subfolder (``out/energy``, ``out/shape``: checkpoints, ``metrics.csv``,
    ``loss.png``); they learn from the Geant4 showers independently, so either may be trained
    (or resumed) alone. The model in ``out`` is loadable from the start: a network not yet
    trained has its initial weights.

    Args:
        out: the run folder.
        data: caloforge shower files (each detector gets a one-hot slot).
        config_path: a YAML :class:`~caloforge.config.RunConfig` (see ``configs/``).
        overrides: ``section.key=value`` settings over the config.
        steps: optimiser steps of the voxel network (the one setting a resumed run may
            change).
        resume: continue the run in ``out``.
        limit: use only the first ``limit`` showers of each file.
        part: train only this network of the pipeline (default: all).
        init: start from this trained model's weights and preprocessing (``"default"`` or a
            model directory of the same family, presets and detectors; see the module doc).
        progress: show a progress bar.

    Raises:
        SpecError: for bad settings or resume rules (see :func:`resolve_config`), an unknown
            family or part, an ``init`` model that does not match the configuration or has
            changed since the run started.
        DataError: for unreadable or incompatible training files.
        OutputError: if the run folder cannot be written.
    """
    out = Path(out)
    if limit is not None and limit < 1:
        raise SpecError(f"must be >= 1, got {limit}", subject="limit")
    dist = distributed.setup()
    try:
        lock = contextlib.ExitStack()
        if dist.is_main:  # one run per folder (the other processes of a DDP run are its own)
            if not out.exists():  # a run refused before it wrote anything leaves no folder
                lock.callback(_remove_if_unused, out)
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot write {out}: {os_reason(exc)}") from None
            lock.enter_context(output_lock(out))
        config = resolve_config(
            out,
            data,
            config_path=config_path,
            overrides=overrides,
            steps=steps,
            resume=resume,
            limit=limit,
            init=init,
        )
        if config.family not in FAMILIES:
            raise SpecError(
                f"{config.family!r} is unknown; families: {', '.join(FAMILIES)}", subject="family"
            )
        parts = FAMILIES[config.family].parts
        if part is not None and part not in parts:
            raise SpecError(
                f"{part!r} is not a network of a {config.family} model ({', '.join(parts)})",
                subject="part",
            )
        start = _init_model(init, config, out) if init is not None else None
        dist.barrier()  # every process has looked at the folder before the main one writes
        build = _factorized if config.family == FACTORIZED else _calodit
        pipeline = build(config, list(data), limit, start[0].preprocessing if start else None)
        torch.manual_seed(config.train.seed)  # the same initial weights on every process
        model = FastSimModel.build(pipeline.record)
        if start is not None:
            model = _from_parent(model, *start)
        if dist.is_main:
            # per checkpoint: weights, EMA and two Adam moments (float32); two kept and one
            # being written, and the exported model
            n_params = sum(p.numel() for net in model.networks.values() for p in net.parameters())
            check_space(
                out / "checkpoints", n_params * 4.0 * (4 * 3 + 1) + 1e6, f"the run in {out}"
            )
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(
                out / CONFIG_FILE, yaml.safe_dump(config_to_dict(config), sort_keys=False)
            )
            started: dict[str, Any] = {"data": [str(Path(p)) for p in data], "limit": limit}
            if start is not None:
                started["init"] = start[1]
            write_json_atomic(out / RUN_FILE, {**started, "files": pipeline.files})
            if len(parts) > 1:
                model = start_pipeline(model, out)
        dist.barrier()
        trained = {}
        for name in parts if part is None else (part,):
            tensors, settings = pipeline.parts[name]
            model = _train_part(model, name, tensors, settings, config, out, dist, progress)
            trained[name] = settings.steps
        # leave together: a process tearing its connections down while a peer still uses
        # them makes gloo abort that peer
        dist.barrier()
    finally:
        dist.close()
        lock.close()
    return FitResult(out, trained, dist.is_main)


def _init_model(
    init: str | Path, config: RunConfig, out: Path
) -> tuple[FastSimModel, dict[str, Any]]:
    """The model a run starts from, checked against the configuration and, for a run being
    resumed, against the one it started from; and what the record says of it (``init_from``)."""
    parent = load_model(init)
    what = "the shipped default model" if str(init) == "default" else str(init)
    if parent.record.family != config.family:
        raise SpecError(f"{what} is a {parent.record.family} model; the configuration trains a {config.family} one", subject="init")  # fmt: skip
    wanted = {voxel_part(config.family): (config.preset, dict(config.model))}
    if config.family == FACTORIZED:
        wanted["energy"] = (config.energy.preset, dict(config.energy.model))
    for part, (preset, settings) in wanted.items():
        have = parent.record.networks[part]
        if (have.preset, _json(have.options)) != (preset, _json(settings)):
            raise SpecError(
                f"the {part} network of {what} is {have.preset} {have.options or ''}; "
                f"the configuration's is {preset} {settings or ''}",
                subject="init",
            )
    fractions = parent.preprocessing.fractions
    if config.family == FACTORIZED and fractions is not None and fractions.values != config.voxel_values:  # fmt: skip
        raise SpecError(
            f"the shape code of {what} holds voxel values {fractions.values!r}; the "
            f"configuration's are {config.voxel_values!r}",
            subject="init",
        )
    training = parent.record.training
    init_from = {
        "model": "default" if str(init) == "default" else str(model_dir(init)),
        "model_json_sha256": file_sha256(model_dir(init) / META_FILE),
        "steps": dict(training.part_steps)
        or {"shower": training.completed_steps or training.steps},
    }
    try:
        recorded = json.loads((out / RUN_FILE).read_text()).get("init")
    except (OSError, ValueError):
        recorded = None
    if recorded is not None and recorded.get("model_json_sha256") != init_from["model_json_sha256"]:  # fmt: skip
        raise SpecError(
            f"{what} has changed since the run in {out} started from it; a resumed run keeps "
            "its starting model (start a new run from the new one)",
            subject="init",
        )
    return parent, init_from


def _json(value: Any) -> Any:
    """``value`` as JSON types (tuples become lists), to compare a record with a config."""
    return json.loads(json.dumps(value))


def _from_parent(model: FastSimModel, parent: FastSimModel, init_from: dict[str, Any]) -> FastSimModel:  # fmt: skip
    """``model`` (built on the parent's preprocessing) with the parent's weights, sigma_data
    and detector slots, its record naming the parent (``init_from``). A network whose inputs
    the run codes otherwise (the energy model given a conditional code) starts afresh."""
    record = parent.record
    fresh = set()
    if model.preprocessing.layers != parent.preprocessing.layers:
        fresh.add("energy")
        init_from = {**init_from, "fresh": sorted(fresh)}
    networks = {
        part: net if part in fresh else replace(net, sigma_data=record.networks[part].sigma_data)
        for part, net in model.record.networks.items()
    }
    child = FastSimModel.build(
        replace(
            model.record,
            networks=networks,
            detectors=dict(record.detectors),
            extra={**model.record.extra, "init_from": init_from},
        )
    )
    for part, net in child.networks.items():
        if part in fresh:
            net.load_state_dict(model.networks[part].state_dict())
        else:
            net.load_state_dict(parent.networks[part].state_dict())
    return child


def _remove_if_unused(out: Path) -> None:
    """Remove a run folder that holds nothing but its lock (the run stopped before writing)."""
    if out.is_dir() and {p.name for p in out.iterdir()} <= {".lock"}:
        shutil.rmtree(out, ignore_errors=True)


def start_pipeline(model: FastSimModel, out: Path) -> FastSimModel:
    """A pipeline's model in ``out`` from the start: the steps its networks already have there
    are kept, the weights of those not yet written are the initial ones."""
    missing = [p for p, n in model.record.networks.items() if not (out / n.weights).exists()]
    if (out / META_FILE).exists():  # keep what the folder's record says of the weights there
        before = ModelRecord.read(out / META_FILE)
        networks = {
            part: replace(net, sha256=before.networks[part].sha256)
            if part not in missing and part in before.networks
            else net
            for part, net in model.record.networks.items()
        }
        training = replace(model.record.training, part_steps=dict(before.training.part_steps))
        model = replace(model, record=replace(model.record, networks=networks, training=training))
    model.save(out, parts=missing)
    return model


def _train_part(
    model: FastSimModel,
    part: str,
    tensors: NetworkData,
    settings: TrainConfig,
    config: RunConfig,
    out: Path,
    dist: distributed.Distributed,
    progress: bool,
) -> FastSimModel:
    """Train one network; its EMA weights are written into ``out`` at every checkpoint."""
    run_dir = out / part if len(model.networks) > 1 else out
    exported = model

    def export(ema: torch.nn.Module, step: int) -> None:
        nonlocal exported
        exported = exported.with_trained(part, ema, step)
        exported.save(out, parts=[part])

    if progress and len(model.networks) > 1:
        log.info("training the %s network", part)
    ema = train(
        model.networks[part],
        EDMLoss.from_config(tensors.sigma_data, config.diffusion),
        tensors.x,
        tensors.cond,
        tensors.val_x,
        tensors.val_cond,
        settings,
        run_dir,
        dist=dist,
        on_checkpoint=export,
        progress=progress,
    )
    return replace(exported, networks={**exported.networks, part: ema})  # type: ignore[dict-item]
