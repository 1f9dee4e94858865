"""Adapting a pretrained model to a new detector (``caloforge adapt``).

The parent model has a one-hot slot per training detector and a spare one (the last). The
adapted model gives the new detector the parent's spare slot and gets a new spare slot of its
own, so it can be adapted again: the condition vector grows by one column, and so does the
first layer of every network's condition embedding (``cond_embedder.fc1``), the new column a
copy of the parent's spare one (never trained). Every other weight starts as the parent's.

Strategies (which weights train; the others stay the parent's):

- ``full``: all of them;
- ``bias``: the biases and the condition and noise embeddings (BitFit with the conditioning);
- ``frozen``: the condition and noise embeddings and the final layer only (a frozen backbone).

The new detector's showers train every network of the pipeline, each for its number of steps
(the energy model of the factorised family is cheap), with the parent's preprocessing (the
condition ranges, the transforms): data outside the parent's ranges is refused. The run lives in
the output model directory (``adapt-PART/``: checkpoints, ``metrics.csv``, ``loss.png``) and
resumes like ``train``. The adapted model's record names its parent and the adaptation data
(``adapted_from``).

Fine-tuning on one detector moves the weights that every detector shares: adapting an adapted
model again to a third detector forgets the second (the adaptation study measures it). With
``replay``, showers of detectors the parent already knows (e.g. the first adaptation's files)
train beside the new ones, in their own slots, so the shared weights keep serving them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from caloforge.atomic import file_sha256, os_reason, output_lock, write_json_atomic
from caloforge.config import TrainConfig
from caloforge.data.contract import DETECTOR_ATTRS
from caloforge.data.readers import read_showers
from caloforge.data.transforms import ConditionTransform
from caloforge.diffusion.loss import EDMLoss
from caloforge.errors import DataError, OutputError, SpecError
from caloforge.fastsim.fit import RUN_FILE, network_data, start_pipeline
from caloforge.fastsim.model import COND_WEIGHT, FastSimModel, load_model, model_dir
from caloforge.fastsim.record import META_FILE, TrainingRecord
from caloforge.train import distributed
from caloforge.train.loop import train

log = logging.getLogger(__name__)

STRATEGIES = ("full", "bias", "frozen")
ADAPT_TRAINING = TrainConfig(
    steps=1_000,
    batch_size=64,
    lr=1e-4,  # fine-tuning (vit4hep's full fine-tuning rate)
    lr_min=1e-5,
    warmup_steps=50,
    weight_decay=0.0,
    val_fraction=0.1,
    val_every=100,
    checkpoint_every=100,
    patience=5,  # early stopping: 5 validations (500 steps) without a better validation loss
)
"""Fine-tuning of every network of the pipeline; the model of the best validation loss is
kept (early stopping)."""

FINAL_LAYERS = ("backbone.final_layer.", "backbone.out.")
"""The output layers of CaloDiT and of the energy MLP (``frozen`` trains them)."""


def _extend(state: dict[str, torch.Tensor], spare: int) -> dict[str, torch.Tensor]:
    """A network's weights with one more one-hot column after the spare slot's (its copy)."""
    weight = state[COND_WEIGHT]
    column = 4 + spare  # energy, theta, sin phi, cos phi, then the one-hot
    state = dict(state)
    state[COND_WEIGHT] = torch.cat([weight[:, : column + 1], weight[:, column : column + 1], weight[:, column + 1 :]], 1)  # fmt: skip
    return state


def extend_model(parent: FastSimModel, detector: str, attrs: dict[str, Any]) -> FastSimModel:
    """The parent with the new detector in its spare slot and a new spare slot (see above).

    Raises:
        SpecError: for a detector the parent knows already.
        DataError: for a parent whose networks do not take its condition vector.
    """
    conditions = parent.preprocessing.conditions
    if detector in conditions.detectors:
        raise SpecError(
            f"the model knows {detector} already (its detectors: "
            f"{', '.join(conditions.detectors)}); train it further with caloforge train"
        )
    new_conditions = ConditionTransform(
        conditions.energy_range_mev, conditions.theta_range, (*conditions.detectors, detector)
    )
    record = parent.record
    preprocessing = replace(record.preprocessing, conditions=new_conditions)
    child = FastSimModel.build(
        replace(
            record,
            preprocessing=preprocessing,
            detectors={**record.detectors, detector: attrs},
            students={},
            sampler=None,
            quality=None,
        )
    )
    for part, net in child.networks.items():
        state = parent.networks[part].state_dict()
        if COND_WEIGHT not in state:
            raise DataError(f"the parent's {part} network has no condition embedding to extend")
        try:
            net.load_state_dict(_extend(state, conditions.spare_slot))
        except RuntimeError as exc:
            raise DataError(f"cannot extend the parent's {part} network: {exc}") from None
    return child


def trainable(net: nn.Module, strategy: str) -> int:
    """Freeze what ``strategy`` keeps; returns the number of trainable parameters."""
    if strategy not in STRATEGIES:
        raise SpecError(f"{strategy!r} is unknown; choose from {', '.join(STRATEGIES)}", subject="strategy")  # fmt: skip
    for name, p in net.named_parameters():
        embedding = name.startswith(("backbone.cond_embedder.", "backbone.noise_embedder."))
        final = name.startswith(FINAL_LAYERS)
        keep = {
            "full": True,
            "bias": name.endswith(".bias") or embedding,
            "frozen": embedding or final,
        }[strategy]
        p.requires_grad_(keep)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _replayed(replay: dict[str, Any], known: Sequence[str], new: str) -> list[dict[str, str]]:
    """The files of ``replay`` (path: attributes) with their detectors, each one the parent
    knows."""
    files = []
    for path, attrs in replay.items():
        name = str(attrs.get("detector_name"))
        if name == new or name not in known:
            raise DataError(
                f"{path} holds {name} showers; replay takes showers of the parent's detectors "
                f"({', '.join(known)}), the new detector's go to --data"
            )
        files.append({"path": path, "detector": name})
    return files


def _detector_of(data: Sequence[str | Path]) -> tuple[str, dict[str, Any]]:
    """The one detector of the adaptation files, and the first file's attributes."""
    names, first = set(), None
    for path in data:
        found = read_showers(path, stop=1)
        names.add(str(found.attrs.get("detector_name")))
        first = first if first is not None else found.attrs
    if len(names) != 1:
        raise DataError(f"adapt to one detector at a time; the files hold {', '.join(sorted(names))}")  # fmt: skip
    return names.pop(), dict(first or {})


def adapt(
    model: str | Path,
    data: Sequence[str | Path],
    out: str | Path,
    *,
    detector: str | None = None,
    strategy: str = "full",
    steps: int | None = None,
    lr: float | None = None,
    patience: int | None = None,
    resume: bool = False,
    limit: int | None = None,
    replay: Sequence[str | Path] = (),
    training: TrainConfig = ADAPT_TRAINING,
    progress: bool = True,
) -> FastSimModel:
    """Fine-tune ``model`` to the detector of ``data`` into the model directory ``out``.

    Args:
        model: the parent: ``"default"`` or a model directory (with its spare slot).
        data: shower files of one new detector, in the parent's condition ranges.
        out: the adapted model's directory (also the run folder).
        detector: the detector's name, checked against the files' (default: theirs).
        strategy: ``full``, ``bias`` or ``frozen`` (see the module doc).
        steps, lr: optimiser steps and learning rate per network (default: ``ADAPT_TRAINING``).
        patience: validations without a better validation loss before a network stops (0:
            never; default: ``ADAPT_TRAINING``'s); the model of the best one is kept.
        resume: continue the adaptation in ``out``.
        limit: use only the first ``limit`` showers of each file (of ``replay`` too).
        replay: shower files of detectors the parent knows, trained beside the new ones so
            that the adapted model keeps them (see the module doc).
        training: the optimisation settings that ``steps``, ``lr`` and ``patience`` override.
        progress: show progress bars.

    Raises:
        SpecError: for bad settings, a detector the parent knows, resume rules.
        DataError: for unreadable data, another mesh, particle or energy scale, conditions
            outside the parent's ranges, several detectors in the data, replay files of a
            detector the parent does not know.
        OutputError: if ``out`` cannot be written.
    """
    out = Path(out)
    if strategy not in STRATEGIES:
        raise SpecError(f"{strategy!r} is unknown; choose from {', '.join(STRATEGIES)}", subject="strategy")  # fmt: skip
    settings = training
    if steps is not None:
        settings = replace(settings, steps=steps)
    if lr is not None:
        settings = replace(settings, lr=lr, lr_min=min(settings.lr_min, lr))
    if patience is not None:
        settings = replace(settings, patience=patience)
    found, file_attrs = _detector_of(data)
    attrs = {k: file_attrs[k] for k in DETECTOR_ATTRS if k in file_attrs}
    if detector is not None and detector != found:
        raise DataError(f"the files hold {found} showers, not {detector}")
    parent = load_model(model)
    replay_attrs = {str(Path(p)): read_showers(p, stop=1).attrs for p in replay}
    replayed = _replayed(replay_attrs, parent.preprocessing.conditions.detectors, found)
    for path, path_attrs in {str(data[0]): file_attrs, **replay_attrs}.items():
        for key, want in (("particle", parent.record.particle), ("calibrated", parent.record.calibrated)):  # fmt: skip
            got = path_attrs.get(key)
            if key == "calibrated":
                got = bool(got)
            if got != want:
                raise DataError(f"{path} has {key}={got!r}; the parent was trained with {want!r}")  # fmt: skip
    request = {
        "parent": str(model),
        "parent_weights": {p: n.sha256 for p, n in parent.record.networks.items()},
        "data": [str(Path(p)) for p in data],
        "replay": [f["path"] for f in replayed],
        "limit": limit,
        "strategy": strategy,
        "steps": settings.steps,
        "lr": settings.lr,
        "patience": settings.patience,
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {os_reason(exc)}") from None
    with output_lock(out):
        started = (out / RUN_FILE).exists()
        if started and not resume:
            raise SpecError(f"{out} already holds an adaptation; resume it or choose another folder", override="resume", action="continue it")  # fmt: skip
        if started:
            recorded = json.loads((out / RUN_FILE).read_text())
            recorded.setdefault("replay", [])  # runs from before replay existed
            differ = sorted(k for k in request if k != "steps" and recorded.get(k) != request[k])
            if differ:
                raise SpecError(f"{', '.join(differ)} differ from the adaptation in {out}; a resumed run keeps them")  # fmt: skip
        child = extend_model(parent, found, attrs)
        tensors, preprocessing = network_data(child, [*data, *replay], settings, limit)
        files = [{"path": str(Path(p)), "detector": found} for p in data] + replayed
        parent_dir = model_dir(model)
        record = replace(
            child.record,
            preprocessing=preprocessing,
            training=TrainingRecord(files, settings.steps),
            extra={
                **child.record.extra,
                "adapted_from": {
                    "parent": "default" if str(model) == "default" else str(parent_dir),
                    "parent_model_json_sha256": file_sha256(parent_dir / META_FILE),
                    "detector": found,
                    "data": request["data"],
                    "replay": request["replay"],
                    "strategy": strategy,
                    "steps": settings.steps,
                    "lr": settings.lr,
                },
            },
        )
        child = replace(child, record=record)
        write_json_atomic(out / RUN_FILE, request)
        child = start_pipeline(child, out)  # a resumed run keeps the networks it trained
        for part, net in child.networks.items():
            n_train = trainable(net, strategy)
            log.info("adapting the %s network: %d of %d parameters train", part, n_train, sum(p.numel() for p in net.parameters()))  # fmt: skip
            exported = child

            def export(ema: nn.Module, step: int, part: str = part) -> None:
                nonlocal exported
                exported = exported.with_trained(part, ema, step)
                exported.save(out, parts=[part])

            network = tensors[part]
            ema = train(
                net,
                EDMLoss.from_config(child.record.networks[part].sigma_data, child.diffusion),
                network.x,
                network.cond,
                network.val_x,
                network.val_cond,
                settings,
                out / f"adapt-{part}",
                dist=distributed.Distributed(),
                on_checkpoint=export,
                progress=progress,
            )
            child = replace(exported, networks={**exported.networks, part: ema})  # type: ignore[dict-item]
        first = next(iter(tensors.values()))
        write_card(out, load_model(out), parent, len(first.x), len(first.val_x))
    return load_model(out)


CARD_FILE = "MODEL_CARD.md"


def write_card(out: Path, model: FastSimModel, parent: FastSimModel, n_train: int, n_val: int) -> None:  # fmt: skip
    """``MODEL_CARD.md`` of an adapted model: its parent, the adaptation data and settings, and
    how to measure its quality (an adaptation does not judge itself)."""
    from caloforge.atomic import write_text_atomic

    origin = model.record.extra["adapted_from"]
    replayed = origin.get("replay", [])
    kept = f", with showers of known detectors replayed: {', '.join(f'`{d}`' for d in replayed)}" if replayed else ""  # fmt: skip
    conditions = model.preprocessing.conditions
    detectors = conditions.detectors
    steps: dict[str, int | None] = {**model.record.training.part_steps} or {"all": model.record.training.completed_steps}  # fmt: skip
    verdict = parent.record.quality.verdict if parent.record.quality else "not measured"
    (e_lo, e_hi), (t_lo, t_hi) = conditions.energy_range_mev, conditions.theta_range
    spec = f"--energy log:{e_lo / 1e3:g}:{e_hi / 1e3:g} --theta {t_lo:g}:{t_hi:g} --phi 0:6.2832 -n 5000"  # fmt: skip
    lines = [
        f"# Model card: {origin['detector']}, adapted from {origin['parent']}",
        "",
        (
            f"- **Parent**: `{origin['parent']}` (model.json sha256 "
            f"{origin['parent_model_json_sha256'][:16]}...), detectors "
            f"{', '.join(parent.preprocessing.conditions.detectors)}; its card: {verdict}"
        ),
        (
            f"- **New detector**: {origin['detector']}, in the parent's spare slot (slots: "
            f"{', '.join(detectors)}, then a new spare one for the next adaptation)"
        ),
        (
            f"- **Adaptation data**: {', '.join(f'`{d}`' for d in origin['data'])}"
            + kept
            + f"; {n_train} showers trained on, {n_val} held out for the validation loss"
        ),
        f"- **Adaptation**: `caloforge adapt`, strategy `{origin['strategy']}`, up to "
        f"{origin['steps']} steps per network at learning rate {origin['lr']:g}; the kept "
        "weights (with early stopping, those of the best validation loss) are of step "
        + ", ".join(f"{n} ({part})" for part, n in steps.items()),
        (
            f"- **Particle and ranges** (the parent's): {model.record.particle}, E "
            f"{e_lo / 1e3:g}-{e_hi / 1e3:g} GeV, theta {t_lo:g}-{t_hi:g} rad, phi 0-2 pi"
        ),
        "",
        "## Quality",
        "",
        (
            "Not measured by the adaptation. Judge it against Geant4 showers of the new detector "
            "that it was not adapted on (another seed):"
        ),
        "",
        "```bash",
        (
            f"caloforge simulate --detector {origin['detector']} --particle {model.record.particle} "
            f"{spec} --seed 12345 --out held-out.h5"
        ),
        f"caloforge sample --model {out} --detector {origin['detector']} {spec} --out gen.h5",
        "caloforge evaluate --reference held-out.h5 --generated gen.h5 --out report/",
        "```",
        "",
    ]
    write_text_atomic(out / CARD_FILE, "\n".join(lines))
