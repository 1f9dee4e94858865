"""The Geant4 application: a barrel calorimeter, data-free EM physics and mesh scoring.

One :class:`ShowerSimulator` per process (Geant4 multithreading deadlocks with Python
callbacks). Scoring stays mostly in C++: a ``G4MultiFunctionalDetector`` on the active slices
with a ``G4SDChargedFilter`` calls the Python primitive scorer only for charged steps
(neutral steps are ~70% of all steps and deposit ~0.005% of the energy); the scorer appends
the post-step point and deposit (x, y, z, E), and each event's deposits are binned at once
with numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from caloforge.config import SIMULATION
from caloforge.data.specs import ShowerConditions
from caloforge.geometry.detectors import DetectorSpec
from caloforge.geometry.mesh import MeshSpec, barrel_entry, deposit, direction
from caloforge.simulate.emphysics import make_em_physics
from caloforge.simulate.g4 import geant4
from caloforge.simulate.materials import find_material
from caloforge.simulate.stepaccess import StepReader, read_bindings, read_direct

PHYSICS_LIST = "caloforge-em (data-free EM: PEEffectFluo, KleinNishina, BetheHeitler5D, Urban, MollerBhabha, eBremRel)"
LAYERS_PER_BLOCK = 10  # layers grouped in mother tubes so navigation sees few daughters


@dataclass
class ShowerResult:
    """What Geant4 gives for one shower."""

    index: int
    voxels: np.ndarray  # (n_voxels,) float32, MeV deposited in active material
    active_mev: float  # active deposits, inside the mesh or not (charged steps unless
    # score_passive, then all steps)
    passive_mev: float  # passive deposits (only when scoring passive material, else nan)


class ShowerSimulator:
    """Geant4 set up once for a detector, mesh and particle; simulates showers on demand.

    Args:
        detector: the calorimeter.
        mesh: the scoring mesh.
        particle: ``gamma``, ``e-`` or ``e+``.
        cut_mm: production cut.
        score_passive: also sum the energy deposited in passive slices (for the sampling
            fraction; costs one Python call per step there).
        score: attach the scorers at all (False gives bare Geant4, for benchmarks).
        direct_step_reads: let the scorer read steps from memory once validated
            (:mod:`caloforge.simulate.stepaccess`); the showers are identical either way.
    """

    def __init__(
        self,
        detector: DetectorSpec,
        mesh: MeshSpec,
        particle: str,
        cut_mm: float = SIMULATION.cut_mm,
        *,
        score_passive: bool = False,
        score: bool = True,
        direct_step_reads: bool = True,
    ) -> None:
        g4: Any = geant4()
        self.detector, self.mesh = detector, mesh
        self._keep: list[Any] = []
        self._hits: list[tuple[float, float, float, float]] = []
        self._active = [0.0]
        self._passive = [0.0]
        self._queue: list[ShowerConditions] = []
        self._results: list[ShowerResult] = []
        self.score_passive = score_passive
        self.score = score
        self.step_reader = StepReader(allow_direct=direct_step_reads)
        self.on_shower: Callable[[], None] | None = None  # called after every shower

        self.run_manager = g4.G4RunManagerFactory.CreateRunManager(g4.G4RunManagerType.Serial)
        ui = g4.G4UImanager.GetUIpointer()
        for command in (
            "/control/verbose 0",
            "/run/verbose 0",
            "/event/verbose 0",
            "/tracking/verbose 0",
            "/process/em/verbose 0",
            "/process/verbose 0",
        ):
            ui.ApplyCommand(command)
        g4.G4EmParameters.Instance().SetVerbose(0)
        g4.G4EmParameters.Instance().SetWorkerVerbose(0)
        self._construction = _make_construction(self)
        physics_list = make_physics_list()
        self.run_manager.SetUserInitialization(self._construction)
        self.run_manager.SetUserInitialization(physics_list)
        self._gun = g4.G4ParticleGun(1)
        self._gun.SetParticleDefinition(
            g4.G4ParticleTable.GetParticleTable().FindParticle(particle)
        )
        generator, event_action = make_actions(self)
        self.run_manager.SetUserAction(generator)
        self.run_manager.SetUserAction(event_action)
        self._keep += [physics_list, generator, event_action]
        self.run_manager.Initialize()
        ui.ApplyCommand(f"/run/setCut {cut_mm} mm")

    # -- called by Geant4 -------------------------------------------------------------------
    def _generate(self, event: Any) -> None:
        g4: Any = geant4()
        c = self._queue[len(self._results)]
        g4.HepRandom.setTheSeed(c.g4_seed)
        d = direction(c.theta, c.phi)
        self._gun.SetParticleEnergy(c.energy_mev * g4.MeV)
        self._gun.SetParticlePosition(g4.G4ThreeVector(0, 0, 0))
        self._gun.SetParticleMomentumDirection(g4.G4ThreeVector(*d))
        self._gun.GeneratePrimaryVertex(event)

    def _end_event(self) -> None:
        c = self._queue[len(self._results)]
        d = direction(c.theta, c.phi)
        origin = barrel_entry(c.theta, c.phi, self.detector.inner_radius_mm)
        # (H, 4): x, y, z, E; fromiter is ~2x faster than asarray on a list of tuples
        flat = itertools.chain.from_iterable(self._hits)
        hits = np.fromiter(flat, np.float64, 4 * len(self._hits)).reshape(-1, 4)
        voxels = deposit(self.mesh, hits[:, :3], hits[:, 3], origin, d)
        if self.score_passive:
            active, passive = self._active[0], self._passive[0]
        else:
            active, passive = float(hits[:, 3].sum()), math.nan
        self._results.append(ShowerResult(c.index, voxels.astype(np.float32), active, passive))
        if self.on_shower is not None:
            self.on_shower()
        self._hits.clear()
        self._active[0] = 0.0
        self._passive[0] = 0.0

    # -- public -------------------------------------------------------------------------------
    def simulate(self, conditions: Sequence[ShowerConditions]) -> list[ShowerResult]:
        """Simulate one shower per entry of ``conditions``, in order."""
        self._queue = list(conditions)
        self._results = []
        if self._queue:
            self.run_manager.BeamOn(len(self._queue))
        return self._results


def make_physics_list() -> Any:
    g4: Any = geant4()

    class PhysicsList(g4.G4VModularPhysicsList):
        def __init__(self) -> None:
            super().__init__()
            self.SetVerboseLevel(0)
            self.em = make_em_physics()
            self.RegisterPhysics(self.em)

    return PhysicsList()


def _make_construction(sim: ShowerSimulator) -> Any:
    g4: Any = geant4()
    spec = sim.detector

    class Construction(g4.G4VUserDetectorConstruction):
        def Construct(self) -> Any:
            keep = sim._keep
            vacuum = find_material("G4_Galactic")
            half = spec.outer_radius_mm + spec.length_mm  # generous world
            world_lv = g4.G4LogicalVolume(g4.G4Box("World", half, half, half), vacuum, "World")
            world = g4.G4PVPlacement(None, g4.G4ThreeVector(), world_lv, "World", None, False, 0)
            keep += [world_lv, world]
            self.active_volumes, self.passive_volumes = build_barrel(spec, world_lv, keep)
            return world

        def ConstructSDandField(self) -> None:
            if not sim.score:
                return
            keep = sim._keep
            manager = g4.G4SDManager.GetSDMpointer()
            active = g4.G4MultiFunctionalDetector("caloforge_active")
            mesh_scorer = make_mesh_scorer(sim._hits.append, sim.step_reader)
            charged = g4.G4SDChargedFilter("charged")
            mesh_scorer.SetFilter(charged)
            active.RegisterPrimitive(mesh_scorer)
            keep += [active, mesh_scorer, charged]
            manager.AddNewDetector(active)
            for lv in self.active_volumes:
                lv.SetSensitiveDetector(active)
            if not sim.score_passive:
                return
            # Sampling-fraction mode: every step's deposit, neutral or charged, in both.
            active_sum = _make_sum_scorer("active_sum", sim._active)
            active.RegisterPrimitive(active_sum)
            keep.append(active_sum)
            if self.passive_volumes:
                passive = g4.G4MultiFunctionalDetector("caloforge_passive")
                passive_sum = _make_sum_scorer("passive_sum", sim._passive)
                passive.RegisterPrimitive(passive_sum)
                keep += [passive, passive_sum]
                manager.AddNewDetector(passive)
                for lv in self.passive_volumes:
                    lv.SetSensitiveDetector(passive)

    return Construction()


def build_barrel(spec: DetectorSpec, mother: Any, keep: list[Any]) -> tuple[list[Any], list[Any]]:
    """Place the calorimeter's layers in the logical volume ``mother``; the active and the
    passive logical volumes. Geant4 objects are appended to ``keep`` (Python owns them)."""
    g4: Any = geant4()
    vacuum = find_material("G4_Galactic")
    active: list[Any] = []
    passive: list[Any] = []
    half_z = spec.length_mm / 2
    r = spec.inner_radius_mm
    for first in range(0, spec.n_layers, LAYERS_PER_BLOCK):
        n = min(LAYERS_PER_BLOCK, spec.n_layers - first)
        block_solid = g4.G4Tubs(
            f"Block{first}", r, r + n * spec.layer_thickness_mm, half_z, 0.0, 2 * math.pi
        )
        block_lv = g4.G4LogicalVolume(block_solid, vacuum, f"Block{first}")
        block = g4.G4PVPlacement(
            None, g4.G4ThreeVector(), block_lv, f"Block{first}", mother, False, first
        )
        keep += [block_solid, block_lv, block]
        for layer in range(first, first + n):
            for k, s in enumerate(spec.slices):
                name = f"L{layer}S{k}"
                solid = g4.G4Tubs(name, r, r + s.thickness_mm, half_z, 0.0, 2 * math.pi)
                lv = g4.G4LogicalVolume(solid, find_material(s.material), name)
                pv = g4.G4PVPlacement(None, g4.G4ThreeVector(), lv, name, block_lv, False, layer)
                keep += [solid, lv, pv]
                (active if s.active else passive).append(lv)
                r += s.thickness_mm
    return active, passive


def make_mesh_scorer(append: Callable[[tuple[float, float, float, float]], None], reader: StepReader) -> Any:  # fmt: skip
    """A primitive scorer that hands every deposit (x, y, z, E) of a step to ``append``."""
    g4: Any = geant4()

    class MeshScorer(g4.G4VPrimitiveScorer):
        # Called for every charged step in active material: keep it minimal. The deposit is
        # placed at the post-step point, as Par04's sensitive detector does.
        def ProcessHits(self, step: Any, _history: Any) -> bool:
            if reader.direct:
                hit = read_direct(step)
                if hit[3] > 0.0:
                    append(hit)
                return True
            if step.GetTotalEnergyDeposit() > 0.0:
                hit = read_bindings(step)
                append(hit)
                reader.validate(step, hit)
            return True

    return MeshScorer("mesh", 0)


def _make_sum_scorer(name: str, accumulator: list[float]) -> Any:
    g4: Any = geant4()

    class SumScorer(g4.G4VPrimitiveScorer):
        def ProcessHits(self, step: Any, _history: Any) -> bool:
            accumulator[0] += step.GetTotalEnergyDeposit()
            return True

    return SumScorer(name, 0)


def make_actions(sim: Any) -> tuple[Any, Any]:
    """The primary generator and event action of a simulator with ``_generate(event)`` and
    ``_end_event()`` (the shower and the event simulators)."""
    g4: Any = geant4()

    class Generator(g4.G4VUserPrimaryGeneratorAction):
        def GeneratePrimaries(self, event: Any) -> None:
            sim._generate(event)

    class EventAction(g4.G4UserEventAction):
        def EndOfEventAction(self, _event: Any) -> None:
            sim._end_event()

    return Generator(), EventAction()
