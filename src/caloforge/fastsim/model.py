"""A trained fast-simulation model: its networks, preprocessing and record, and sampling.

On disk a model is a directory (:mod:`caloforge.fastsim.record`): ``model.json`` and the
weights of each network (the EMA weights of training). ``caloforge train`` writes one into its
run folder at every checkpoint; ``load_model("default")`` loads the model shipped in the
package.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from caloforge.atomic import atomic_file, file_sha256
from caloforge.config import DiffusionConfig
from caloforge.data.contract import voxel_threshold
from caloforge.data.factorized import conserve_threshold
from caloforge.data.transforms import Preprocessing
from caloforge.diffusion.consistency import ConsistencyPrecond, sample_consistency
from caloforge.diffusion.precond import ClampedDenoiser, Denoiser, EDMPrecond
from caloforge.diffusion.samplers import SAMPLERS, ShowerNoise
from caloforge.diffusion.schedules import karras_sigmas
from caloforge.errors import DataError, SpecError
from caloforge.fastsim.families import FACTORIZED, build_network, build_networks, voxel_part
from caloforge.fastsim.record import META_FILE, ModelRecord, NetworkRecord, StudentRecord
from caloforge.train.checkpoint import write_safetensors

log = logging.getLogger(__name__)

Sampling = Callable[[str, tuple[int, ...], torch.Tensor, ShowerNoise], torch.Tensor]
"""``sample(part, shape, cond, noise)``: one sampler run of the network ``part`` (or its
student) from each shower's own noise."""


def shower_seeds(seed: int, indices: Iterable[int]) -> list[int]:
    """Sampler seed of each shower: a function of (run seed, shower index) only."""
    return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in indices]


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample; None takes the model's own setting.

    Attributes:
        sampler: ``heun-stochastic``, ``heun`` or ``euler`` (the diffusion samplers), or the
            name of a consistency student of the model (``caloforge distill``).
        steps: sampler steps (a student: 1 or 2 network evaluations).
        churn: overrides of the stochastic sampler's ``S_churn``, ``S_tmin``, ``S_tmax``,
            ``S_noise``.
        batch_size: showers per network call.
    """

    sampler: str | None = None
    steps: int | None = None
    churn: Mapping[str, float] = field(default_factory=dict)
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise SpecError(f"must be >= 1, got {self.steps}", subject="sampler_steps")
        if self.batch_size < 1:
            raise SpecError(f"must be >= 1, got {self.batch_size}", subject="batch_size")
        unknown = sorted(set(self.churn) - set(DiffusionConfig().churn))
        if unknown:
            raise SpecError(f"unknown sampler settings {unknown}")
        if self.churn and self.sampler is not None and self.sampler != "heun-stochastic":
            raise SpecError(
                f"{self.sampler}: the churn settings apply to heun-stochastic only",
                subject="sampler",
            )
        for name, value in self.churn.items():
            if not value >= 0:  # NaN fails too
                raise SpecError(f"{name} must be >= 0, got {value}")

    def resolve(self, model: FastSimModel) -> tuple[str, int]:
        """(sampler, steps) with the model's defaults filled in.

        Raises:
            SpecError: for a sampler that is neither a diffusion sampler nor a student of the
                model, or more steps than a student has noise levels.
        """
        record = model.record
        sampler = self.sampler or record.sampler or record.diffusion.sampler
        student = record.students.get(sampler)
        if student is None and sampler not in SAMPLERS:
            known = [*SAMPLERS, *record.students]
            raise SpecError(f"{sampler!r} is unknown; choose from {', '.join(known)}", subject="sampler")  # fmt: skip
        if student is None:
            return sampler, self.steps or record.diffusion.steps
        steps = self.steps or student.default_steps or len(student.sigmas)
        if steps > len(student.sigmas):
            raise SpecError(
                f"the student {sampler!r} samples in at most {len(student.sigmas)} steps, "
                f"not {steps}",
                subject="sampler_steps",
            )
        if self.churn:
            raise SpecError(f"{sampler}: the churn settings apply to heun-stochastic only", subject="sampler")  # fmt: skip
        return sampler, steps

    def describe(self, model: FastSimModel) -> dict[str, Any]:
        """The resolved settings, for the ``generator`` attribute."""
        sampler, steps = self.resolve(model)
        out: dict[str, Any] = {"sampler": sampler, "steps": steps}
        if sampler in model.record.students:
            out["student"] = model.record.students[sampler].method
        if sampler == "heun-stochastic":
            out.update({**model.diffusion.churn, **self.churn})
        return out


@dataclass
class FastSimModel:
    """A model's networks with everything needed to turn conditions into showers.

    Attributes:
        record: the model's ``model.json`` (family, networks, preprocessing, detectors, ...).
        networks: part name -> preconditioned denoiser ``D(x, sigma, cond)`` (EMA weights).
        students: sampler name -> consistency student ``f(x, sigma, cond)`` of one network.
    """

    record: ModelRecord
    networks: dict[str, EDMPrecond]
    students: dict[str, ConsistencyPrecond] = field(default_factory=dict)

    @classmethod
    def build(cls, record: ModelRecord) -> FastSimModel:
        """A fresh (untrained) model of a record."""
        students = {name: build_student(record, s) for name, s in record.students.items()}
        return cls(record, build_networks(record), students)

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

    def with_trained(self, part: str, net: torch.nn.Module, step: int) -> FastSimModel:
        """This model with one network's weights replaced (e.g. by a checkpoint's EMA), its
        record saying after how many steps."""
        training = self.record.training
        if len(self.record.networks) == 1:
            training = replace(training, completed_steps=step)
        else:
            steps = {**training.part_steps, part: step}
            voxels = voxel_part(self.record.family)
            training = replace(training, part_steps=steps, completed_steps=steps.get(voxels))
        networks = {**self.networks, part: net}
        return FastSimModel(replace(self.record, training=training), networks, self.students)  # type: ignore[arg-type]

    def with_student(self, name: str, student: StudentRecord, net: ConsistencyPrecond) -> FastSimModel:  # fmt: skip
        """This model with a consistency student added (or replaced) under ``name``."""
        record = replace(self.record, students={**self.record.students, name: student})
        return FastSimModel(record, self.networks, {**self.students, name: net})

    def save(self, directory: str | Path, parts: Iterable[str] | None = None) -> None:
        """Write the weights of ``parts`` (default: all), then ``model.json``, into
        ``directory``, each atomically.

        Raises:
            OutputError: if the directory cannot be written.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        networks = dict(self.record.networks)
        students = dict(self.record.students)
        for part in self.networks if parts is None else parts:
            if part in self.networks:
                networks[part] = _write_weights(self.networks[part], directory, networks[part])
            else:  # a student
                record = students[part]
                written = _write_weights(self.students[part], directory, record.network)
                students[part] = replace(record, network=written)
        self.record = replace(self.record, networks=networks, students=students)
        self.record.write(directory / META_FILE)

    @torch.no_grad()
    def sampling_denoiser(self, part: str = "shower", student: str | None = None) -> Denoiser:
        """The denoiser the samplers use for ``part`` (or its consistency ``student``).

        The ``calodit`` family's estimates are kept within the range of the training data
        when that range was recorded (see :class:`ClampedDenoiser`); the factorised family's
        transforms are bounded already.
        """
        net: Denoiser = self.networks[part] if student is None else self.students[student]
        if self.record.family == FACTORIZED:
            return net
        transform = self.preprocessing.shower
        if transform is None:
            raise DataError(f"a {self.record.family} model has no shower transform")
        if transform.max_value is None:  # a model trained before the range was recorded
            return net
        return ClampedDenoiser(net, transform.zero_level, transform.max_value)

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
        layers: np.ndarray | None = None,
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
            layers: (N, Z) layer energies in MeV to share out instead of the energy model's
                (``factorized`` family; a diagnostic: the shape model alone).
            on_batch: called with the number of showers after each batch.

        Returns:
            Voxel energies, (N, V) float32.

        Raises:
            SpecError: for an unknown detector or sampler, or out-of-range conditions.
        """
        sample, cond, size = self._sampling(
            energies, theta, phi, detector, settings, steps, batch_size,
            allow_extrapolation=allow_extrapolation, allow_spare_slot=allow_spare_slot,
        )  # fmt: skip
        draw = self._factorized if self.record.family == FACTORIZED else self._calodit
        if layers is not None and (draw == self._calodit or layers.shape[0] != len(energies)):
            raise SpecError(
                f"layer energies (N, Z) are for a {FACTORIZED} model, one row per shower"
            )
        threshold, _ = voxel_threshold(self.record.calibrated)
        width = int(np.prod(self.preprocessing.mesh_shape))

        def batch(sl: slice, noise: ShowerNoise) -> np.ndarray:
            given = None if layers is None else layers[sl]
            return draw(sample, cond[sl], energies[sl], noise, threshold, given)

        return self._in_batches(batch, len(energies), width, seeds, size, on_batch)

    def generate_layers(
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
    ) -> np.ndarray:
        """The energy model alone (``factorized`` family): the layer energies that
        :meth:`generate` would share out for the same conditions and seeds, (N, Z) MeV. A
        diagnostic: Geant4's shapes rescaled to them judge the energy model by itself."""
        if self.record.family != FACTORIZED:
            raise SpecError(f"only a {FACTORIZED} model has an energy model")
        sample, cond, size = self._sampling(energies, theta, phi, detector, settings, steps, batch_size)  # fmt: skip
        transform = self.preprocessing.layers
        assert transform is not None  # a factorized model's preprocessing has it

        def batch(sl: slice, noise: ShowerNoise) -> np.ndarray:
            x_e = sample("energy", (transform.width,), cond[sl], noise)
            return transform.decode(x_e.numpy(), energies[sl], self._slots(cond[sl]))

        z = self.preprocessing.mesh_shape[0]
        return self._in_batches(batch, len(energies), z, seeds, size, None)

    def _slots(self, cond: torch.Tensor) -> np.ndarray:
        """The detector slot of each shower of encoded conditions (B, n_cond)."""
        return self.preprocessing.conditions.inverse(cond.numpy())[3]

    def _in_batches(
        self,
        batch: Callable[[slice, ShowerNoise], np.ndarray],
        n: int,
        width: int,
        seeds: list[int],
        batch_size: int,
        on_batch: Callable[[int], None] | None,
    ) -> np.ndarray:
        """``batch(rows, noise)`` over all ``n`` showers, ``batch_size`` at a time: (n, width)."""
        for net in [*self.networks.values(), *self.students.values()]:
            net.eval()
        out = np.empty((n, width), np.float32)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            values = batch(slice(start, stop), ShowerNoise(seeds[start:stop]))
            if not np.isfinite(values).all():
                raise DataError("the model produced non-finite energies (a broken model?)")
            out[start:stop] = values
            if on_batch is not None:
                on_batch(stop - start)
        return out

    def _sampling(
        self,
        energies: np.ndarray,
        theta: np.ndarray,
        phi: np.ndarray,
        detector: str,
        settings: SamplerSettings | None,
        steps: int | None,
        batch_size: int | None,
        *,
        allow_extrapolation: bool = False,
        allow_spare_slot: bool = False,
    ) -> tuple[Sampling, torch.Tensor, int]:
        """The sampler of :meth:`generate`, the encoded conditions of every shower and the
        batch size."""
        settings = settings or SamplerSettings()
        if steps is not None or batch_size is not None:
            settings = replace(
                settings,
                steps=settings.steps if steps is None else steps,
                batch_size=settings.batch_size if batch_size is None else batch_size,
            )
        trained = self.diffusion
        sampler, n_steps = settings.resolve(self)
        conditions = self.preprocessing.conditions
        slot = conditions.slot(detector, allow_spare=allow_spare_slot)
        conditions.check(energies, theta, allow_extrapolation=allow_extrapolation)
        cond = torch.from_numpy(
            conditions.forward(energies, theta, phi, np.full(len(energies), slot))
        )
        student = self.record.students.get(sampler)
        levels = student.sigmas[:n_steps] if student is not None else []
        if student is not None:  # the student for its part; the other parts' ODE as trained
            sampler, n_steps = trained.sampler, trained.steps
        sigmas = karras_sigmas(n_steps, trained.sigma_min, trained.sigma_max, trained.rho)
        kwargs: dict[str, Any] = {}
        if sampler == "heun-stochastic":
            kwargs.update({**trained.churn, **settings.churn})

        def sample(
            part: str, shape: tuple[int, ...], cond: torch.Tensor, noise: ShowerNoise
        ) -> torch.Tensor:
            """One sampler run of ``part`` from pure noise of each shower's own stream."""
            z = noise.randn(shape)
            if student is not None and part == student.part:
                return sample_consistency(
                    self.sampling_denoiser(part, settings.resolve(self)[0]),
                    z * levels[0],
                    levels,
                    cond=cond,
                    noise=noise,
                    sigma_min=student.sigma_min,
                )
            denoiser = self.sampling_denoiser(part)
            return SAMPLERS[sampler](denoiser, z * sigmas[0], sigmas, cond=cond, noise=noise, **kwargs)  # fmt: skip

        return sample, cond, settings.batch_size

    def _calodit(
        self,
        sample: Sampling,
        cond: torch.Tensor,
        energies: np.ndarray,
        noise: ShowerNoise,
        threshold: float,
        layers: np.ndarray | None = None,
    ) -> np.ndarray:
        """One batch of the ``calodit`` family: the whole shower from one denoiser (it has no
        layer energies to be given: ``layers`` is always None here)."""
        del layers
        x_0 = sample("shower", (1, *self.preprocessing.mesh_shape), cond, noise)
        transform = self.preprocessing.shower
        assert transform is not None  # checked by sampling_denoiser
        showers = transform.inverse(x_0.reshape(len(energies), -1).numpy(), energies)
        showers[showers < threshold] = 0.0
        return showers

    def _factorized(
        self,
        sample: Sampling,
        cond: torch.Tensor,
        energies: np.ndarray,
        noise: ShowerNoise,
        threshold: float,
        layers: np.ndarray | None = None,
    ) -> np.ndarray:
        """One batch of the factorised family: layer energies (or ``layers``, given), then the
        shares of each layer's voxels, rescaled to the layer energies; the threshold keeps
        every layer's energy."""
        layers_t, fractions_t = self.preprocessing.layers, self.preprocessing.fractions
        if layers_t is None or fractions_t is None:
            raise DataError(f"a {FACTORIZED} model needs the layer and fraction transforms")
        mesh = self.preprocessing.mesh_shape
        if layers is None:
            x_e = sample("energy", (layers_t.width,), cond, noise)  # (b, Z or 2 Z)
            layers = layers_t.decode(x_e.numpy(), energies, self._slots(cond))  # (b, Z) MeV
        # the shape model sees the layer logits as in training: those of the decoded energies
        layer_cond = torch.from_numpy(layers_t.conditions(layers, energies))
        code = (fractions_t.channels, *mesh)
        x_s = sample("shape", code, torch.cat([cond, layer_cond], 1), noise)
        showers = fractions_t.decode(x_s.reshape(len(energies), -1).numpy(), layers)
        return conserve_threshold(showers, mesh, threshold)


def _write_weights(net: torch.nn.Module, directory: Path, network: NetworkRecord) -> NetworkRecord:
    """Write a network's weights atomically; its record with the file's checksum."""
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    with atomic_file(directory / network.weights) as tmp:
        write_safetensors(state, tmp)
        return replace(network, sha256=file_sha256(tmp))


def build_student(record: ModelRecord, student: StudentRecord) -> ConsistencyPrecond:
    """A freshly initialised consistency student of a record (its teacher's backbone)."""
    teacher = build_network(record.family, student.part, student.network, record.preprocessing)
    return ConsistencyPrecond(
        teacher.backbone, sigma_data=student.network.sigma_data, sigma_min=student.sigma_min
    )


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
    nets: list[tuple[str, torch.nn.Module, NetworkRecord]] = [
        (f"{part} network", net, record.networks[part]) for part, net in model.networks.items()
    ]
    nets += [(f"student {name}", net, record.students[name].network) for name, net in model.students.items()]  # fmt: skip
    for what_net, net, network in nets:
        weights = directory / network.weights
        if not weights.exists():
            raise DataError(f"{what}: the weights of its {what_net} ({weights.name}) are missing")
        if network.sha256 is not None and file_sha256(weights) != network.sha256:
            raise DataError(f"{weights} is damaged (its checksum does not match {META_FILE})")
        try:
            state = load_file(weights)
            _check_condition_width(net, state, record, weights)
            net.load_state_dict(state)
        except (OSError, RuntimeError, SafetensorError) as exc:
            raise DataError(f"cannot load the weights {weights}: {exc}") from None
        net.eval()
    return model


COND_WEIGHT = "backbone.cond_embedder.fc1.weight"
"""The first layer of every network's condition embedding: (D, 4 + detectors + 1 spare)."""


def _check_condition_width(
    net: torch.nn.Module, state: dict[str, torch.Tensor], record: ModelRecord, weights: Path
) -> None:
    """Refuse weights whose condition layer does not take the record's condition vector (the
    four kinematic columns, one per detector and the spare slot), saying which."""
    own = net.state_dict().get(COND_WEIGHT)
    theirs = state.get(COND_WEIGHT)
    if own is None or theirs is None or theirs.shape == own.shape:
        return
    detectors = record.preprocessing.conditions.detectors
    columns = theirs.shape[-1]
    if columns == own.shape[-1] - 1:
        raise DataError(
            f"{weights} takes {columns} condition columns: one per detector "
            f"({', '.join(detectors)}) and no spare slot; a caloforge model has one "
            "(a new detector, e.g. for caloforge adapt, needs it)"
        )
    raise DataError(
        f"{weights} takes {columns} condition columns, not the {own.shape[-1]} of its "
        f"record (4 + {len(detectors)} detectors + 1 spare slot)"
    )


def model_dir(where: str | Path) -> Path:
    """The directory of ``"default"`` (the shipped model) or of a model directory."""
    return default_model_dir() if str(where) == "default" else Path(where)


def copy_model(source: str | Path, target: str | Path) -> None:
    """Copy a model directory's record and weights (e.g. a run's model into the package)."""
    source, target = model_dir(source), Path(target)
    record = ModelRecord.read(source / META_FILE)
    target.mkdir(parents=True, exist_ok=True)
    networks = [*record.networks.values(), *(s.network for s in record.students.values())]
    for network in networks:
        shutil.copy2(source / network.weights, target / network.weights)
    shutil.copy2(source / META_FILE, target / META_FILE)
