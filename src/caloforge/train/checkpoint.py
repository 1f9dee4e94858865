"""Checkpoints: weights, EMA, optimiser, RNG and step, written atomically without pickling.

A checkpoint is a directory ``checkpoints/step-NNNNNNN/`` with ``model.safetensors``,
``ema.safetensors``, ``optimizer.safetensors`` (every tensor of the optimiser state),
``rng.safetensors`` and ``state.json`` (step, EMA update count, the optimiser's non-tensor
state). It is written into a temporary directory and renamed into place; the file
``checkpoints/latest`` names the newest complete one and is replaced atomically, so a run
killed at any moment resumes from the last complete checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from caloforge.atomic import atomic_directory, file_sha256, write_text_atomic
from caloforge.errors import DataError, OutputError

LATEST = "latest"
KEEP = 2  # complete checkpoints kept
_FILES = ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "rng.safetensors")


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """``safetensors.save_file``, its I/O failures (a full disk) as one :class:`OutputError`."""
    try:
        save_file(tensors, path)
    except SafetensorError as exc:
        reason = str(exc).rsplit("I/O error: ", 1)[-1]
        raise OutputError(f"cannot write {path}: {reason}") from None


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: Path,
    step: int,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema_updates: int,
    keep_every: int = 0,
) -> Path:
    """Write the checkpoint of ``step`` and point ``latest`` at it; keep the last ``KEEP``,
    and those of steps that are multiples of ``keep_every`` (if not 0)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:07d}"
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    with atomic_directory(final, overwrite=True) as tmp:
        write_safetensors(_state(model), tmp / "model.safetensors")
        write_safetensors(_state(ema), tmp / "ema.safetensors")
        write_safetensors(opt_tensors, tmp / "optimizer.safetensors")
        write_safetensors({"torch": torch.get_rng_state()}, tmp / "rng.safetensors")
        sums = {name: file_sha256(tmp / name) for name in _FILES}
        state = {"step": step, "ema_updates": ema_updates, "optimizer": opt_meta, "sha256": sums}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
    write_text_atomic(directory / LATEST, final.name)
    complete = sorted(p for p in directory.glob("step-*") if p.is_dir())
    for old in complete[:-KEEP]:
        if keep_every and int(old.name.removeprefix("step-")) % keep_every == 0:
            continue
        shutil.rmtree(old, ignore_errors=True)
    for stale in directory.glob(".step-*"):  # left by a run killed while writing
        shutil.rmtree(stale, ignore_errors=True)
    return final


def checkpoints(directory: Path) -> list[Path]:
    """The complete checkpoints (those with their ``state.json``, written last), newest
    first."""
    found = [p for p in directory.glob("step-*") if (p / "state.json").exists()]
    return sorted(found, reverse=True)


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's ``state.json``, after checking its files against their recorded
    SHA-256 (checkpoints written before checksums were recorded are only parsed).

    Raises:
        DataError: for a missing, unreadable or damaged file.
    """
    try:
        state = json.loads((path / "state.json").read_text())
        for name, expected in state.get("sha256", {}).items():
            if file_sha256(path / name) != expected:
                raise DataError(f"{path / name} is damaged (its checksum does not match)")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"{path} is damaged: {exc}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise DataError(f"{path} is damaged: no step recorded")
    return state


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint, or None.

    ``latest`` names it; if that pointer is missing or names a damaged directory, the newest
    ``step-*`` directory that holds its ``state.json`` (written last) is taken instead.
    """
    pointer = directory / LATEST
    if pointer.exists():
        path = directory / pointer.read_text().strip()
        if (path / "state.json").exists():
            return path
    complete = sorted(p for p in directory.glob("step-*") if (p / "state.json").exists())
    return complete[-1] if complete else None


def load_checkpoint(
    path: Path, model: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, int]:
    """Restore a checkpoint into the given objects; returns (step, EMA update count).

    Raises:
        DataError: for a missing or corrupt checkpoint.
    """
    state = verify_checkpoint(path)
    try:
        model.load_state_dict(load_file(path / "model.safetensors"))
        ema.load_state_dict(load_file(path / "ema.safetensors"))
        optimizer.load_state_dict(
            _unflatten_optimizer(load_file(path / "optimizer.safetensors"), state["optimizer"])
        )
        torch.set_rng_state(load_file(path / "rng.safetensors")["torch"])
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
        raise DataError(f"cannot resume from {path}: {exc}") from None
    return int(state["step"]), int(state["ema_updates"])
