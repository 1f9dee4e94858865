"""Geant4 events with the calorimeter's entry handed over to a fast simulation (g4run)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caloforge.geometry.detectors import load_detector
from caloforge.geometry.readout import ReadoutSpec
from caloforge.simulate.events import EventSimulator, Primary, TrackerSpec, Trigger
from caloforge.simulate.process import run_in_geant4_process

pytestmark = pytest.mark.geant4


def _cone(n: int, energy_mev: float) -> list[Primary]:
    """``n`` photons from the origin, spread in phi around the x axis at theta = pi/2."""
    out = []
    for k in range(n):
        phi = 0.2 * k
        out.append(Primary("gamma", energy_mev, (0.0, 0.0, 0.0), (math.cos(phi), math.sin(phi), 0.0)))  # fmt: skip
    return out


def _run(fast: bool, tracker_mm: float, events: list[list[Primary]]) -> list:
    detector = load_detector("par04-siw")
    tracker = TrackerSpec(detector.inner_radius_mm / 2, tracker_mm) if tracker_mm else None
    sim = EventSimulator(detector, ReadoutSpec.of(detector), tracker, Trigger() if fast else None)
    return sim.simulate(events, list(range(1, len(events) + 1)))


@pytest.fixture(scope="module")
def runs() -> dict[str, list]:
    events = [_cone(3, 5000.0) for _ in range(4)]
    return {
        "full": run_in_geant4_process(_run, False, 0.0, events),
        "fast": run_in_geant4_process(_run, True, 0.0, events),
        "fast-tracker": run_in_geant4_process(_run, True, 47.0, events),  # 0.5 X0 of Si
    }


def test_full_simulation_scores_the_showers_in_the_readout(runs):
    for event in runs["full"]:
        assert event.handovers == []
        assert 0.025 < event.energies.sum() / 15000.0 < 0.04  # raw active, ~3.2 % in W/Si
        assert np.all(np.diff(event.cells) > 0)


def test_every_photon_entering_is_handed_over_once_where_and_as_it_enters(runs):
    inner = load_detector("par04-siw").inner_radius_mm
    for event in runs["fast"]:
        assert event.energies.sum() == 0.0  # killed at the entry: nothing reached the layers
        assert len(event.handovers) == 3
        assert len({h.track for h in event.handovers}) == 3
        for h, primary in zip(sorted(event.handovers, key=lambda h: h.track), _cone(3, 5000.0), strict=True):  # fmt: skip
            assert h.particle == "gamma"
            assert h.energy_mev == pytest.approx(5000.0)
            assert math.hypot(h.position[0], h.position[1]) == pytest.approx(inner, abs=1e-6)
            np.testing.assert_allclose(h.direction, primary.direction, atol=1e-9)
            assert h.theta == pytest.approx(math.pi / 2)


def test_material_in_front_hands_over_what_reaches_the_calorimeter(runs):
    trigger = Trigger()
    converted = 0
    for event in runs["fast-tracker"]:
        keys = [(h.event, h.track) for h in event.handovers]
        assert len(keys) == len(set(keys)), "a particle was handed over twice"
        for h in event.handovers:
            assert trigger.accepts(h.particle, h.energy_mev, h.theta)
            assert h.position[0] * h.direction[0] + h.position[1] * h.direction[1] > 0
        assert sum(h.energy_mev for h in event.handovers) <= 15000.0 + 1e-6
        converted += any(h.particle != "gamma" for h in event.handovers)
    # 0.5 X0 of silicon converts 1 - exp(-7/18) = 32 % of the photons: some of 12 did
    assert converted >= 1
