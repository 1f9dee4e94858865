"""Defaults of caloforge, in one place.

Library functions and the command line take their defaults from these frozen dataclasses.
Training runs are configured by :class:`RunConfig`, loaded from YAML with unknown keys
rejected and one generic override syntax (``--set train.lr=2e-4``), see :func:`load_config`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from caloforge.errors import SpecError


def _require(settings: Any, section: str, **checks: bool) -> None:
    """Raise SpecError naming the first setting of ``section`` whose check failed."""
    for name, ok in checks.items():
        if not ok:
            raise SpecError(
                f"= {getattr(settings, name)!r} is out of range",
                subject=f"{section}.{name}" if section else name,
            )


@dataclass(frozen=True)
class SimulationDefaults:
    """``caloforge simulate`` and the Geant4 application."""

    particle: str = "gamma"
    theta: str = repr(math.pi / 2)  # rad: normal incidence on the barrel
    phi: str = "0"  # rad
    seed: int = 1
    workers: int = 1
    cut_mm: float = 0.7  # production cut, as Par04
    cells: str = "45x16x9"  # mesh z x phi x r, CaloChallenge dataset 2
    chunk_size: int = 50  # showers per resumable chunk


@dataclass(frozen=True)
class CalibrationDefaults:
    """``caloforge calibrate``: photons at normal incidence."""

    energies_gev: tuple[float, ...] = (1.0, 10.0, 100.0)
    n: int = 20  # photons per energy
    seed: int = 1
    # A user detector without a sampling fraction gets one measured at run start with:
    run_start_energy_gev: float = 10.0
    run_start_n: int = 20


@dataclass(frozen=True)
class ClassifierConfig:
    """The classifier network and its training."""

    hidden: int = 256  # units per hidden layer (CaloChallenge: 2048)
    hidden_layers: int = 2  # hidden layers of the MLP
    epochs: int = 30  # training epochs; the best one on the test set is kept (CaloChallenge: 50)
    batch_size: int = 1000  # CaloChallenge's; smaller when the training set is small
    lr: float = 2e-4  # Adam learning rate
    repeats: int = 3  # independent trainings averaged (CaloChallenge: 10)
    float64: bool = False  # CaloChallenge trains in float64
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / test / validation

    def __post_init__(self) -> None:
        _require(
            self,
            "classifier",
            hidden=self.hidden >= 1,
            hidden_layers=self.hidden_layers >= 1,
            epochs=self.epochs >= 1,
            batch_size=self.batch_size >= 1,
            lr=self.lr > 0,
            repeats=self.repeats >= 1,
        )

    def describe(self) -> str:
        """One line for the report."""
        dtype = "float64" if self.float64 else "float32"
        return (
            f"MLP {self.hidden_layers} x {self.hidden} LeakyReLU, {self.epochs} epochs, "
            f"batch {self.batch_size}, Adam lr {self.lr:g}, {dtype}, {self.repeats} repeats"
        )


PUBLISHED_CLASSIFIER = ClassifierConfig(hidden=2048, epochs=50, repeats=10, float64=True)
"""The network and training of the published CaloChallenge results."""


@dataclass(frozen=True)
class EvaluationConfig:
    """``caloforge evaluate``: what to compute and how."""

    threshold_mev: float | None = None  # voxel threshold; None: CaloChallenge's for the scale
    classifier: ClassifierConfig = ClassifierConfig()
    low_level: bool = True  # train the low-level (voxel) classifier too
    seed: int = 0  # seeds the reference split, classifiers, bootstraps, isolation forest
    n_boot: int = 50  # bootstrap resamples for separation-power errors
    theta_bins: int = 3  # equal theta bins over the reference's range (continuous sets)
    max_points: int = 20  # a reference with at most this many distinct conditions is "fixed"
    min_bin: int = 50  # condition bins with fewer showers per sample are skipped
    min_baseline: int = 50  # the reference is split for the baseline if each half has this many
    limit: int | None = None  # read only the first showers of each file
    n_anomalies: int = 6  # most anomalous generated showers drawn
    plots: bool = True  # draw the PNGs (metrics.json and index.html are always written)

    def __post_init__(self) -> None:
        if self.threshold_mev is not None and not 0 <= self.threshold_mev < math.inf:
            raise SpecError(
                f"must be a finite energy >= 0, got {self.threshold_mev * 1e3:g} keV",
                subject="threshold_mev",
            )
        _require(
            self,
            "",
            seed=0 <= self.seed < 2**63,
            limit=self.limit is None or self.limit >= 1,
            n_boot=self.n_boot >= 1,
            theta_bins=self.theta_bins >= 1,
        )


SIMULATION = SimulationDefaults()
CALIBRATION = CalibrationDefaults()


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation of ``caloforge train``."""

    steps: int = 10_000  # optimiser steps
    batch_size: int = 64  # global batch, split evenly over the DDP processes
    lr: float = 3e-4  # peak AdamW learning rate
    lr_min: float = 1e-5  # learning rate at the end of the cosine decay
    warmup_steps: int = 200  # linear warm-up from 0 to lr
    weight_decay: float = 0.01  # AdamW, on weights of rank >= 2 only
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW
    grad_clip: float = 1.0  # max global gradient norm
    ema_decay: float = 0.999  # EMA of the weights, ramped up as min(decay, (1 + t) / (10 + t))
    seed: int = 0  # data order, noise and initialisation
    val_fraction: float = 0.05  # of the showers held out for the validation loss
    val_every: int = 250  # steps between validation losses (and loss-curve updates)
    val_batches: int = 4  # batches of the validation loss (fixed noise)
    checkpoint_every: int = 250  # steps between checkpoints
    # checkpoints at multiples of this step are kept for good (0: only the last two are kept),
    # e.g. to evaluate a run at several points of its training; a multiple of checkpoint_every
    keep_every: int = 0
    log_every: int = 10  # steps between rows of metrics.csv
    # early stopping: stop after this many validations without a better validation loss, and
    # export the model of the best one (0: never stop early, export at every checkpoint)
    patience: int = 0

    def __post_init__(self) -> None:
        _require(
            self,
            "train",
            steps=self.steps >= 1,
            batch_size=self.batch_size >= 1,
            lr=self.lr > 0,
            lr_min=0 <= self.lr_min <= self.lr,
            warmup_steps=self.warmup_steps >= 0,
            weight_decay=self.weight_decay >= 0,
            betas=all(0 <= b < 1 for b in self.betas),
            grad_clip=self.grad_clip > 0,
            ema_decay=0 <= self.ema_decay < 1,
            val_fraction=0 <= self.val_fraction < 1,
            val_every=self.val_every >= 1,
            val_batches=self.val_batches >= 1,
            checkpoint_every=self.checkpoint_every >= 1,
            keep_every=self.keep_every >= 0,
            log_every=self.log_every >= 1,
            patience=self.patience >= 0,
            seed=0 <= self.seed < 2**63,
        )
        if self.keep_every % self.checkpoint_every:
            raise SpecError(
                f"= {self.keep_every} would keep no checkpoint: checkpoints are written every "
                f"{self.checkpoint_every} steps (train.checkpoint_every); make it a multiple",
                subject="train.keep_every",
            )


@dataclass(frozen=True)
class DiffusionConfig:
    """EDM training noise and sampling (Karras et al. 2022)."""

    # Training noise levels: ln sigma ~ N(p_mean, p_std^2). EDM's image values (-1.2, 1.2) put
    # 0.2 % of the steps above sigma = 10, where the input is mostly noise and only the
    # conditions tell the shower's energy and direction: trained so, the model ignored its
    # conditions at high noise and sampling from sigma_max went astray. (-0.4, 1.4) puts 2.7 %
    # there; after 300 steps the denoising error at sigma = 80 with shuffled conditions is
    # 8 % above that with the true ones (0.6 % at (-1.2, 1.2)).
    p_mean: float = -0.4
    p_std: float = 1.4
    sigma_min: float = 0.002  # sampling grid
    sigma_max: float = 80.0
    rho: float = 7.0
    steps: int = 32  # sampler steps
    sampler: str = "heun-stochastic"  # heun-stochastic (EDM Algorithm 2), heun, euler
    s_churn: float = 0.0  # heun-stochastic (EDM Algorithm 2): S_churn, 0 = deterministic Heun
    s_tmin: float = 0.0  # noise is added only for sigma in [s_tmin, s_tmax]
    s_tmax: float = math.inf
    s_noise: float = 1.0  # scale of the added noise

    def __post_init__(self) -> None:
        _require(
            self,
            "diffusion",
            p_std=self.p_std > 0,
            sigma_min=0 < self.sigma_min < self.sigma_max,
            rho=self.rho > 0,
            steps=self.steps >= 1,
            s_churn=self.s_churn >= 0,
            s_tmin=0 <= self.s_tmin <= self.s_tmax,
            s_noise=self.s_noise > 0,
        )

    @property
    def churn(self) -> dict[str, float]:
        """The keyword arguments of the stochastic sampler."""
        return {
            "S_churn": self.s_churn,
            "S_tmin": self.s_tmin,
            "S_tmax": self.s_tmax,
            "S_noise": self.s_noise,
        }


ENERGY_TRAINING = TrainConfig(
    steps=5_000,  # ~10 ms per step at batch 256 on 2 CPU cores: about a minute
    batch_size=256,
    lr=1e-3,
    lr_min=1e-5,
    warmup_steps=200,
    ema_decay=0.999,
    val_every=250,
    checkpoint_every=500,
)
"""Training of the factorised pipeline's energy model (a 0.35 M parameter MLP)."""


@dataclass(frozen=True)
class EnergyModelConfig:
    """The energy model of the ``factorized`` family: layer energies given the conditions."""

    preset: str = "energy-mlp"  # backbone preset (caloforge.models.registry)
    model: Mapping[str, Any] = field(default_factory=dict)  # overrides of the preset's fields
    train: TrainConfig = ENERGY_TRAINING
    # the code's values standardised per detector and incident energy, not globally
    # (caloforge.data.factorized); a run started from a model without it (--init) fits it and
    # trains the energy network afresh
    conditional: bool = False


VOXEL_VALUES = ("fraction", "log-energy", "fraction-by-layer")
"""What an occupied voxel's value in a factorised shape model's code is."""


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run resolves (saved as ``config.yaml`` in the run folder).

    ``preset``, ``model`` and ``train`` are those of the network that generates voxels: the
    whole shower (family ``calodit``) or the within-layer fractions (family ``factorized``,
    whose energy model is configured in ``energy``). ``diffusion`` is shared by the networks.
    """

    family: str = "calodit"  # calodit or factorized (caloforge.fastsim.families)
    preset: str = "calodit-cpu"  # backbone preset (caloforge.models.registry)
    model: Mapping[str, Any] = field(default_factory=dict)  # overrides of the preset's fields
    train: TrainConfig = TrainConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    energy: EnergyModelConfig = EnergyModelConfig()
    # factorized: an occupancy bit beside each layer's and each voxel's value in the energy
    # and shape models' codes (caloforge.data.factorized), instead of point masses at 0
    occupancy: bool = True
    # factorized: the shape model sees the log layer energies beside the layer logits
    layer_logs: bool = True
    # factorized: an occupied voxel's value in the shape model's code: the logit of its
    # fraction of its layer, the log of its energy, or the logit standardised about a line in
    # the log of its layer's energy (caloforge.data.factorized)
    voxel_values: str = "fraction"

    def __post_init__(self) -> None:
        _require(
            self,
            "",
            voxel_values=self.voxel_values in VOXEL_VALUES
            and (self.occupancy or self.voxel_values == "fraction"),
        )


DISTILL_TRAINING = TrainConfig(
    steps=2_000,
    batch_size=64,
    lr=1e-4,  # CaloClouds II's, for a student started from its teacher
    lr_min=1e-5,
    warmup_steps=0,  # the student starts from trained weights
    weight_decay=0.0,
    ema_decay=0.999,
    val_every=250,
    checkpoint_every=100,
)
"""Training of a consistency student (``caloforge distill``)."""

DISTILL_METHODS = ("cd", "ect")


@dataclass(frozen=True)
class DistillConfig:
    """``caloforge distill``: a 1-2 step consistency student of a model's voxel network
    (:mod:`caloforge.diffusion.consistency`)."""

    method: str = "cd"  # cd (consistency distillation) or ect (easy consistency tuning)
    levels: int = 18  # cd: levels of the Karras grid of the teacher's Heun steps (CaloClouds II)
    target_decay: float = 0.95  # cd: EMA of the target network (ect: 0, the student itself)
    huber_c: float = 5.4e-4  # pseudo-Huber constant per value (iCT's 0.00054 sqrt(d))
    ect_stages: int = 8  # ect: times dt shrinks over the run
    ect_q: float = 2.0  # ect: factor it shrinks by
    two_step_sigma: float = 0.8  # the second noise level of the 2-step sampler
    train: TrainConfig = DISTILL_TRAINING

    def __post_init__(self) -> None:
        _require(
            self,
            "distill",
            method=self.method in DISTILL_METHODS,
            levels=self.levels >= 2,
            target_decay=0 <= self.target_decay < 1,
            huber_c=self.huber_c >= 0,
            ect_stages=self.ect_stages >= 1,
            ect_q=self.ect_q > 1,
            two_step_sigma=self.two_step_sigma > 0,
        )


T = TypeVar("T")


def _convert(value: Any, kind: Any, where: str, base: Any = None) -> Any:
    """``value`` checked against (and converted to) the annotation ``kind``; a section given in
    part keeps the rest of ``base`` (its default)."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):  # type: ignore[arg-type]
            return value
        if not isinstance(value, Mapping):
            raise SpecError(f"{where}: expected a mapping, got {value!r}")
        return _build(kind, value, f"{where}.", base)  # type: ignore[arg-type]
    if kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != len(args):
            raise SpecError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, where) for v, a in zip(value, args, strict=True))
    if origin in (Mapping, dict) or kind in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise SpecError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        for arg in typing.get_args(kind):
            if arg is not type(None):
                return _convert(value, arg, where)
    raise SpecError(f"{where}: unsupported setting type {kind!r}")


def _default(cls: type, name: str) -> Any:
    """The default of a dataclass field (None if it has none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return None


def _build(cls: type[T], values: Mapping[str, Any], where: str = "", base: Any = None) -> T:
    """``cls`` from ``values``; the fields not given keep ``base``'s (else the defaults)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise SpecError(
            f"unknown setting(s) {', '.join(f'{where}{k}' for k in unknown)}; "
            f"known in {where or 'the top level'}: {', '.join(sorted(names))}"
        )
    kwargs = {
        k: _convert(
            v,
            hints[k],
            f"{where}{k}",
            getattr(base, k) if base is not None else _default(cls, k),
        )
        for k, v in values.items()
    }
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise SpecError(f"{dotted}: {key} is not a section", subject="set")
    node[leaf] = value


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """A frozen config dataclass from defaults, an optional YAML file and ``--set`` overrides.

    Args:
        cls: the dataclass (e.g. :class:`RunConfig`).
        path: YAML file with a subset of the fields (nested sections as mappings).
        overrides: ``"section.key=value"`` strings, values parsed as YAML scalars.

    Raises:
        SpecError: for a missing or malformed file, unknown keys, or values of the wrong type.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError(f"cannot read config {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SpecError(f"{path} is not a UTF-8 text file (a YAML config)") from None
        except yaml.YAMLError as exc:
            raise SpecError(f"{path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SpecError(f"{path}: the config must be a mapping")
        tree = loaded or {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SpecError(f"{item!r}: expected section.key=value", subject="set")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        _set(tree, key.strip(), value)
    return _build(cls, tree)


def config_from_dict(cls: type[T], values: Mapping[str, Any]) -> T:
    """A config dataclass from a (nested) mapping, e.g. one saved with :func:`config_to_dict`.

    Raises:
        SpecError: for unknown keys or values of the wrong type.
    """
    return _build(cls, values)


def config_to_dict(config: Any) -> Any:
    """A config dataclass as plain YAML/JSON types (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {k: config_to_dict(v) for k, v in config.items()}
    if isinstance(config, tuple | list):
        return [config_to_dict(v) for v in config]
    return config
