"""Geant4 events in a detector with material in front, scored in the detector's own readout,
with the calorimeter's entry handed over to a fast simulation.

The geometry is the barrel calorimeter of :mod:`caloforge.simulate.application`, optionally a
tracker-like cylinder of silicon in front of it, and a thin vacuum shell just inside the
calorimeter's inner face (the *entry shell*). The geometry is the same for full and fast
simulation; only what happens in the entry shell differs:

- full: nothing; Geant4 tracks every particle through the calorimeter.
- fast: a Python sensitive detector on the shell sees every particle that crosses it (one call
  per particle: it is thin and empty). A photon, electron or positron that moves outwards,
  with an energy and a polar angle the trigger accepts, is recorded (where and how it enters
  the calorimeter) and killed there; the caller deposits a generated shower for it. Everything
  else goes on in Geant4.

Deposits in the calorimeter's active material (charged steps, as in ``simulate``) are binned in
the readout's fixed cells at the end of every event (:mod:`caloforge.geometry.readout`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from caloforge.config import SIMULATION
from caloforge.errors import SpecError
from caloforge.geometry.detectors import DetectorSpec
from caloforge.geometry.readout import ReadoutSpec
from caloforge.simulate.application import (
    build_barrel,
    make_actions,
    make_mesh_scorer,
    make_physics_list,
)
from caloforge.simulate.g4 import geant4
from caloforge.simulate.materials import find_material
from caloforge.simulate.stepaccess import StepReader

ENTRY_SHELL_MM = 1.0  # thickness of the vacuum shell inside the calorimeter's inner face
PDG = {"gamma": 22, "e-": 11, "e+": -11}


@dataclass(frozen=True)
class TrackerSpec:
    """A cylinder of material in front of the calorimeter (lengths in mm)."""

    radius_mm: float
    thickness_mm: float
    material: str = "G4_Si"

    def __post_init__(self) -> None:
        if not (self.radius_mm > 0 and self.thickness_mm > 0):
            raise SpecError("the tracker's radius and thickness must be positive", subject="tracker")  # fmt: skip


def check_tracker(detector: DetectorSpec, tracker: TrackerSpec | None) -> None:
    """Raise SpecError unless the tracker ends inside the calorimeter's entry shell."""
    if tracker is not None and tracker.radius_mm + tracker.thickness_mm >= detector.inner_radius_mm - ENTRY_SHELL_MM:  # fmt: skip
        raise SpecError(
            f"the tracker ({tracker.radius_mm:g} mm + {tracker.thickness_mm:g} mm thick) must end "
            f"inside {detector.name}'s inner radius ({detector.inner_radius_mm:g} mm)",
            subject="tracker",
        )


EM_PARTICLES = ("gamma", "e-", "e+")  # the particles a shower model may be handed


@dataclass(frozen=True)
class Trigger:
    """Which particles entering the calorimeter are handed to the fast simulation."""

    particles: tuple[str, ...] = EM_PARTICLES
    min_energy_mev: float = 1000.0
    max_energy_mev: float = 1_000_000.0
    min_theta: float = 0.87
    max_theta: float = 2.27

    def accepts(self, particle: str, energy_mev: float, theta: float) -> bool:
        return (
            particle in self.particles
            and self.min_energy_mev <= energy_mev <= self.max_energy_mev
            and self.min_theta <= theta <= self.max_theta
        )


@dataclass(frozen=True)
class Primary:
    """A particle shot into an event (energy in MeV, position in mm, unit direction)."""

    particle: str
    energy_mev: float
    position: tuple[float, float, float]
    direction: tuple[float, float, float]


@dataclass(frozen=True)
class Handover:
    """A particle handed to the fast simulation where it entered the calorimeter."""

    event: int
    track: int
    particle: str
    energy_mev: float  # kinetic energy
    position: tuple[float, float, float]  # mm, on the calorimeter's inner face
    direction: tuple[float, float, float]

    @property
    def theta(self) -> float:
        return math.acos(max(-1.0, min(1.0, self.direction[2])))

    @property
    def phi(self) -> float:
        return math.atan2(self.direction[1], self.direction[0]) % (2 * math.pi)


@dataclass
class EventResult:
    """One event: the readout cells hit (Geant4's deposits only), the handovers, the time."""

    index: int
    cells: np.ndarray  # (C,) int64, sorted
    energies: np.ndarray  # (C,) float64, MeV in active material
    handovers: list[Handover] = field(default_factory=list)
    seconds: float = 0.0  # CPU time of Geant4 for the event


class EventSimulator:
    """Geant4 set up once for a detector (and tracker); simulates events on demand.

    Args:
        detector: the calorimeter.
        readout: its readout cells.
        tracker: material in front, or None.
        trigger: which entering particles are handed over; None for full simulation.
        cut_mm: production cut.
    """

    def __init__(
        self,
        detector: DetectorSpec,
        readout: ReadoutSpec,
        tracker: TrackerSpec | None = None,
        trigger: Trigger | None = None,
        cut_mm: float = SIMULATION.cut_mm,
    ) -> None:
        g4: Any = geant4()
        check_tracker(detector, tracker)
        self.detector, self.readout, self.tracker, self.trigger = (
            detector,
            readout,
            tracker,
            trigger,
        )
        self._keep: list[Any] = []
        self._hits: list[tuple[float, float, float, float]] = []
        self.step_reader = StepReader(allow_direct=True)
        self._queue: list[list[Primary]] = []
        self._seeds: list[int] = []
        self._results: list[EventResult] = []
        self._handovers: list[Handover] = []
        self._started = 0.0

        self.run_manager = g4.G4RunManagerFactory.CreateRunManager(g4.G4RunManagerType.Serial)
        ui = g4.G4UImanager.GetUIpointer()
        for command in ("/control/verbose 0", "/run/verbose 0", "/event/verbose 0", "/tracking/verbose 0", "/process/em/verbose 0", "/process/verbose 0"):  # fmt: skip
            ui.ApplyCommand(command)
        g4.G4EmParameters.Instance().SetVerbose(0)
        self._construction = _make_construction(self)
        physics_list = make_physics_list()
        self.run_manager.SetUserInitialization(self._construction)
        self.run_manager.SetUserInitialization(physics_list)
        self._gun = g4.G4ParticleGun(1)
        generator, event_action = make_actions(self)
        self.run_manager.SetUserAction(generator)
        self.run_manager.SetUserAction(event_action)
        self._keep += [physics_list, generator, event_action]
        self.run_manager.Initialize()
        ui.ApplyCommand(f"/run/setCut {cut_mm} mm")

    # -- called by Geant4 -------------------------------------------------------------------
    def _generate(self, event: Any) -> None:
        g4: Any = geant4()
        k = len(self._results)
        g4.HepRandom.setTheSeed(self._seeds[k])
        table = g4.G4ParticleTable.GetParticleTable()
        for p in self._queue[k]:
            self._gun.SetParticleDefinition(table.FindParticle(p.particle))
            self._gun.SetParticleEnergy(p.energy_mev * g4.MeV)
            self._gun.SetParticlePosition(g4.G4ThreeVector(*p.position))
            self._gun.SetParticleMomentumDirection(g4.G4ThreeVector(*p.direction))
            self._gun.GeneratePrimaryVertex(event)
        self._started = time.process_time()

    def _hand_over(self, step: Any) -> None:
        """On the entry shell: record and kill a triggered particle entering the calorimeter."""
        track = step.GetTrack()
        name = track.GetParticleDefinition().GetParticleName()
        post = step.GetPostStepPoint()
        x = post.GetPosition()
        d = post.GetMomentumDirection()
        outwards = x.x * d.x + x.y * d.y > 0
        energy = post.GetKineticEnergy()
        theta = math.acos(max(-1.0, min(1.0, d.z)))
        if not (outwards and self.trigger is not None and self.trigger.accepts(name, energy, theta)):  # fmt: skip
            return
        where, how = (x.x, x.y, x.z), (d.x, d.y, d.z)
        self._handovers.append(
            Handover(len(self._results), track.GetTrackID(), name, energy, where, how)
        )
        track.SetTrackStatus(geant4().G4TrackStatus.fStopAndKill)

    def _end_event(self) -> None:
        seconds = time.process_time() - self._started
        flat = itertools.chain.from_iterable(self._hits)
        hits = np.fromiter(flat, np.float64, 4 * len(self._hits)).reshape(-1, 4)
        cells, energies = self.readout.fill(hits[:, :3], hits[:, 3])
        self._results.append(
            EventResult(len(self._results), cells, energies, list(self._handovers), seconds)
        )
        self._hits.clear()
        self._handovers.clear()

    # -- public -------------------------------------------------------------------------------
    def simulate(self, events: Sequence[list[Primary]], seeds: Sequence[int]) -> list[EventResult]:
        """Simulate one event per entry of ``events`` (its primaries), Geant4 seeded by ``seeds``."""
        self._queue, self._seeds, self._results = list(events), list(seeds), []
        if self._queue:
            self.run_manager.BeamOn(len(self._queue))
        return self._results


def _make_construction(sim: EventSimulator) -> Any:
    g4: Any = geant4()
    spec = sim.detector

    class Construction(g4.G4VUserDetectorConstruction):
        def Construct(self) -> Any:
            keep = sim._keep
            vacuum = find_material("G4_Galactic")
            half = spec.outer_radius_mm + spec.length_mm
            world_lv = g4.G4LogicalVolume(g4.G4Box("World", half, half, half), vacuum, "World")
            world = g4.G4PVPlacement(None, g4.G4ThreeVector(), world_lv, "World", None, False, 0)
            keep += [world_lv, world]
            half_z = spec.length_mm / 2
            if sim.tracker is not None:
                t = sim.tracker
                solid = g4.G4Tubs("Tracker", t.radius_mm, t.radius_mm + t.thickness_mm, half_z, 0.0, 2 * math.pi)  # fmt: skip
                lv = g4.G4LogicalVolume(solid, find_material(t.material), "Tracker")
                pv = g4.G4PVPlacement(None, g4.G4ThreeVector(), lv, "Tracker", world_lv, False, 0)
                keep += [solid, lv, pv]
            r = spec.inner_radius_mm
            solid = g4.G4Tubs("Entry", r - ENTRY_SHELL_MM, r, half_z, 0.0, 2 * math.pi)
            self.entry = g4.G4LogicalVolume(solid, vacuum, "Entry")
            pv = g4.G4PVPlacement(None, g4.G4ThreeVector(), self.entry, "Entry", world_lv, False, 0)  # fmt: skip
            keep += [solid, self.entry, pv]
            self.active_volumes, _ = build_barrel(spec, world_lv, keep)
            return world

        def ConstructSDandField(self) -> None:
            keep = sim._keep
            manager = g4.G4SDManager.GetSDMpointer()
            active = g4.G4MultiFunctionalDetector("caloforge_active")
            scorer = make_mesh_scorer(sim._hits.append, sim.step_reader)
            charged = g4.G4SDChargedFilter("charged")
            scorer.SetFilter(charged)
            active.RegisterPrimitive(scorer)
            keep += [active, scorer, charged]
            manager.AddNewDetector(active)
            for lv in self.active_volumes:
                lv.SetSensitiveDetector(active)
            if sim.trigger is None:
                return

            class Entry(g4.G4VSensitiveDetector):
                def ProcessHits(self, step: Any, _history: Any) -> bool:
                    sim._hand_over(step)
                    return True

            entry = Entry("caloforge_entry")
            keep.append(entry)
            manager.AddNewDetector(entry)
            self.entry.SetSensitiveDetector(entry)

    return Construction()
