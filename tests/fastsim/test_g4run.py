"""``caloforge g4run``: event generators, the placement of generated showers in the readout, and
a tiny model as the fast simulation of a real Geant4 run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from caloforge.cli import main
from caloforge.data.specs import PrimarySpec, parse_spec
from caloforge.errors import SpecError
from caloforge.fastsim.g4run import PI0_MASS_MEV, VOXEL_SPLIT, GunSpec, place_showers
from caloforge.geometry.detectors import load_detector
from caloforge.geometry.mesh import MeshSpec
from caloforge.geometry.readout import ReadoutSpec
from caloforge.simulate.events import Handover


def _primary(energy: str = "10", theta: str = "1.2", phi: str = "0.5") -> PrimarySpec:
    return PrimarySpec("gamma", parse_spec(energy, "energy"), parse_spec(theta, "theta"), parse_spec(phi, "phi"))  # fmt: skip


def test_a_pi0_gives_two_photons_of_its_energy_and_mass():
    gun = GunSpec("pi0", _primary("20"))
    for event in gun.draw(seed=3, indices=range(20)):
        assert [p.particle for p in event] == ["gamma", "gamma"]
        e = np.array([p.energy_mev for p in event])
        d = np.array([p.direction for p in event])
        assert e.sum() == pytest.approx(20000 + PI0_MASS_MEV)  # kinetic energy + mass
        mass2 = 2 * e[0] * e[1] * (1 - d[0] @ d[1])  # massless photons
        assert math.sqrt(mass2) == pytest.approx(PI0_MASS_MEV, rel=1e-6)


def test_a_cone_keeps_its_photons_within_the_half_angle_and_events_are_reproducible():
    gun = GunSpec("cone", _primary("log:1:10"), n=4, half_angle=0.05)
    events = gun.draw(seed=1, indices=range(10))
    assert all(len(e) == 4 for e in events)
    for event in events:
        axis = np.mean([p.direction for p in event], axis=0)
        for p in event:
            assert 1000 <= p.energy_mev <= 10000
            assert np.arccos(np.clip(np.dot(p.direction, axis / np.linalg.norm(axis)), -1, 1)) < 0.1  # fmt: skip
    assert gun.draw(seed=1, indices=[7]) == [events[7]]  # event i depends on (seed, i) only
    with pytest.raises(SpecError):
        GunSpec.parse("cone:3", _primary())


def test_a_known_voxel_lands_in_the_known_cells():
    detector = load_detector("par04-siw")
    readout = ReadoutSpec.of(detector)
    mesh = MeshSpec(n_z=45, n_phi=16, n_r=9)
    shower = np.zeros(mesh.n_voxels, np.float32)
    iz, ir = 10, 0
    for iphi in range(mesh.n_phi):  # the innermost ring at depth cell 10: on the axis, +-4.65 mm
        shower[(iz * mesh.n_phi + iphi) * mesh.n_r + ir] = 1.0
    entry = Handover(0, 1, "gamma", 1e4, (detector.inner_radius_mm, 0.0, 0.0), (1.0, 0.0, 0.0))
    cells, energies = place_showers(readout, mesh, [entry], shower[None])
    assert energies.sum() == pytest.approx(16.0)  # nothing lost
    layers = cells // (readout.n_phi * readout.n_z)
    phis = (cells // readout.n_z) % readout.n_phi
    zs = cells % readout.n_z
    # depth 34-37.4 mm behind the face: layers 20 and 21 of 1.7 mm; a ring of radius < 4.65 mm
    # around phi = 0 at r = 0.8 m: the phi segments next to pi (index 128 of 256) and the z
    # cells either side of z = 0
    assert set(layers.tolist()) == {20, 21}
    assert set(phis.tolist()) <= {127, 128}
    assert set(zs.tolist()) <= {readout.n_z // 2 - 1, readout.n_z // 2}
    assert math.prod(VOXEL_SPLIT) > 1


def test_a_batch_over_events_deposits_what_event_by_event_does(teachers):
    from caloforge.fastsim.g4run import FastSimulation
    from caloforge.fastsim.model import SamplerSettings
    from caloforge.simulate.events import EventResult

    detector = load_detector("par04-siw")
    readout = ReadoutSpec.of(detector)
    fast = FastSimulation(str(teachers["factorized"]), detector, SamplerSettings(steps=2), seed=5)
    face = detector.inner_radius_mm

    def handover(event: int, track: int, energy: float, phi: float) -> Handover:
        c, s = math.cos(phi), math.sin(phi)
        return Handover(event, track, "gamma", energy, (face * c, face * s, 0.0), (c, s, 0.0))

    events = [
        EventResult(3, np.zeros(0, np.int64), np.zeros(0), [handover(3, 1, 8000.0, 0.3), handover(3, 2, 2000.0, 2.0)]),
        EventResult(4, np.zeros(0, np.int64), np.zeros(0), []),  # nothing handed over
        EventResult(5, np.zeros(0, np.int64), np.zeros(0), [handover(5, 1, 30000.0, 4.0)]),
    ]  # fmt: skip
    alone = [d for e in events for d in fast.deposit(readout, [e])]
    batched = fast.deposit(readout, events)
    assert len(batched) == 3
    assert len(batched[1].cells) == 0
    assert batched[1].seconds == 0.0
    for a, b in zip(alone, batched, strict=True):
        np.testing.assert_array_equal(a.cells, b.cells)  # a shower's seed ignores the batch
        np.testing.assert_allclose(a.energies, b.energies, rtol=1e-4, atol=1e-6)
    assert batched[0].energies.sum() > 0
    assert batched[0].seconds > 0
    assert batched[2].seconds > 0


def test_the_energy_sum_error_is_that_of_the_same_events():
    from caloforge.evaluate.runs import Run, compare_runs

    rng = np.random.default_rng(0)
    primaries = rng.uniform(20e3, 60e3, 400)  # a wide spread common to both runs
    readout = json.dumps({"n_layers": 1, "n_phi": 1, "length_mm": 10.0, "z_cell_mm": 10.0})

    def run(energies: np.ndarray) -> Run:
        n = len(energies)
        data = {"event_energy_mev": energies, "event_geant4_seconds": np.ones(n),
                "event_model_seconds": np.zeros(n), "readout_offsets": np.arange(n + 1),
                "readout_cells": np.zeros(n, np.int64), "readout_energies_mev": energies,
                "handover_event": np.zeros(0, np.int64), "primary_event": np.arange(n)}  # fmt: skip
        attrs = {"detector_name": "d", "readout": readout, "gun": "g", "seed": 1, "tracker": "null"}
        return Run("x.h5", attrs, data)

    full = primaries * (1 + 0.01 * rng.standard_normal(400))
    fast = primaries * (1.005 + 0.01 * rng.standard_normal(400))
    r = compare_runs(run(full), run(fast))
    assert r.mean_ratio == pytest.approx(0.005, abs=0.002)
    # ~1.4 % per event over 400 events: 0.07 %, not the 2 % of the primaries' spread
    assert 0.0004 < r.mean_ratio_error < 0.0012


@pytest.mark.geant4
def test_a_tiny_model_runs_as_the_fast_simulation_of_a_geant4_run(teachers, tmp_path: Path):
    out = {}
    for fast in ("none", str(teachers["factorized"])):
        out[fast] = tmp_path / f"{Path(fast).name}.h5"
        args = ["g4run", "--detector", "par04-siw", "--fast", fast, "--energy", "5",
                "--theta", "1.5708", "--phi", "0:6.28", "--events", "3", "--seed", "2",
                "--sampler-steps", "2", "--no-progress", "--out", out[fast]]  # fmt: skip
        assert main([*map(str, args)]) == 0
    with h5py.File(out["none"]) as full, h5py.File(out[str(teachers["factorized"])]) as fast:
        assert len(full["handover_energy_mev"]) == 0
        assert full["event_energy_mev"][()].min() > 100  # ~3 % of 5 GeV in the active layers
        # one photon per event, handed over where it enters, at its energy
        np.testing.assert_array_equal(fast["handover_event"][()], [0, 1, 2])
        np.testing.assert_allclose(fast["handover_energy_mev"][()], 5000.0)
        inner = load_detector("par04-siw").inner_radius_mm
        np.testing.assert_allclose(np.hypot(*fast["handover_position_mm"][()][:, :2].T), inner)
        # the same primaries in both runs; the fast events' energy is the model's showers
        np.testing.assert_array_equal(full["primary_direction"][()], fast["primary_direction"][()])
        # (a model trained 2 steps may draw a shower all below the threshold)
        assert fast["event_energy_mev"][()].max() > 0
        offsets = fast["readout_offsets"][()]
        assert offsets[-1] == len(fast["readout_cells"]) == len(fast["readout_energies_mev"])
        assert fast.attrs["fast"] == str(teachers["factorized"])
        assert json.loads(fast.attrs["trigger"])["particles"] == ["gamma"]  # the model's


def test_the_trigger_hands_over_the_particles_and_energies_it_names(teachers, tmp_path: Path):
    model = str(teachers["factorized"])
    base = ["g4run", "--detector", "par04-siw", "--fast", model, "--particle", "e-",
            "--theta", "1.5708", "--phi", "0:6.28", "--events", "2", "--seed", "3",
            "--sampler-steps", "2", "--no-progress"]  # fmt: skip
    photons_only, electrons = tmp_path / "photons.h5", tmp_path / "electrons.h5"
    assert main([*base, "--energy", "5", "--out", str(photons_only)]) == 0
    assert main([*base, "--energy", "5", "--trigger-particles", "gamma,e-", "--trigger-energy", "2:50", "--out", str(electrons)]) == 0  # fmt: skip
    with h5py.File(photons_only) as f:
        assert len(f["handover_pdg"]) == 0  # a photon model takes no electron by default
    with h5py.File(electrons) as f:
        np.testing.assert_array_equal(f["handover_pdg"][()], [11, 11])
        trigger = json.loads(f.attrs["trigger"])
        assert trigger["particles"] == ["gamma", "e-"]
        assert (trigger["min_energy_mev"], trigger["max_energy_mev"]) == (2000.0, 50000.0)


def test_a_trigger_outside_the_model_is_one_clear_error(teachers, tmp_path: Path, capsys):
    base = ["g4run", "--detector", "par04-siw", "--fast", str(teachers["factorized"]),
            "--energy", "5", "--events", "1", "--no-progress", "--out", str(tmp_path / "x.h5")]  # fmt: skip
    assert main([*base, "--trigger-particles", "gamma,mu-"]) == 1
    assert main([*base, "--trigger-energy", "0.1:50"]) == 1  # the model starts at 1 GeV
    assert main([*base, "--trigger-energy", "50:10"]) == 1
    assert main([*base, "--trigger-energy", "ten"]) == 1
    err = capsys.readouterr().err
    assert "trigger particles must be among gamma, e-, e+; got mu-" in err
    assert err.count("inside the model's range 1:100;") == 2
    assert "must be LO:HI, got 'ten'" in err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_bad_g4run_input_is_one_clear_error(tmp_path: Path, capsys):
    base = ["g4run", "--energy", "5", "--events", "2", "--out", str(tmp_path / "x.h5")]
    assert main([*base, "--detector", "nope"]) == 1
    assert main([*base, "--detector", "par04-siw", "--gun", "cone:x"]) == 1
    assert main([*base[:3], "--events", "0", "--detector", "par04-siw", "--out", str(tmp_path / "y.h5")]) == 1  # fmt: skip
    assert main([*base, "--detector", "par04-siw", "--tracker", "5"]) == 1  # 468 mm from 400 mm
    assert main([*base, "--detector", "par04-siw", "--batch-events", "26"]) == 1
    err = capsys.readouterr().err
    assert "batch events must be 1 to 25, got 26" in err
    assert "must end inside par04-siw's inner radius" in err
    assert "unknown detector 'nope'" in err
    assert "choose single, pi0 or cone:N:HALF_ANGLE" in err
    assert "must be at least 1" in err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.geant4
def test_the_onnx_runtime_backend_gives_the_showers_of_its_export(students, tmp_path: Path):
    pytest.importorskip("onnxruntime")
    from caloforge.fastsim.g4run import FastSimulation

    model = students["factorized"]
    path = tmp_path / "m.onnx"
    assert main(["export", "--onnx", str(model), "--sampler", "cd", "--sampler-steps", "1", "--out", str(path)]) == 0  # fmt: skip
    detector = load_detector("par04-siw")
    h = [Handover(0, 1, "gamma", 5000.0, (800.0, 0, 0), (1.0, 0, 0)), Handover(0, 2, "gamma", 20000.0, (0, 800.0, 0), (0, 1.0, 0))]  # fmt: skip
    onnx = FastSimulation(str(path), detector)
    assert onnx.trigger.particles == ("gamma",)
    showers = onnx.showers(h, [11, 12])
    assert showers.shape == (2, onnx.mesh.n_voxels)
    assert np.isfinite(showers).all()
    assert showers.sum() > 0
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    from caloforge.errors import DataError

    with pytest.raises(DataError, match="not a readable ONNX model"):
        FastSimulation(str(bad), detector)


@pytest.mark.geant4
def test_a_killed_run_resumes_from_its_finished_chunks(tmp_path: Path, monkeypatch):
    from caloforge.fastsim import g4run as module

    monkeypatch.setattr(module, "EVENTS_PER_PROCESS", 2)
    args = ["g4run", "--detector", "par04-siw", "--energy", "2", "--theta", "1.5708",
            "--events", "5", "--seed", "4", "--no-progress"]  # fmt: skip
    reference = tmp_path / "reference.h5"
    assert main([*args, "--out", str(reference)]) == 0
    out = tmp_path / "resumed.h5"
    calls = []
    real = module.run_in_geant4_process

    def interrupted_in_the_second_chunk(fn, *a):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as Ctrl-C, or a kill, while Geant4 runs
        return real(fn, *a)

    monkeypatch.setattr(module, "run_in_geant4_process", interrupted_in_the_second_chunk)
    assert main([*args, "--out", str(out)]) == 130
    assert not out.exists()
    assert len(list((tmp_path / "resumed.h5.partial").glob("events-*.npz"))) == 1
    monkeypatch.undo()
    monkeypatch.setattr(module, "EVENTS_PER_PROCESS", 2)
    assert main([*args, "--out", str(out)]) == 0
    assert not (tmp_path / "resumed.h5.partial").exists()
    with h5py.File(reference) as a, h5py.File(out) as b:
        for key in ("event_energy_mev", "readout_cells", "readout_energies_mev", "primary_direction"):  # fmt: skip
            np.testing.assert_array_equal(a[key][()], b[key][()])
    assert main([*args, "--energy", "3", "--out", str(tmp_path / "other.h5")]) == 0


@pytest.mark.geant4
def test_the_full_vs_fast_report_compares_the_same_events(teachers, tmp_path: Path):
    from caloforge.errors import DataError
    from caloforge.evaluate.runs import compare_runs, read_run, write_run_report

    paths = {}
    for name, fast, seed in (("full", "none", "2"), ("fast", str(teachers["factorized"]), "2"), ("other", "none", "3")):  # fmt: skip
        paths[name] = tmp_path / f"{name}.h5"
        args = ["g4run", "--detector", "par04-siw", "--fast", fast, "--energy", "3", "--theta", "1.5708",
                "--events", "4", "--seed", seed, "--sampler-steps", "2", "--no-progress", "--out", str(paths[name])]  # fmt: skip
        assert main(args) == 0
    full = read_run(paths["full"])
    same = compare_runs(full, full)
    assert same.mean_ratio == 0.0
    assert same.speedup == pytest.approx(1.0)
    assert same.handovers_per_event == 0.0
    result = write_run_report(full, read_run(paths["fast"]), tmp_path / "report")
    assert result.handovers_per_event == 1.0
    assert result.events == 4
    assert (tmp_path / "report" / "index.html").exists()
    assert (tmp_path / "report" / "full_vs_fast.png").exists()
    with pytest.raises(DataError, match="not the same events"):
        compare_runs(full, read_run(paths["other"]))
    with pytest.raises(DataError, match="not a readable caloforge g4run file"):
        read_run(teachers["data"])
