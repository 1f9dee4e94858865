"""A trained fast-simulation model: backbone + EDM preconditioning + preprocessing + metadata.

On disk a model is a directory with ``model.json`` (preset, backbone settings, preprocessing,
sigma_data, the detectors and particle it was trained on, the training data and steps) and
``model.safetensors`` (the EMA weights). ``caloforge train`` writes one into its run folder at
every checkpoint; ``load_model("default")`` loads the model shipped in the package.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from caloforge.config import DiffusionConfig, config_from_dict
from caloforge.data.inspect import THRESHOLD_DATASETS_2_3_MEV, THRESHOLD_RAW_MEV
from caloforge.data.transforms import Preprocessing
from caloforge.diffusion.precond import ClampedDenoiser, Denoiser, EDMPrecond
from caloforge.diffusion.samplers import SAMPLERS, ShowerNoise
from caloforge.diffusion.schedules import karras_sigmas
from caloforge.errors import DataError, OutputError, SpecError
from caloforge.models.registry import build_model

log = logging.getLogger(__name__)

META_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "caloforge-model"


def shower_seeds(seed: int, indices: range) -> list[int]:
    """Sampler seed of each shower: a function of (run seed, shower index) only."""
    return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in indices]


@dataclass
class FastSimModel:
    """A denoiser with everything needed to turn conditions into showers and back.

    Attributes:
        net: the preconditioned denoiser ``D(x, sigma, cond)`` (EMA weights).
        preprocessing: the transforms fitted on the training set.
        meta: ``model.json`` without the preprocessing (preset, backbone settings,
            sigma_data, detectors, particle, calibrated, diffusion settings, training record).
    """

    net: EDMPrecond
    preprocessing: Preprocessing
    meta: dict[str, Any]

    @property
    def detectors(self) -> dict[str, dict[str, Any]]:
        """Detector name -> the file attributes describing it (mesh, sampling fraction, ...)."""
        return dict(self.meta["detectors"])

    @property
    def diffusion(self) -> DiffusionConfig:
        """The sampler settings the model was trained with (defaults if not recorded)."""
        return config_from_dict(DiffusionConfig, self.meta.get("diffusion", {}))

    @classmethod
    def build(
        cls,
        preset: str,
        model_overrides: dict[str, Any],
        preprocessing: Preprocessing,
        sigma_data: float,
        meta: dict[str, Any],
    ) -> FastSimModel:
        """A fresh (untrained) model for the given preprocessing."""
        backbone = build_model(
            preset,
            **{
                "mesh_shape": tuple(preprocessing.mesh_shape),
                "n_cond": preprocessing.conditions.n_cond,
                **model_overrides,
            },
        )
        net = EDMPrecond(backbone, sigma_data=sigma_data)
        meta = {**meta, "preset": preset, "model": dict(model_overrides), "sigma_data": sigma_data}
        return cls(net, preprocessing, meta)

    def save(self, directory: str | Path) -> None:
        """Write ``model.json`` and ``model.safetensors`` into ``directory`` atomically each."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, **self.meta, "preprocessing": self.preprocessing.to_dict()}
        state = {k: v.detach().contiguous().cpu() for k, v in self.net.state_dict().items()}
        try:
            fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".safetensors", dir=directory)
            os.close(fd)
            save_file(state, tmp)
            os.replace(tmp, directory / WEIGHTS_FILE)
            fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".json", dir=directory)
            with os.fdopen(fd, "w") as f:
                json.dump(meta, f, indent=2)
            os.replace(tmp, directory / META_FILE)
        except OSError as exc:
            raise OutputError(f"cannot write the model into {directory}: {exc}") from None

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
        steps: int | None = None,
        sampler: str | None = None,
        churn: Mapping[str, float] | None = None,
        batch_size: int = 256,
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
            steps, sampler: sampler settings (default: the model's).
            churn: overrides of the stochastic sampler's ``S_churn``, ``S_tmin``, ``S_tmax``,
                ``S_noise`` (default: the model's ``diffusion`` settings).
            batch_size: showers per network call.
            allow_extrapolation: allow conditions outside the trained ranges.
            allow_spare_slot: an unknown detector gets the spare one-hot slot.
            on_batch: called with the number of showers after each batch.

        Returns:
            Voxel energies, (N, V) float32.

        Raises:
            SpecError: for an unknown detector or sampler, or out-of-range conditions.
        """
        settings = self.diffusion
        steps = settings.steps if steps is None else steps
        sampler = settings.sampler if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise SpecError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
        if steps < 1 or batch_size < 1:
            raise SpecError("--steps and --batch-size must be >= 1")
        conditions = self.preprocessing.conditions
        slot = conditions.slot(detector, allow_spare=allow_spare_slot)
        conditions.check(energies, theta, allow_extrapolation=allow_extrapolation)
        cond = torch.from_numpy(
            conditions.forward(energies, theta, phi, np.full(len(energies), slot))
        )
        sigmas = karras_sigmas(steps, settings.sigma_min, settings.sigma_max, settings.rho)
        kwargs: dict[str, Any] = {}
        if churn and sampler != "heun-stochastic":
            raise SpecError(f"the churn settings apply to heun-stochastic, not to {sampler}")
        if sampler == "heun-stochastic":
            unknown = set(churn or {}) - set(settings.churn)
            if unknown:
                raise SpecError(f"unknown sampler settings {sorted(unknown)}")
            kwargs.update({**settings.churn, **(churn or {})})
        shape = (1, *self.preprocessing.mesh_shape)
        threshold = THRESHOLD_DATASETS_2_3_MEV if self.meta.get("calibrated") else THRESHOLD_RAW_MEV
        self.net.eval()
        denoiser = self.sampling_denoiser()
        out = np.empty((len(energies), int(np.prod(shape))), dtype=np.float32)
        for start in range(0, len(energies), batch_size):
            stop = min(start + batch_size, len(energies))
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
        DataError: for a missing or malformed model.
    """
    directory = default_model_dir() if str(where) == "default" else Path(where)
    meta_path, weights = directory / META_FILE, directory / WEIGHTS_FILE
    if not meta_path.exists() or not weights.exists():
        what = "the shipped default model" if str(where) == "default" else str(directory)
        raise DataError(f"{what}: no trained model there ({META_FILE} and {WEIGHTS_FILE} needed)")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise DataError(f"{meta_path} is not a caloforge model description")
        preprocessing = Preprocessing.from_dict(meta.pop("preprocessing"))
        meta.pop("format")
        model = FastSimModel.build(
            meta["preset"],
            dict(meta.get("model", {})),
            preprocessing,
            float(meta["sigma_data"]),
            meta,
        )
        model.net.load_state_dict(load_file(weights))
    except (OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot load the model in {directory}: {exc}") from None
    model.net.eval()
    return model


def copy_model(source: str | Path, target: str | Path) -> None:
    """Copy a model directory's two files (e.g. a run's model into the package)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in (META_FILE, WEIGHTS_FILE):
        shutil.copy2(Path(source) / name, target / name)
