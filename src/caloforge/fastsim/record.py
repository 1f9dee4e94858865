"""The model directory format: ``model.json``, one typed record of everything a model is.

A model directory holds ``model.json`` (this record) and one safetensors file of weights per
network. The record names the model *family* (:mod:`caloforge.fastsim.families`), which says
what networks a pipeline has and how they turn conditions into showers, and for each network
its backbone preset, options and EDM ``sigma_data``; then the preprocessing fitted on the
training set, the detectors (one-hot slots) and particle, the energy scale, the sampler
settings, the training record and, for a shipped model, its measured quality.

Format versions: 2 (this one); version 1 files (one network, its fields at the top level)
are read as the ``calodit`` family.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caloforge.atomic import write_json_atomic
from caloforge.config import DiffusionConfig, config_from_dict, config_to_dict
from caloforge.data.transforms import Preprocessing
from caloforge.errors import DataError, SpecError

FORMAT = "caloforge-model"
FORMAT_VERSION = 2
META_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"  # the weights of a one-network family


@dataclass(frozen=True)
class NetworkRecord:
    """One network of a pipeline.

    Attributes:
        preset: backbone preset (:data:`caloforge.models.registry.PRESETS`).
        options: overrides of the preset's fields.
        sigma_data: EDM's ``sigma_data`` of the network's (preprocessed) training data.
        weights: file of the weights in the model directory.
        sha256: the weights file's SHA-256, checked on load (None: not recorded).
    """

    preset: str
    options: dict[str, Any]
    sigma_data: float
    weights: str = WEIGHTS_FILE
    sha256: str | None = None


@dataclass(frozen=True)
class TrainingRecord:
    """How a model was trained.

    Attributes:
        files: per training file: ``path``, ``detector``, ``n_train``, ``n_val``.
        steps: optimiser steps the run was configured for.
        completed_steps: steps done when the weights were written (None: not recorded); for
            a pipeline of several networks, those of its voxel network.
        part_steps: steps done by each network of a pipeline of several (empty otherwise).
    """

    files: list[dict[str, Any]]
    steps: int
    completed_steps: int | None = None
    part_steps: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not self.part_steps:
            del out["part_steps"]
        return out


@dataclass(frozen=True)
class StudentRecord:
    """A consistency student of one network (``caloforge distill``): a few-step sampler.

    Attributes:
        part: the teacher network it replaces when sampling (e.g. ``shape``).
        network: its backbone (the teacher's preset and options), ``sigma_data`` and weights.
        method: ``cd`` (consistency distillation) or ``ect`` (easy consistency tuning).
        sigma_min: where the student is the identity (its boundary condition).
        sigmas: the noise levels of its sampler, one per network evaluation (a sampler of
            N steps uses the first N).
        trained_steps: distillation steps done; data: the files it was distilled on.
        default_steps: the steps it samples in when none are asked for (None: all of
            ``sigmas``); set where fewer measured better (``scripts/ship_default_model.py --sampler-steps``).
    """

    part: str
    network: NetworkRecord
    method: str
    sigma_min: float
    sigmas: list[float]
    trained_steps: int = 0
    data: list[str] = field(default_factory=list)
    default_steps: int | None = None

    def __post_init__(self) -> None:
        if self.default_steps is not None and not 1 <= self.default_steps <= len(self.sigmas):
            raise ValueError(
                f"default_steps must lie in 1..{len(self.sigmas)}, got {self.default_steps}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentRecord:
        return cls(**{**data, "network": NetworkRecord(**data["network"])})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["network"] = {k: v for k, v in out["network"].items() if v is not None}
        if self.default_steps is None:
            del out["default_steps"]
        return out


@dataclass(frozen=True)
class Quality:
    """The measured quality of a shipped model (written with its model card).

    Attributes:
        verdict: one sentence: GOOD, FAIR or POOR and the numbers it follows from.
        auc_high: the high-level classifier AUC, ``{"value": ..., "error": ...}``.
        card: the model card's file name in the model directory.
        samplers: per sampler measured at release (e.g. the teacher beside its student), one
            line of its numbers.
    """

    verdict: str
    auc_high: dict[str, float] | None = None
    card: str | None = None
    samplers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not self.samplers:
            del out["samplers"]
        return out


@dataclass(frozen=True)
class ModelRecord:
    """``model.json``: what a trained model is and how it was made.

    Attributes:
        family: the model family (a key of :data:`caloforge.fastsim.families.FAMILIES`).
        networks: part name -> network (the family's parts, e.g. ``{"shower": ...}``).
        preprocessing: the transforms fitted on the training set.
        detectors: detector name -> its file attributes
            (:data:`caloforge.data.contract.DETECTOR_ATTRS`), in one-hot slot order.
        particle: the incident particle of the training showers.
        calibrated: the energy scale of the training showers (and so of the samples).
        diffusion: training noise and sampler settings.
        training: the training record.
        quality: the measured quality (shipped models), else None.
        students: few-step samplers distilled from the networks, by sampler name.
        sampler: the sampler used when none is asked for (a student's name, or None: the
            diffusion sampler of ``diffusion``).
    """

    family: str
    networks: dict[str, NetworkRecord]
    preprocessing: Preprocessing
    detectors: dict[str, dict[str, Any]]
    particle: str
    calibrated: bool
    diffusion: DiffusionConfig
    training: TrainingRecord
    quality: Quality | None = None
    students: dict[str, StudentRecord] = field(default_factory=dict)
    sampler: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of newer writers, kept as is

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON types, with the format name and version."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "networks": {
                name: {k: v for k, v in dataclasses.asdict(n).items() if v is not None}
                for name, n in self.networks.items()
            },
            "preprocessing": self.preprocessing.to_dict(),
            "detectors": self.detectors,
            "particle": self.particle,
            "calibrated": self.calibrated,
            "diffusion": config_to_dict(self.diffusion),
            "training": self.training.to_dict(),
            **({"quality": self.quality.to_dict()} if self.quality else {}),
            **(
                {"students": {k: v.to_dict() for k, v in self.students.items()}}
                if self.students
                else {}
            ),
            **({"sampler": self.sampler} if self.sampler else {}),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecord:
        """Read a record of any known format version.

        Raises:
            DataError: for another format, a newer version, or missing or malformed fields.
        """
        if data.get("format") != FORMAT:
            raise DataError("not a caloforge model description")
        version = data.get("format_version", 1)
        if version == 1:
            data = _from_version_1(data)
        elif version != FORMAT_VERSION:
            raise DataError(
                f"model format version {version}; this caloforge reads 1 and {FORMAT_VERSION}"
            )
        known = {f.name for f in dataclasses.fields(cls)} | {"format", "format_version"}
        try:
            training = data["training"]
            quality = data.get("quality")
            return cls(
                family=str(data["family"]),
                networks={
                    name: NetworkRecord(**network) for name, network in data["networks"].items()
                },
                preprocessing=Preprocessing.from_dict(data["preprocessing"]),
                detectors=dict(data["detectors"]),
                particle=str(data["particle"]),
                calibrated=bool(data["calibrated"]),
                diffusion=config_from_dict(DiffusionConfig, data.get("diffusion", {})),
                training=TrainingRecord(
                    files=list(training.get("files", [])),
                    steps=int(training["steps"]),
                    completed_steps=training.get("completed_steps"),
                    part_steps=dict(training.get("part_steps", {})),
                ),
                quality=Quality(**quality) if quality else None,
                students={
                    name: StudentRecord.from_dict(student)
                    for name, student in data.get("students", {}).items()
                },
                sampler=data.get("sampler"),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except SpecError as exc:
            raise DataError(f"malformed model description: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"malformed model description ({exc.__class__.__name__}: {exc})"
            ) from None

    def write(self, path: Path) -> None:
        """Write the record as ``path`` (JSON) atomically."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def read(cls, path: Path) -> ModelRecord:
        """Read ``path``.

        Raises:
            DataError: for a missing, unreadable or malformed file.
        """
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise DataError(f"{path} is not a caloforge model description")
        try:
            return cls.from_dict(data)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None


def _from_version_1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record (one CaloDiT, its fields at the top level) as version 2."""
    data = dict(data)
    network = {
        "preset": data.pop("preset", None),
        "options": data.pop("model", {}),
        "sigma_data": data.pop("sigma_data", None),
    }
    if network["preset"] is None or network["sigma_data"] is None:
        raise DataError("malformed model description (no preset or sigma_data)")
    return {**data, "family": "calodit", "networks": {"shower": network}}
