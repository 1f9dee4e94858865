"""A trained fast-simulation model: its networks, preprocessing and record, and sampling.

On disk a model is a directory (:mod:`caloforge.fastsim.record`): ``model.json`` and the
weights of each network (the EMA weights of training). ``caloforge train`` writes one into its
run folder at every checkpoint; ``load_model("default")`` loads the model shipped in the
package.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from caloforge.atomic import atomic_file
from caloforge.config import DiffusionConfig
from caloforge.data.contract import voxel_threshold
from caloforge.data.transforms import Preprocessing
from caloforge.diffusion.precond import ClampedDenoiser, Denoiser, EDMPrecond
from caloforge.diffusion.samplers import SAMPLERS, ShowerNoise
from caloforge.diffusion.schedules import karras_sigmas
from caloforge.errors import DataError, SpecError
from caloforge.fastsim.families import build_networks
from caloforge.fastsim.record import META_FILE, ModelRecord

log = logging.getLogger(__name__)


def shower_seeds(seed: int, indices: range) -> list[int]:
    """Sampler seed of each shower: a function of (run seed, shower index) only."""
    return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in indices]


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample; None takes the model's own setting.

    Attributes:
        sampler: ``heun-stochastic``, ``heun`` or ``euler``.
        steps: sampler steps.
        churn: overrides of the stochastic sampler's ``S_churn``, ``S_tmin``, ``S_tmax``,
            ``S_noise``.
        batch_size: showers per network call.
    """

    sampler: str | None = None
    steps: int | None = None
    churn: Mapping[str, float] = field(default_factory=dict)
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise SpecError(
                f"{self.sampler!r} is unknown; choose from {', '.join(SAMPLERS)}",
                subject="sampler",
            )
        if self.steps is not None and self.steps < 1:
            raise SpecError(f"must be >= 1, got {self.steps}", subject="sampler_steps")
        if self.batch_size < 1:
            raise SpecError(f"must be >= 1, got {self.batch_size}", subject="batch_size")
        unknown = sorted(set(self.churn) - set(DiffusionConfig().churn))
        if unknown:
            raise SpecError(f"unknown sampler settings {unknown}")
        if self.churn and self.sampler not in (None, "heun-stochastic"):
            raise SpecError(
                f"{self.sampler}: the churn settings apply to heun-stochastic only",
                subject="sampler",
            )
        for name, value in self.churn.items():
            if not value >= 0:  # NaN fails too
                raise SpecError(f"{name} must be >= 0, got {value}")

    def describe(self, model: FastSimModel) -> dict[str, Any]:
        """The resolved settings, for the ``generator`` attribute."""
        sampler = model.diffusion.sampler if self.sampler is None else self.sampler
        return {
            "sampler": sampler,
            "steps": model.diffusion.steps if self.steps is None else self.steps,
            **({**model.diffusion.churn, **self.churn} if sampler == "heun-stochastic" else {}),
        }


@dataclass
class FastSimModel:
    """A model's networks with everything needed to turn conditions into showers.

    Attributes:
        record: the model's ``model.json`` (family, networks, preprocessing, detectors, ...).
        networks: part name -> preconditioned denoiser ``D(x, sigma, cond)`` (EMA weights).
    """

    record: ModelRecord
    networks: dict[str, EDMPrecond]

    @classmethod
    def build(cls, record: ModelRecord) -> FastSimModel:
        """A fresh (untrained) model of a record."""
        return cls(record, build_networks(record))

    @property
    def net(self) -> EDMPrecond:
        """The shower denoiser of the ``calodit`` family (its one network)."""
        return self.networks["shower"]

    @property
    def preprocessing(self) -> Preprocessing:
        """The transforms fitted on the training set."""
        return self.record.preprocessing

    @property
    def detectors(self) -> dict[str, dict[str, Any]]:
        """Detector name -> the file attributes describing it (mesh, sampling fraction, ...)."""
        return dict(self.record.detectors)

    @property
    def diffusion(self) -> DiffusionConfig:
        """The sampler settings the model was trained with."""
        return self.record.diffusion

    def with_weights(
        self, networks: Mapping[str, torch.nn.Module], completed_steps: int
    ) -> FastSimModel:
        """This model with other weights (e.g. a checkpoint's EMA), its record saying when."""
        training = replace(self.record.training, completed_steps=completed_steps)
        return FastSimModel(replace(self.record, training=training), dict(networks))  # type: ignore[arg-type]

    def save(self, directory: str | Path) -> None:
        """Write the weights, then ``model.json``, into ``directory``, each atomically.

        Raises:
            OutputError: if the directory cannot be written.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for part, net in self.networks.items():
            state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
            with atomic_file(directory / self.record.networks[part].weights) as tmp:
                save_file(state, tmp)
        self.record.write(directory / META_FILE)

    @torch.no_grad()
    def sampling_denoiser(self) -> Denoiser:
        """The denoiser the samplers use: the network, its estimates kept within the range of
        the training data when that range was recorded (see :class:`ClampedDenoiser`)."""
        transform = self.preprocessing.shower
        if transform.max_value is None:  # a model trained before the range was recorded
            return self.net
        return ClampedDenoiser(self.net, transform.zero_level, transform.max_value)

    def generate(
        self,
        energies: np.ndarray,
        theta: np.ndarray,
        phi: np.ndarray,
        detector: str,
        seeds: list[int],
        *,
        settings: SamplerSettings | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        allow_extrapolation: bool = False,
        allow_spare_slot: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Showers for the given conditions, in MeV as the training files (raw or calibrated).

        Each shower depends only on its conditions and its seed, not on the batch it is drawn
        in. The sampler keeps the denoised estimates within the range of the training data
        (when the model records it). Post-processing: no negative energies, and the voxel
        threshold of the training files' energy scale (0.5 keV raw, 15.15 keV calibrated).

        Args:
            energies: incident energies in MeV, (N,).
            theta, phi: angles in rad, (N,).
            detector: a detector the model was trained on.
            seeds: one sampler seed per shower (see :func:`shower_seeds`).
            settings: sampler, steps, churn and batch size (default: the model's).
            steps, batch_size: shorthands replacing those of ``settings``.
            allow_extrapolation: allow conditions outside the trained ranges.
            allow_spare_slot: an unknown detector gets the spare one-hot slot.
            on_batch: called with the number of showers after each batch.

        Returns:
            Voxel energies, (N, V) float32.

        Raises:
            SpecError: for an unknown detector or sampler, or out-of-range conditions.
        """
        settings = settings or SamplerSettings()
        if steps is not None or batch_size is not None:
            settings = replace(
                settings,
                steps=settings.steps if steps is None else steps,
                batch_size=settings.batch_size if batch_size is None else batch_size,
            )
        trained = self.diffusion
        sampler = settings.sampler or trained.sampler
        n_steps = settings.steps or trained.steps
        conditions = self.preprocessing.conditions
        slot = conditions.slot(detector, allow_spare=allow_spare_slot)
        conditions.check(energies, theta, allow_extrapolation=allow_extrapolation)
        cond = torch.from_numpy(
            conditions.forward(energies, theta, phi, np.full(len(energies), slot))
        )
        sigmas = karras_sigmas(n_steps, trained.sigma_min, trained.sigma_max, trained.rho)
        kwargs: dict[str, Any] = {}
        if sampler == "heun-stochastic":
            kwargs.update({**trained.churn, **settings.churn})
        batch = settings.batch_size
        shape = (1, *self.preprocessing.mesh_shape)
        threshold, _ = voxel_threshold(self.record.calibrated)
        self.net.eval()
        denoiser = self.sampling_denoiser()
        out = np.empty((len(energies), int(np.prod(shape))), dtype=np.float32)
        for start in range(0, len(energies), batch):
            stop = min(start + batch, len(energies))
            noise = ShowerNoise(seeds[start:stop])
            x_T = noise.randn(shape) * sigmas[0]  # (b, 1, Z, A, R)
            x_0 = SAMPLERS[sampler](
                denoiser, x_T, sigmas, cond=cond[start:stop], noise=noise, **kwargs
            )
            showers = self.preprocessing.shower.inverse(
                x_0.reshape(stop - start, -1).numpy(), energies[start:stop]
            )
            if not np.isfinite(showers).all():
                raise DataError("the model produced non-finite energies (a broken model?)")
            showers[showers < threshold] = 0.0
            out[start:stop] = showers
            if on_batch is not None:
                on_batch(stop - start)
        return out


def default_model_dir() -> Path:
    """The directory of the model shipped in the package."""
    return Path(str(resources.files("caloforge.models") / "default"))


def load_model(where: str | Path) -> FastSimModel:
    """Load ``"default"`` (the shipped model) or a model directory (e.g. a training run).

    Raises:
        DataError: for a missing or malformed model, or corrupt weights.
    """
    directory = model_dir(where)
    what = "the shipped default model" if str(where) == "default" else str(directory)
    if not (directory / META_FILE).exists():
        raise DataError(f"{what}: no trained model there (no {META_FILE})")
    record = ModelRecord.read(directory / META_FILE)
    model = FastSimModel.build(record)
    for part, net in model.networks.items():
        weights = directory / record.networks[part].weights
        if not weights.exists():
            raise DataError(
                f"{what}: the weights of its {part} network ({weights.name}) are missing"
            )
        try:
            net.load_state_dict(load_file(weights))
        except (OSError, RuntimeError, SafetensorError) as exc:
            raise DataError(f"cannot load the weights {weights}: {exc}") from None
        net.eval()
    return model


def model_dir(where: str | Path) -> Path:
    """The directory of ``"default"`` (the shipped model) or of a model directory."""
    return default_model_dir() if str(where) == "default" else Path(where)


def copy_model(source: str | Path, target: str | Path) -> None:
    """Copy a model directory's record and weights (e.g. a run's model into the package)."""
    source, target = model_dir(source), Path(target)
    record = ModelRecord.read(source / META_FILE)
    target.mkdir(parents=True, exist_ok=True)
    for network in record.networks.values():
        shutil.copy2(source / network.weights, target / network.weights)
    shutil.copy2(source / META_FILE, target / META_FILE)
