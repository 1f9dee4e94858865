"""Distilling a model's voxel network into a 1-2 step consistency student (``caloforge distill``).

The student is trained in a model directory: a copy of the teacher's (or the teacher's own
directory), which gains the student's weights and a ``students`` entry in ``model.json``; the
student is then a sampler of that model (``caloforge sample --sampler NAME``). The other
networks of a pipeline (the factorised family's energy model, cheap enough to keep its ODE
solver) are unchanged.

The training run lives in ``OUT/distill-NAME/``: ``config.yaml`` (the resolved
:class:`~caloforge.config.DistillConfig`), ``run.json`` (teacher and data), ``checkpoints/``,
``metrics.csv`` and ``loss.png``, as a ``train`` run. It resumes like one: a killed run
continues from its last checkpoint when asked to (``resume``), only the number of steps may
change. The student's EMA weights are written into the model directory at every checkpoint;
a run that keeps checkpoints (``train.keep_every``) can give the student of any of them to a
model directory of its own (:func:`student_at`), e.g. to judge them and pick one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

from caloforge.atomic import os_reason, output_lock, write_json_atomic, write_text_atomic
from caloforge.config import DistillConfig, config_to_dict, load_config
from caloforge.diffusion.consistency import (
    ConsistencyDistillationLoss,
    ConsistencyPrecond,
    ConsistencyStudent,
    EasyConsistencyLoss,
)
from caloforge.diffusion.samplers import SAMPLERS
from caloforge.errors import DataError, OutputError, SpecError
from caloforge.fastsim.families import voxel_part
from caloforge.fastsim.fit import CONFIG_FILE, RUN_FILE, network_data
from caloforge.fastsim.model import FastSimModel, copy_model, load_model, model_dir
from caloforge.fastsim.record import META_FILE, StudentRecord
from caloforge.resources import check_space
from caloforge.train import distributed
from caloforge.train.checkpoint import checkpoints, latest_checkpoint, verify_checkpoint
from caloforge.train.loop import TrainingLoss, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillResult:
    """What :func:`distill` did: the model directory, the student's name and its steps."""

    out: Path
    name: str
    steps: int


def run_folder(out: Path, name: str) -> Path:
    """The training folder of the student ``name`` in the model directory ``out``."""
    return out / f"distill-{name}"


def _prepare(model: str | Path, out: Path) -> None:
    """``out`` holds the teacher: a copy of ``model`` unless it is ``model`` itself or holds
    the same networks already (a resumed run)."""
    source = model_dir(model)
    teacher = load_model(source)  # checks the teacher (weights and checksums)
    if (out / META_FILE).exists():
        if out.resolve() == source.resolve():
            return
        there = load_model(out)
        same = {p: n.sha256 for p, n in there.record.networks.items()} == {
            p: n.sha256 for p, n in teacher.record.networks.items()
        }
        if not same:
            raise SpecError(
                f"{out} holds another model; distil into a new folder or into {source} itself",
                subject="out",
            )
        return
    copy_model(source, out)


def _config(run: Path, overrides: Sequence[str], steps: int | None, resume: bool) -> DistillConfig:
    """A new configuration, or the recorded one of a run being resumed (steps may change)."""
    new = [*overrides, *([f"train.steps={steps}"] if steps is not None else [])]
    if latest_checkpoint(run / "checkpoints") is None and not (run / CONFIG_FILE).exists():
        return load_config(DistillConfig, None, new)
    if not resume:
        raise SpecError(
            f"{run} already holds a distillation run; resume it or choose another name",
            override="resume",
            action="continue it",
        )
    config = load_config(DistillConfig, run / CONFIG_FILE, [])
    if overrides:
        asked = config_to_dict(load_config(DistillConfig, run / CONFIG_FILE, list(overrides)))
        if asked != config_to_dict(config):
            raise SpecError(
                f"a resumed run keeps its settings ({run / CONFIG_FILE}); only the number of "
                "steps may change"
            )
    if steps is not None:
        config = load_config(DistillConfig, run / CONFIG_FILE, [f"train.steps={steps}"])
    return config


def _loss(teacher: FastSimModel, part: str, config: DistillConfig) -> TrainingLoss:
    diffusion = teacher.diffusion
    grid = {"sigma_min": diffusion.sigma_min, "sigma_max": diffusion.sigma_max}
    if config.method == "cd":
        return ConsistencyDistillationLoss(
            teacher.sampling_denoiser(part),
            n_levels=config.levels,
            rho=diffusion.rho,
            huber_c=config.huber_c,
            **grid,
        )
    return EasyConsistencyLoss(
        config.train.steps,
        stages=config.ect_stages,
        q=config.ect_q,
        huber_c=config.huber_c,
        **grid,
    )


def distill(
    model: str | Path,
    data: Sequence[str | Path],
    out: str | Path,
    *,
    name: str | None = None,
    method: str | None = None,
    steps: int | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    limit: int | None = None,
    make_default: bool = False,
    progress: bool = True,
) -> DistillResult:
    """Train a consistency student of ``model``'s voxel network into the model directory ``out``.

    Args:
        model: the teacher: ``"default"`` or a model directory.
        data: shower files of the teacher's detectors (its training files, or more).
        out: the model directory that gets the student (a copy of the teacher is made there
            unless it is the teacher's own directory).
        name: the student's sampler name (default: the method).
        method: ``cd`` or ``ect`` (default: :class:`~caloforge.config.DistillConfig`'s).
        steps: distillation steps (the one setting a resumed run may change).
        overrides: ``section.key=value`` settings over :class:`~caloforge.config.DistillConfig`.
        resume: continue the run of this student in ``out``.
        limit: use only the first ``limit`` showers of each file.
        make_default: the student becomes the model's default sampler.
        progress: show a progress bar.

    Single process (a student trains in minutes to an hour here; ``torchrun`` is for
    ``train``).

    Raises:
        SpecError: for bad settings, resume rules, or an ``out`` holding another model.
        DataError: for an unreadable teacher or data that does not fit it.
        OutputError: if ``out`` cannot be written.
    """
    out = Path(out)
    if limit is not None and limit < 1:
        raise SpecError(f"must be >= 1, got {limit}", subject="limit")
    overrides = [*overrides, *([f"method={method}"] if method else [])]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {os_reason(exc)}") from None
    with output_lock(out):
        _prepare(model, out)
        teacher = load_model(out)
        if name is None:
            name = load_config(DistillConfig, None, overrides).method
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name in SAMPLERS:
            raise SpecError(
                f"{name!r}: a student's name is letters, digits, '_', '.' and '-', and not one "
                f"of the diffusion samplers ({', '.join(SAMPLERS)})",
                subject="name",
            )
        if name in teacher.record.students and not resume:
            raise SpecError(
                f"{out} has a student {name!r} already; resume its run or choose another name",
                override="resume",
                action="continue it",
            )
        run = run_folder(out, name)
        config = _config(run, overrides, steps, resume)
        if resume and (run / RUN_FILE).exists():
            recorded = json.loads((run / RUN_FILE).read_text())
            if [str(Path(p)) for p in data] != recorded["data"] or limit != recorded["limit"]:
                raise SpecError(
                    f"the data or limit differ from the run in {run} ({recorded['data']}, "
                    f"limit {recorded['limit']}); a resumed run keeps its data"
                )
        part = voxel_part(teacher.record.family)
        tensors = network_data(teacher, data, config.train, limit)[0][part]
        online = ConsistencyPrecond.from_teacher(teacher.networks[part], teacher.diffusion.sigma_min)  # fmt: skip
        decay = config.target_decay if config.method == "cd" else 0.0
        student = ConsistencyStudent(online, decay)
        n_params = sum(p.numel() for p in student.parameters())
        check_space(run / "checkpoints", n_params * 4.0 * (5 * 3 + 1) + 1e6, f"the run in {run}")
        run.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run / CONFIG_FILE, _yaml(config))
        write_json_atomic(
            run / RUN_FILE,
            {"teacher": str(model), "data": [str(Path(p)) for p in data], "limit": limit},
        )
        sigmas = [teacher.diffusion.sigma_max, config.two_step_sigma]
        network = replace(teacher.record.networks[part], weights=f"{part}-{name}.safetensors", sha256=None)  # fmt: skip
        record = StudentRecord(
            part=part,
            network=network,
            method=config.method,
            sigma_min=teacher.diffusion.sigma_min,
            sigmas=sigmas,
            data=[str(p) for p in data],
        )
        exported = teacher

        def export(ema: torch.nn.Module, step: int) -> None:
            nonlocal exported
            assert isinstance(ema, ConsistencyStudent)
            exported = exported.with_student(name, replace(record, trained_steps=step), ema.online)
            if make_default:
                exported.record = replace(exported.record, sampler=name)
            exported.save(out, parts=[name])

        loss = _loss(teacher, part, config)
        set_step = getattr(loss, "set_step", None)
        train(
            student,
            loss,
            tensors.x,
            tensors.cond,
            tensors.val_x,
            tensors.val_cond,
            config.train,
            run,
            dist=distributed.Distributed(),
            on_checkpoint=export,
            before_step=set_step,
            after_step=lambda net: net.update_target(),  # type: ignore[operator]
            progress=progress,
        )
        if make_default and exported.record.sampler != name:  # a run that was complete already
            exported = load_model(out)
            exported.record = replace(exported.record, sampler=name)
            exported.record.write(out / META_FILE)
    return DistillResult(out, name, config.train.steps)


def kept_steps(out: str | Path, name: str) -> list[int]:
    """The steps of the complete checkpoints of the student ``name``'s run in ``out``, in order."""
    found = checkpoints(run_folder(Path(out), name) / "checkpoints")
    return sorted(int(p.name.removeprefix("step-")) for p in found)


def student_at(out: str | Path, name: str, step: int, target: str | Path) -> Path:
    """The model directory ``target``: the model in ``out`` with its student ``name`` taken from
    the run's checkpoint of ``step`` (its EMA weights, as the run exports them).

    Raises:
        SpecError: if ``out`` has no such student or no complete checkpoint of ``step``.
        DataError: for a damaged checkpoint.
        OutputError: if ``target`` cannot be written.
    """
    out, target = Path(out), Path(target)
    model = load_model(out)
    record = model.record.students.get(name)
    if record is None:
        raise SpecError(f"{out} has no student {name!r} (it has: {', '.join(model.record.students) or 'none'})")  # fmt: skip
    path = run_folder(out, name) / "checkpoints" / f"step-{step:07d}"
    if not (path / "state.json").exists():
        kept = ", ".join(map(str, kept_steps(out, name))) or "none"
        raise SpecError(f"{out} keeps no checkpoint of step {step} of {name!r} (kept: {kept})")
    verify_checkpoint(path)
    online = ConsistencyPrecond.from_teacher(model.networks[record.part], record.sigma_min)
    student = ConsistencyStudent(online, 0.0)
    try:
        student.load_state_dict(load_file(path / "ema.safetensors"))
    except (OSError, RuntimeError, SafetensorError) as exc:
        raise DataError(f"{path} does not hold a student of {out}: {exc}") from None
    try:
        copy_model(out, target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {os_reason(exc)}") from None
    model.with_student(name, replace(record, trained_steps=step), student.online).save(target, parts=[name])  # fmt: skip
    return target


def _yaml(config: DistillConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
