"""``caloforge g4run``: a Geant4 run of a detector, full or with a model as its fast simulation.

Geant4 tracks every event (:mod:`caloforge.simulate.events`); with a model, the photons (or
the particles the trigger names) that enter the calorimeter within the model's energy and
angle ranges are killed at its inner face, and after the event the model draws their showers
in one batch, each placed at the particle's entry point along its direction. Every voxel's
energy is spread over points inside the voxel and binned, like Geant4's own deposits, in the
detector's fixed readout cells (:mod:`caloforge.geometry.readout`): full and fast runs are
read out the same way.

Event generators (``GunSpec``): one particle from the origin (the ``simulate`` specs); a pi0
decaying into two photons; N photons in a cone.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from caloforge import __version__
from caloforge.atomic import atomic_file, check_output
from caloforge.config import SIMULATION
from caloforge.data.specs import PrimarySpec
from caloforge.errors import DataError, OutputError, SpecError
from caloforge.geometry.detectors import DetectorSpec
from caloforge.geometry.mesh import MeshSpec, direction, voxel_points
from caloforge.geometry.readout import ReadoutSpec, merge
from caloforge.simulate.chunks import open_partial
from caloforge.simulate.events import (
    EM_PARTICLES,
    PDG,
    EventResult,
    Handover,
    Primary,
    TrackerSpec,
    Trigger,
    check_tracker,
)
from caloforge.simulate.process import run_in_geant4_process

log = logging.getLogger(__name__)
PI0_MASS_MEV = 134.9768
GUNS = ("single", "pi0", "cone")
VOXEL_SPLIT = (4, 2, 2)  # points per voxel (z, phi, r) over which a voxel's energy is spread


@dataclass(frozen=True)
class GunSpec:
    """The event generator.

    ``single``: one ``primary.particle`` per event from the origin, energy and angles drawn from
    the specs. ``pi0``: a pi0 of that energy and direction decaying at the origin into two
    photons (isotropic in its rest frame). ``cone``: ``n`` photons per event, each of an energy
    drawn from the spec, within ``half_angle`` rad of an axis drawn from the angle specs.
    """

    kind: str
    primary: PrimarySpec
    n: int = 1
    half_angle: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in GUNS:
            raise SpecError(f"{self.kind!r} is unknown; choose from {', '.join(GUNS)}", subject="gun")  # fmt: skip
        if self.kind == "cone" and not (self.n >= 1 and 0 <= self.half_angle < math.pi / 2):
            raise SpecError("a cone needs N >= 1 photons and a half-angle in [0, pi/2)", subject="gun")  # fmt: skip

    @classmethod
    def parse(cls, text: str, primary: PrimarySpec) -> GunSpec:
        """``single``, ``pi0`` or ``cone:N:HALF_ANGLE`` (rad)."""
        kind, *rest = text.split(":")
        try:
            if kind == "cone" and len(rest) == 2:
                return cls(kind, primary, int(rest[0]), float(rest[1]))
            if kind in ("single", "pi0") and not rest:
                return cls(kind, primary)
        except ValueError:
            pass
        raise SpecError(f"{text!r}: choose single, pi0 or cone:N:HALF_ANGLE", subject="gun")

    def draw(self, seed: int, indices: Sequence[int]) -> list[list[Primary]]:
        """The primaries of events ``indices``; event i depends only on (seed, i)."""
        return [self._event(np.random.default_rng([seed, i, 7919])) for i in indices]

    def _event(self, rng: np.random.Generator) -> list[Primary]:
        p = self.primary
        energy = p.energy.sample(rng) * 1e3
        axis = direction(p.theta.sample(rng), p.phi.sample(rng))
        origin = (0.0, 0.0, 0.0)
        if self.kind == "single":
            return [Primary(p.particle, energy, origin, tuple(axis))]
        if self.kind == "pi0":
            return [Primary("gamma", e, origin, d) for e, d in _pi0_photons(energy + PI0_MASS_MEV, axis, rng)]  # fmt: skip
        out = [Primary("gamma", energy, origin, tuple(_tilt(axis, self.half_angle, rng)))]
        for _ in range(self.n - 1):
            e = p.energy.sample(rng) * 1e3
            out.append(Primary("gamma", e, origin, tuple(_tilt(axis, self.half_angle, rng))))
        return out


def _tilt(axis: np.ndarray, half_angle: float, rng: np.random.Generator) -> np.ndarray:
    """A direction uniform in solid angle within ``half_angle`` of ``axis``."""
    cos_a = 1 - rng.uniform() * (1 - math.cos(half_angle))
    sin_a, psi = math.sqrt(max(0.0, 1 - cos_a * cos_a)), rng.uniform(0, 2 * math.pi)
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    return cos_a * axis + sin_a * (math.cos(psi) * u + math.sin(psi) * v)


def _pi0_photons(
    total_mev: float, axis: np.ndarray, rng: np.random.Generator
) -> list[tuple[float, tuple[float, float, float]]]:
    """The two photons of a pi0 of total energy ``total_mev`` moving along ``axis``."""
    gamma = total_mev / PI0_MASS_MEV
    beta = math.sqrt(max(0.0, 1 - 1 / (gamma * gamma)))
    rest = PI0_MASS_MEV / 2
    cos_t = rng.uniform(-1, 1)  # isotropic in the rest frame
    sin_t, psi = math.sqrt(1 - cos_t * cos_t), rng.uniform(0, 2 * math.pi)
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    out = []
    for sign in (1.0, -1.0):  # back to back in the rest frame
        c, s = sign * cos_t, sign * sin_t
        energy = gamma * rest * (1 + beta * c)  # Lorentz boost along the axis
        p_par, p_perp = gamma * rest * (c + beta), rest * s
        p = p_par * axis + p_perp * (math.cos(psi) * u + math.sin(psi) * v)
        out.append((energy, tuple(p / np.linalg.norm(p))))
    return out


# --------------------------------------------------------------------------------------------
# The fast simulation: the model's showers into the readout


@dataclass
class FastDeposit:
    """What the model added to one event: its readout cells and the CPU time it took."""

    cells: np.ndarray
    energies: np.ndarray
    seconds: float


def place_showers(
    readout: ReadoutSpec, mesh: MeshSpec, handovers: Sequence[Handover], showers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bin the showers (N, V) of ``handovers`` (same order) into the readout: every voxel's
    energy spread evenly over the points of :data:`VOXEL_SPLIT` inside it, the mesh placed at
    the particle's entry point along its direction."""
    per_voxel = math.prod(VOXEL_SPLIT)
    parts = []
    for h, shower in zip(handovers, showers, strict=True):
        hit = shower > 0
        points = voxel_points(mesh, np.asarray(h.position), np.asarray(h.direction), VOXEL_SPLIT)
        points = points.reshape(mesh.n_voxels, per_voxel, 3)[hit].reshape(-1, 3)
        energies = np.repeat(shower[hit].astype(np.float64) / per_voxel, per_voxel)
        parts.append(readout.fill(points, energies))
    return merge(*parts)


class FastSimulation:
    """A model as the fast simulation of a detector: showers for handed-over particles.

    Args:
        source: ``default``, a model directory (PyTorch), or an ONNX file of a model's sampler
            (``caloforge export --onnx``; run by ONNX Runtime).
        detector: the detector (the model must know it).
        settings: sampler settings of a PyTorch model (default: the model's; an ONNX file
            holds one sampler).
        seed: the run seed; handover k of event i gets its own shower seed.
    """

    def __init__(self, source: str, detector: DetectorSpec, settings: Any = None, seed: int = 1) -> None:  # fmt: skip
        self.detector, self.settings, self.seed = detector, settings, seed
        self.onnx = str(source).endswith(".onnx")
        if self.onnx:
            facts = self._open_onnx(source)
        else:
            from caloforge.fastsim.model import load_model

            self.model = load_model(source)
            conditions = self.model.preprocessing.conditions
            conditions.slot(detector.name)  # refuses a detector the model does not know
            facts = {
                "particle": self.model.record.particle,
                "energy_mev": conditions.energy_range_mev,
                "theta": conditions.theta_range,
                "mesh": self.model.detectors[detector.name]["mesh"],
                "calibrated": self.model.record.calibrated,
            }
        (lo, hi), (t_lo, t_hi) = facts["energy_mev"], facts["theta"]
        self.trigger = Trigger((facts["particle"],), lo, hi, t_lo, t_hi)
        self.mesh = MeshSpec(**facts["mesh"])
        # the readout holds active energy; a calibrated model's showers are total energy
        sf = detector.sampling_fraction
        self.scale = (sf.value if sf else 1.0) if facts["calibrated"] else 1.0

    def narrowed(
        self, particles: Sequence[str] | None = None, energy_gev: tuple[float, float] | None = None
    ) -> Trigger:
        """The trigger of this model, handing over ``particles`` (default: the model's) in the
        energy window ``energy_gev`` (default: the model's range, which bounds it).

        Raises:
            SpecError: an unknown particle, or a window that is empty or outside the model's
                energy range.
        """
        t = self.trigger
        if particles is not None:
            unknown = sorted(set(particles) - set(EM_PARTICLES))
            if unknown or not particles:
                raise SpecError(f"must be among {', '.join(EM_PARTICLES)}; got {', '.join(unknown) or 'none'}", subject="trigger particles")  # fmt: skip
            t = replace(t, particles=tuple(dict.fromkeys(particles)))
        if energy_gev is not None:
            lo, hi = energy_gev[0] * 1e3, energy_gev[1] * 1e3
            if not t.min_energy_mev <= lo < hi <= t.max_energy_mev:
                raise SpecError(
                    f"must be LO:HI GeV with LO < HI inside the model's range "
                    f"{t.min_energy_mev / 1e3:g}:{t.max_energy_mev / 1e3:g}; got {energy_gev[0]:g}:{energy_gev[1]:g}",
                    subject="trigger energy",
                )  # fmt: skip
            t = replace(t, min_energy_mev=lo, max_energy_mev=hi)
        return t

    def _open_onnx(self, path: str) -> dict[str, Any]:
        """Open the ONNX file's session; the facts of its metadata."""
        import json

        try:
            import onnxruntime
        except ImportError:
            raise SpecError("an ONNX fast simulation needs onnxruntime: pip install 'caloforge[onnx]'") from None  # fmt: skip
        try:
            self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 (onnxruntime's own error types)
            raise DataError(f"{path} is not a readable ONNX model: {exc}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            detectors = json.loads(meta["detectors"])
            meshes = json.loads(meta["meshes"])
            facts = {
                "particle": meta["particle"],
                "energy_mev": [v * 1e3 for v in json.loads(meta["energy_range_gev"])],
                "theta": json.loads(meta["theta_range_rad"]),
                "calibrated": meta["energy_scale"] == "calibrated",
            }
            self.noise_size = int(meta["noise_size"])
        except (KeyError, ValueError) as exc:
            raise DataError(f"{path} lacks caloforge's metadata ({exc}); export it with caloforge export --onnx") from None  # fmt: skip
        if self.detector.name not in meshes:
            raise SpecError(f"the model in {path} was not trained on detector {self.detector.name!r} (it knows {', '.join(meshes)})")  # fmt: skip
        self.one_hot = np.zeros(len(detectors), np.float32)
        self.one_hot[detectors.index(self.detector.name)] = 1.0
        return {**facts, "mesh": meshes[self.detector.name]}

    def showers(self, handovers: Sequence[Handover], seeds: list[int]) -> np.ndarray:
        """One shower per handover (MeV per voxel, the model's energy scale), (N, V)."""
        energies = np.array([h.energy_mev for h in handovers])
        theta = np.array([h.theta for h in handovers])
        phi = np.array([h.phi for h in handovers])
        if not self.onnx:
            return self.model.generate(energies, theta, phi, self.detector.name, seeds, settings=self.settings)  # fmt: skip
        noise = np.stack([np.random.default_rng(s).standard_normal(self.noise_size) for s in seeds])
        feed = {
            "energy_gev": (energies / 1e3).astype(np.float32),
            "theta": theta.astype(np.float32),
            "phi": phi.astype(np.float32),
            "detector": np.repeat(self.one_hot[None], len(handovers), axis=0),
            "noise": noise.astype(np.float32),
        }
        return self.session.run(["showers"], feed)[0]

    def deposit(self, readout: ReadoutSpec, events: Sequence[EventResult]) -> list[FastDeposit]:
        """The showers of the handovers of ``events``, drawn in one batch and read out event by
        event. The batch's CPU time is shared among the events in proportion to their
        handovers; a shower's seed depends only on (run seed, event, handover), not on the
        batch."""
        from caloforge.fastsim.model import shower_seeds

        handovers = [h for e in events for h in e.handovers]
        if not handovers:
            return [FastDeposit(np.zeros(0, np.int64), np.zeros(0), 0.0) for _ in events]
        start = time.process_time()
        keys = [e.index * 1000 + k for e in events for k in range(len(e.handovers))]
        showers = self.showers(handovers, shower_seeds(self.seed, keys)) * self.scale
        per_shower = (time.process_time() - start) / len(handovers)
        deposits, at = [], 0
        for e in events:
            n = len(e.handovers)
            if not n:
                deposits.append(FastDeposit(np.zeros(0, np.int64), np.zeros(0), 0.0))
                continue
            start = time.process_time()
            cells, energies = place_showers(readout, self.mesh, e.handovers, showers[at : at + n])
            seconds = time.process_time() - start + n * per_shower
            deposits.append(FastDeposit(cells, energies, seconds))
            at += n
        return deposits


# --------------------------------------------------------------------------------------------
# The run

SILICON_X0_MM = 93.7  # radiation length of silicon (PDG)
EVENTS_PER_PROCESS = 25  # events per Geant4 process (the progress bar moves between them)
# and the largest model batch over events (--batch-events)


def tracker_of(detector: DetectorSpec, x0_fraction: float) -> TrackerSpec | None:
    """A silicon cylinder of ``x0_fraction`` X0 at half the calorimeter's inner radius."""
    if x0_fraction <= 0:
        return None
    return TrackerSpec(detector.inner_radius_mm / 2, x0_fraction * SILICON_X0_MM)


def _geant4_events(
    detector: DetectorSpec,
    readout: ReadoutSpec,
    tracker: TrackerSpec | None,
    trigger: Trigger | None,
    cut_mm: float,
    events: list[list[Primary]],
    seeds: list[int],
    first: int,
) -> list[EventResult]:
    from caloforge.simulate.events import EventSimulator

    results = EventSimulator(detector, readout, tracker, trigger, cut_mm).simulate(events, seeds)
    for r in results:  # event numbers of the run, not of this process
        r.index += first
        r.handovers = [replace(h, event=r.index) for h in r.handovers]
    return results


@dataclass
class RunSummary:
    """What a g4run did: events, handovers, CPU seconds of Geant4 and of the model."""

    events: int
    handovers: int
    geant4_seconds: float
    model_seconds: float


def g4run(
    detector: str,
    gun: GunSpec,
    n_events: int,
    out: str | Path,
    *,
    fast: str | None = None,
    tracker_x0: float = 0.0,
    seed: int = 1,
    cut_mm: float = SIMULATION.cut_mm,
    readout_phi: int = 256,
    readout_z_mm: float = 10.0,
    settings: Any = None,
    trigger_particles: Sequence[str] | None = None,
    trigger_energy_gev: tuple[float, float] | None = None,
    batch_events: int = 1,
    overwrite: bool = False,
    show_progress: bool = True,
) -> RunSummary:
    """``caloforge g4run``: ``n_events`` events of ``gun`` in ``detector``, full simulation or
    with the model ``fast`` as the fast simulation, written to ``out`` (HDF5, atomically).

    The fast simulation takes the particles ``trigger_particles`` (default: the model's own,
    e.g. photons) entering the calorimeter with an energy in ``trigger_energy_gev`` (default:
    the model's range) and a polar angle in the model's range. Handing e+- to a photon model is
    an approximation (their showers differ in the first radiation lengths); it is the user's
    choice. The model draws the showers of ``batch_events`` consecutive events in one batch
    (1: event by event, as a framework's event loop; up to :data:`EVENTS_PER_PROCESS`).

    Raises:
        SpecError: for bad settings, a detector the model does not know.
        OutputError: if ``out`` cannot be written.
    """
    from tqdm import tqdm

    from caloforge.geometry.detectors import load_detector

    if n_events < 1:
        raise SpecError(f"must be at least 1, got {n_events}", subject="events")
    if not 1 <= batch_events <= EVENTS_PER_PROCESS:
        raise SpecError(f"must be 1 to {EVENTS_PER_PROCESS}, got {batch_events}", subject="batch events")  # fmt: skip
    if not tracker_x0 >= 0:
        raise SpecError(f"must be >= 0, got {tracker_x0}", subject="tracker")
    out = Path(out)
    check_output(out, overwrite=overwrite)
    spec = load_detector(detector)
    readout = ReadoutSpec.of(spec, readout_phi, readout_z_mm)
    tracker = tracker_of(spec, tracker_x0)
    check_tracker(spec, tracker)
    model = FastSimulation(fast, spec, settings, seed) if fast else None
    trigger = model.narrowed(trigger_particles, trigger_energy_gev) if model else None
    primaries = gun.draw(seed, range(n_events))
    g4_seeds = [int(np.random.default_rng([seed, i, 104729]).integers(1, 2**31 - 1)) for i in range(n_events)]  # fmt: skip
    request = {
        "detector": spec.to_dict(), "readout": readout.to_dict(),
        "tracker": asdict(tracker) if tracker else None, "gun": _gun_dict(gun),
        "events": n_events, "seed": seed, "cut_mm": cut_mm, "fast": fast,
        "settings": repr(settings), "trigger": asdict(trigger) if trigger else None,
        "batch_events": batch_events, "caloforge": __version__,
    }  # fmt: skip
    partial = open_partial(out, request)
    results: list[EventResult] = []
    deposits: list[FastDeposit] = []
    with tqdm(total=n_events, unit="event", disable=not show_progress) as bar:
        for first in range(0, n_events, EVENTS_PER_PROCESS):
            last = min(n_events, first + EVENTS_PER_PROCESS)
            path = partial / f"events-{first:08d}.npz"
            if path.exists():
                chunk, done = _load_chunk(path)
            else:
                chunk = run_in_geant4_process(
                    _geant4_events, spec, readout, tracker, trigger, cut_mm,
                    primaries[first:last], g4_seeds[first:last], first,
                )  # fmt: skip
                done = [FastDeposit(np.zeros(0, np.int64), np.zeros(0), 0.0) for _ in chunk]
                if model:
                    batches = range(0, len(chunk), batch_events)
                    done = [d for b in batches for d in model.deposit(readout, chunk[b : b + batch_events])]  # fmt: skip
                _save_chunk(path, chunk, done)
            results += chunk
            deposits += done
            bar.update(len(chunk))
    _write(out, spec, readout, tracker, gun, seed, fast, trigger, batch_events, primaries, results, deposits)  # fmt: skip
    shutil.rmtree(partial, ignore_errors=True)
    return RunSummary(
        n_events,
        sum(len(r.handovers) for r in results),
        sum(r.seconds for r in results),
        sum(d.seconds for d in deposits),
    )


def _gun_dict(gun: GunSpec) -> dict[str, Any]:
    p = gun.primary
    return {"kind": gun.kind, "n": gun.n, "half_angle": gun.half_angle, "particle": p.particle,
            "energy_gev": str(p.energy), "theta_rad": str(p.theta), "phi_rad": str(p.phi)}  # fmt: skip


def _save_chunk(path: Path, results: list[EventResult], deposits: list[FastDeposit]) -> None:
    """A chunk of events, their readouts merged with the model's, written atomically."""
    merged = [merge((r.cells, r.energies), (d.cells, d.energies)) for r, d in zip(results, deposits, strict=True)]  # fmt: skip
    h = [x for r in results for x in r.handovers]
    with atomic_file(path) as tmp:
        np.savez(
            tmp,
            index=np.array([r.index for r in results], np.int64),
            g4_seconds=np.array([r.seconds for r in results]),
            model_seconds=np.array([d.seconds for d in deposits]),
            offsets=np.concatenate([[0], np.cumsum([len(c) for c, _ in merged])]),
            cells=np.concatenate([c for c, _ in merged]).astype(np.int64),
            energies=np.concatenate([e for _, e in merged]),
            h_event=np.array([x.event for x in h], np.int64),
            h_track=np.array([x.track for x in h], np.int64),
            h_pdg=np.array([PDG[x.particle] for x in h], np.int64),
            h_energy=np.array([x.energy_mev for x in h]),
            h_position=np.array([x.position for x in h]).reshape(-1, 3),
            h_direction=np.array([x.direction for x in h]).reshape(-1, 3),
        )


def _load_chunk(path: Path) -> tuple[list[EventResult], list[FastDeposit]]:
    names = {v: k for k, v in PDG.items()}
    try:
        with np.load(path) as c:
            a = {k: c[k] for k in c.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        path.unlink(missing_ok=True)
        raise OutputError(f"{path} was unreadable ({exc.__class__.__name__}) and was removed; run the same command again") from None  # fmt: skip
    results, deposits = [], []
    for k, index in enumerate(a["index"].tolist()):
        lo, hi = a["offsets"][k], a["offsets"][k + 1]
        mine = np.flatnonzero(a["h_event"] == index)
        handovers = [
            Handover(index, int(a["h_track"][j]), names[int(a["h_pdg"][j])], float(a["h_energy"][j]),
                     tuple(a["h_position"][j].tolist()), tuple(a["h_direction"][j].tolist()))
            for j in mine
        ]  # fmt: skip
        results.append(EventResult(index, a["cells"][lo:hi], a["energies"][lo:hi], handovers, float(a["g4_seconds"][k])))  # fmt: skip
        deposits.append(FastDeposit(np.zeros(0, np.int64), np.zeros(0), float(a["model_seconds"][k])))  # fmt: skip
    return results, deposits


def _write(
    out: Path,
    detector: DetectorSpec,
    readout: ReadoutSpec,
    tracker: TrackerSpec | None,
    gun: GunSpec,
    seed: int,
    fast: str | None,
    trigger: Trigger | None,
    batch_events: int,
    primaries: list[list[Primary]],
    results: list[EventResult],
    deposits: list[FastDeposit],
) -> None:
    import json

    import h5py

    pairs = zip(results, deposits, strict=True)
    merged = [merge((r.cells, r.energies), (d.cells, d.energies)) for r, d in pairs]
    cells, energies = [c for c, _ in merged], [e for _, e in merged]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in cells])])
    handovers = [h for r in results for h in r.handovers]
    shots = [(i, p) for i, event in enumerate(primaries) for p in event]
    with atomic_file(out) as tmp, h5py.File(tmp, "w") as f:
        f["event_energy_mev"] = np.array([e.sum() for e in energies])
        f["event_geant4_seconds"] = np.array([r.seconds for r in results])
        f["event_model_seconds"] = np.array([d.seconds for d in deposits])
        f["readout_offsets"] = offsets
        f["readout_cells"] = np.concatenate(cells).astype(np.int64)
        f["readout_energies_mev"] = np.concatenate(energies)
        f["handover_event"] = np.array([h.event for h in handovers], np.int64)
        f["handover_pdg"] = np.array([PDG[h.particle] for h in handovers], np.int64)
        f["handover_energy_mev"] = np.array([h.energy_mev for h in handovers])
        f["handover_position_mm"] = np.array([h.position for h in handovers]).reshape(-1, 3)
        f["handover_direction"] = np.array([h.direction for h in handovers]).reshape(-1, 3)
        f["primary_event"] = np.array([i for i, _ in shots], np.int64)
        f["primary_pdg"] = np.array([PDG[p.particle] for _, p in shots], np.int64)
        f["primary_energy_mev"] = np.array([p.energy_mev for _, p in shots])
        f["primary_direction"] = np.array([p.direction for _, p in shots]).reshape(-1, 3)
        f.attrs["caloforge_version"] = __version__
        f.attrs["detector_name"] = detector.name
        f.attrs["detector"] = json.dumps(detector.to_dict())
        f.attrs["readout"] = json.dumps(readout.to_dict())
        f.attrs["tracker"] = json.dumps(asdict(tracker) if tracker else None)
        f.attrs["gun"] = json.dumps(_gun_dict(gun))
        f.attrs["seed"] = seed
        f.attrs["fast"] = fast or "none"
        f.attrs["trigger"] = json.dumps(asdict(trigger) if trigger else None)
        f.attrs["batch_events"] = batch_events
        f.attrs["n_events"] = len(results)
