"""``caloforge benchmark``: a model's samplers against Geant4, side by side in one run.

What is timed (photons at normal incidence, random phi, on the model's first detector):

- **Geant4**, bare (no sensitive detector) and scored (caloforge's mesh), shower by shower:
  1 thread is one Geant4 process (its CPU time per shower); 2 threads are two processes
  running at once (wall time / showers).
- **The model's samplers** through :meth:`~caloforge.fastsim.FastSimModel.generate` (what
  ``caloforge sample`` runs): the diffusion teacher at its trained steps, and each consistency
  student at 2 and 1 steps; and the ONNX Runtime session of the model's default sampler
  (the graph of ``caloforge export --onnx``), at each batch size and thread count.

The networks' cost does not depend on the energy (a fixed mesh, a fixed number of network
evaluations), so each sampler is timed once per batch size and thread count, on showers of
the benchmark's energies in turn, and compared with Geant4 at every energy.

Each cell repeats its call until it has ``repeats`` timings or ``budget_s`` seconds (at least
one timing); the table gives the median and the spread (min-max) of ms per shower.

A diffusion teacher costs ``2 N - 1`` evaluations of each network for ``N`` Heun steps (63 at
32 steps): one batch of 256 takes minutes here. A teacher cell whose single call would take
longer than ``budget_s`` (estimated from the cell of the next smaller batch) is timed **by
parts**: the same batch at 1 and at :data:`PART_STEPS` Heun steps (1 and 15 evaluations), and
the cost extrapolated linearly in the evaluations to the trained steps. Every part of a
sampler call (network evaluations, the per-batch work before and after) is either once per
call or once per evaluation, so the line is exact up to timing noise; the table marks such
cells. A large enough ``budget_s`` times every cell in full. The
achieved FLOP/s of a sampler is its matrix-product FLOPs per shower (counted by
``torch.utils.flop_counter`` on one shower) over its time, against the machine's fp32 matmul
peak measured in the same run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caloforge import __version__
from caloforge.errors import SpecError
from caloforge.fastsim.model import FastSimModel, SamplerSettings, load_model, shower_seeds


@dataclass(frozen=True)
class Timing:
    """ms per shower of one cell: median, min, max over the repeats, and their number."""

    median: float
    low: float
    high: float
    repeats: int
    by_parts: bool = False  # extrapolated from shorter sampler runs (see the module doc)

    @classmethod
    def of(cls, values: Sequence[float]) -> Timing:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def format(self) -> str:
        mark = "*" if self.by_parts else ""
        if self.repeats < 2 or self.high <= self.low * 1.005:
            return _ms(self.median) + mark
        return f"{_ms(self.median)} ({_ms(self.low)}-{_ms(self.high)}){mark}"


PART_STEPS = 8
"""The longer of the two Heun runs that time a teacher cell by parts (the shorter: 1 step)."""


def heun_evaluations(steps: int) -> int:
    """Network evaluations (of each network) of ``steps`` Heun steps: the last is an Euler step."""
    return 2 * steps - 1


def by_parts(short: Timing, long: Timing, evaluations: tuple[int, int], target: int) -> Timing:
    """The timing at ``target`` evaluations on the line through ``short`` and ``long``, timed
    at ``evaluations`` (each of median, min and max)."""
    e_short, e_long = evaluations
    k = (target - e_short) / (e_long - e_short)
    return Timing(
        short.median + k * (long.median - short.median),
        short.low + k * (long.low - short.low),
        short.high + k * (long.high - short.high),
        min(short.repeats, long.repeats),
        by_parts=True,
    )


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


@dataclass
class BenchmarkResult:
    """Everything measured (the JSON file)."""

    model: str
    detector: str
    energies_gev: list[float]
    machine: dict[str, Any]
    matmul_gflops: dict[int, float] = field(default_factory=dict)  # threads -> peak
    geant4: dict[str, dict[str, Timing]] = field(default_factory=dict)  # "scored/1" -> E -> t
    samplers: dict[str, dict[str, Timing]] = field(default_factory=dict)  # name -> "b/t" -> t
    flops: dict[str, float] = field(default_factory=dict)  # sampler -> FLOPs per shower
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return json.loads(json.dumps(out))


def matmul_peak(threads: int, n: int = 1024, seconds: float = 1.0) -> float:
    """GFLOP/s of fp32 ``n x n`` matrix products on ``threads`` threads (best of the runs)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best, start = 0.0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
        return best
    finally:
        torch.set_num_threads(previous)


# ----------------------------------------------------------------------------------------------
# Geant4


def _geant4_showers(
    detector: str, energies: list[float], counts: list[int], score: bool
) -> dict[float, list[float]]:
    """CPU ms of each shower per energy, in this (Geant4) process; the first is a warm-up."""
    from caloforge.data.specs import PrimarySpec, ValueSpec, draw_conditions
    from caloforge.geometry.detectors import load_detector
    from caloforge.simulate.application import ShowerSimulator
    from caloforge.simulate.materials import detector_mesh

    spec = load_detector(detector)
    mesh, _ = detector_mesh(spec)
    sim = ShowerSimulator(spec, mesh, "gamma", score=score)
    out: dict[float, list[float]] = {}
    for i, (energy, n) in enumerate(zip(energies, counts, strict=True)):
        primary = PrimarySpec(
            "gamma",
            ValueSpec("fixed", energy, energy),
            ValueSpec("fixed", math.pi / 2, math.pi / 2),
            ValueSpec("uniform", 0, 2 * math.pi),
        )
        conditions = draw_conditions(primary, 100 + i, range(n + 1))
        sim.simulate(conditions[:1])
        times = []
        for k in range(1, n + 1):
            start = time.process_time()
            sim.simulate(conditions[k : k + 1])
            times.append(1000 * (time.process_time() - start))
        out[energy] = times
    return out


def geant4_timings(
    detector: str, energies: list[float], budget_s: float, threads: Sequence[int]
) -> dict[str, dict[str, Timing]]:
    """Geant4 bare and scored at each energy, on 1 and 2 processes (see the module doc)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    # showers per energy: about budget_s / 4 of Geant4 time each, from 1 GeV's ~10 ms per GeV
    counts = [max(2, min(40, round(budget_s / 4 / (0.011 * e)))) for e in energies]
    out: dict[str, dict[str, Timing]] = {}
    for score in (False, True):
        kind = "scored" if score else "bare"
        for n_proc in threads:
            with ProcessPoolExecutor(n_proc, mp_context=get_context("spawn")) as pool:
                jobs = [pool.submit(_geant4_showers, detector, energies, counts, score) for _ in range(n_proc)]  # fmt: skip
                results = [job.result() for job in jobs]
            if n_proc == 1:
                out[f"{kind}/1"] = {str(e): Timing.of(results[0][e]) for e in energies}
            else:  # throughput of n_proc processes at once: each shower's CPU time / n_proc
                out[f"{kind}/{n_proc}"] = {
                    str(e): Timing.of([t / n_proc for r in results for t in r[e]]) for e in energies
                }
    return out


# ----------------------------------------------------------------------------------------------
# The model


def _repeat(call: Callable[[int], None], batch: int, repeats: int, budget_s: float) -> Timing:
    """ms per shower of ``call(batch)``, repeated, after a warm-up ``call(1)``."""
    call(1)
    values: list[float] = []
    start = time.perf_counter()
    while len(values) < repeats and (not values or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        call(batch)
        values.append(1000 * (time.perf_counter() - t) / batch)
    return Timing.of(values)


def _conditions(model: FastSimModel, energies: list[float], n: int) -> tuple[np.ndarray, ...]:
    e = np.resize(np.asarray(energies) * 1e3, n)
    theta = np.full(n, math.pi / 2)
    lo, hi = model.preprocessing.conditions.theta_range
    theta = np.clip(theta, lo, hi)
    phi = np.random.default_rng(n).uniform(0, 2 * np.pi, n)
    return e, theta, phi


def samplers_of(model: FastSimModel) -> dict[str, SamplerSettings]:
    """The samplers benchmarked: the teacher, then each student at 2 and 1 steps."""
    out = {f"teacher ({model.diffusion.steps} steps)": SamplerSettings("heun")}
    for name, student in model.record.students.items():
        for steps in sorted({min(2, len(student.sigmas)), 1}, reverse=True):
            out[f"{name} ({steps} step{'s' if steps > 1 else ''})"] = SamplerSettings(name, steps)
    return out


def sampler_flops(model: FastSimModel, settings: SamplerSettings) -> float:
    """Matrix-product FLOPs of one shower (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    from caloforge.deploy.graph import ShowerGraph
    from caloforge.deploy.onnx import example_inputs

    graph = ShowerGraph(model, settings).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        graph(*example_inputs(graph, 1))
    return float(counter.get_total_flops())


def model_timings(
    model: FastSimModel,
    energies: list[float],
    batches: Sequence[int],
    threads: Sequence[int],
    repeats: int,
    budget_s: float,
) -> dict[str, dict[str, Timing]]:
    """Every sampler at every batch size and thread count."""
    detector = next(iter(model.detectors))
    out: dict[str, dict[str, Timing]] = {}
    previous = torch.get_num_threads()
    try:
        for name, settings in samplers_of(model).items():
            out[name] = {}
            teacher = settings.sampler not in model.record.students
            for n_threads in threads:
                torch.set_num_threads(n_threads)
                per_shower: float | None = None  # ms, of the last cell at this thread count
                for batch in sorted(batches):
                    e, theta, phi = _conditions(model, energies, batch)
                    seeds = shower_seeds(1, range(batch))

                    def call(n: int, e=e, theta=theta, phi=phi, seeds=seeds, settings=settings) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
                        model.generate(e[:n], theta[:n], phi[:n], detector, seeds[:n], settings=settings, batch_size=n)  # fmt: skip

                    slow = per_shower is not None and per_shower * batch / 1e3 > budget_s
                    if teacher and slow and model.diffusion.steps > PART_STEPS:
                        short, long = (_repeat(partial(call, settings=replace(settings, steps=k)), batch, repeats, budget_s) for k in (1, PART_STEPS))  # fmt: skip
                        evaluations = (heun_evaluations(1), heun_evaluations(PART_STEPS))
                        timing = by_parts(short, long, evaluations, heun_evaluations(model.diffusion.steps))  # fmt: skip
                    else:
                        timing = _repeat(call, batch, repeats, budget_s)
                    out[name][f"{batch}/{n_threads}"] = timing
                    per_shower = timing.median
    finally:
        torch.set_num_threads(previous)
    return out


def onnx_settings(model: FastSimModel) -> SamplerSettings:
    """The sampler :func:`onnx_timings` exports (see there)."""
    default, _ = SamplerSettings().resolve(model)
    if default in model.record.students or not model.record.students:
        return SamplerSettings()
    return SamplerSettings(next(iter(model.record.students)), 1)


def onnx_timings(
    model: FastSimModel,
    batches: Sequence[int],
    threads: Sequence[int],
    repeats: int,
    budget_s: float,
) -> tuple[str, dict[str, Timing]]:
    """The ONNX Runtime session of a few-step sampler at each batch and thread count: the
    model's default if it is a student, else its first student at 1 step (else the teacher)."""
    import onnxruntime

    from caloforge.deploy.graph import ShowerGraph
    from caloforge.deploy.onnx import INPUTS, example_inputs, export_onnx

    settings = onnx_settings(model)
    sampler, steps = settings.resolve(model)
    graph = ShowerGraph(model, settings)
    out: dict[str, Timing] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, settings=settings)
        for n_threads in threads:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = n_threads
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])  # fmt: skip
            for batch in batches:
                feed = {k: v.numpy() for k, v in zip(INPUTS, example_inputs(graph, batch), strict=True)}  # fmt: skip

                def call(n: int, feed=feed, session=session) -> None:  # type: ignore[no-untyped-def]
                    session.run(None, {k: v[:n] for k, v in feed.items()})

                out[f"{batch}/{n_threads}"] = _repeat(call, batch, repeats, budget_s)
    return f"ONNX Runtime, {sampler} ({steps} step{'s' if steps > 1 else ''})", out


# ----------------------------------------------------------------------------------------------
# The run


def benchmark(
    model: str | Path = "default",
    *,
    energies: Sequence[float] = (1.0, 10.0, 100.0),
    batches: Sequence[int] = (1, 64, 256),
    threads: Sequence[int] = (1, 2),
    repeats: int = 3,
    budget_s: float = 10.0,
    geant4: bool = True,
    onnx: bool = True,
    progress: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Time Geant4 and the model's samplers in one run (see the module doc).

    Raises:
        SpecError: for bad settings (no energies, batches or threads; out of range).
        DataError: for a missing or broken model.
    """
    if not energies or not batches or not threads:
        raise SpecError("give at least one energy, batch size and thread count")
    if min(batches) < 1 or min(threads) < 1 or repeats < 1 or not budget_s > 0:
        raise SpecError("batch sizes, threads and repeats must be >= 1, the budget > 0")
    say = progress or (lambda _: None)
    loaded = load_model(model)
    lo, hi = (v / 1e3 for v in loaded.preprocessing.conditions.energy_range_mev)
    outside = [e for e in energies if not lo * (1 - 1e-4) <= e <= hi * (1 + 1e-4)]
    if outside:
        raise SpecError(f"energies {outside} GeV leave the model's range {lo:g}-{hi:g} GeV", subject="energies")  # fmt: skip
    result = BenchmarkResult(
        str(model),
        next(iter(loaded.detectors)),
        [float(e) for e in energies],
        {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "caloforge": __version__,
        },
    )
    say("matmul peak")
    result.matmul_gflops = {t: matmul_peak(t) for t in threads}
    if geant4:
        say("Geant4")
        result.geant4 = geant4_timings(result.detector, list(energies), budget_s, threads)
    say("the model's samplers")
    result.samplers = model_timings(loaded, list(energies), batches, threads, repeats, budget_s)
    result.flops = {name: sampler_flops(loaded, s) for name, s in samplers_of(loaded).items()}
    if onnx:
        say("ONNX Runtime")
        try:
            name, timings = onnx_timings(loaded, batches, threads, repeats, budget_s)
        except SpecError as exc:  # no onnx extra
            result.notes.append(f"ONNX Runtime not timed: {exc.describe()}")
        else:
            result.samplers[name] = timings
            result.flops[name] = sampler_flops(loaded, onnx_settings(loaded))
    return result


def markdown(result: BenchmarkResult) -> str:
    """The tables: ms per shower, speed-up over scored Geant4 per energy, FLOP/s."""
    threads = sorted({int(k.split("/")[1]) for t in result.samplers.values() for k in t})
    peaks = ", ".join(
        f"{v:.0f} GFLOP/s on {t} thread{'s' * (t > 1)}" for t, v in result.matmul_gflops.items()
    )
    lines = [
        f"# caloforge benchmark: {result.model} against Geant4 ({result.detector})",
        "",
        (
            f"{result.machine['cores']} cores, torch {result.machine['torch']}, caloforge "
            f"{result.machine['caloforge']}. Photons at theta = pi/2. ms per shower: median "
            "(min-max) over the repeats. Speed-up: scored Geant4 at the same number of threads "
            f"over the sampler. fp32 matmul peak: {peaks}."
        ),
        "",
    ]
    if result.geant4:
        lines += ["## Geant4", "", "| Geant4 | threads | " + " | ".join(f"{e:g} GeV" for e in result.energies_gev) + " |"]  # fmt: skip
        lines += ["|---|---|" + "---|" * len(result.energies_gev)]
        for key, row in result.geant4.items():
            kind, t = key.split("/")
            lines.append(f"| {kind} | {t} | " + " | ".join(row[str(e)].format() for e in result.energies_gev) + " |")  # fmt: skip
        lines.append("")
    speed = [f"x G4 {e:g} GeV" for e in result.energies_gev] if result.geant4 else []
    head = ["sampler", "batch", "threads", "ms/shower", *speed, "GFLOP/s (% of peak)"]
    lines += [
        "## The model",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, cells in result.samplers.items():
        for key, timing in cells.items():
            batch, n_threads = (int(v) for v in key.split("/"))
            cols = [name, str(batch), str(n_threads), timing.format()]
            g4 = result.geant4.get(f"scored/{n_threads}")
            if speed and g4 is not None:
                cols += [f"{g4[str(e)].median / timing.median:.3g}" for e in result.energies_gev]
            elif speed:
                cols += ["-"] * len(speed)
            flops = result.flops.get(name)
            peak = result.matmul_gflops.get(n_threads)
            if flops and peak:
                achieved = flops / (timing.median / 1e3) / 1e9
                cols.append(f"{achieved:.1f} ({100 * achieved / peak:.0f} %)")
            else:
                cols.append("-")
            lines.append("| " + " | ".join(cols) + " |")
    lines += ["", "FLOPs per shower (matrix products): " + ", ".join(f"{k} {v / 1e9:.3g} G" for k, v in result.flops.items()) + "."]  # fmt: skip
    if any(t.by_parts for cells in result.samplers.values() for t in cells.values()):
        lines.append(
            f"\\* by parts: timed at 1 and {PART_STEPS} Heun steps ({heun_evaluations(1)} and "
            f"{heun_evaluations(PART_STEPS)} network evaluations) and extrapolated linearly in the "
            "evaluations to the trained steps, because one call would outlast `--budget-s`."
        )
    lines += [f"Threads timed: {', '.join(map(str, threads))}.", *result.notes, ""]
    return "\n".join(lines)


def figure(result: BenchmarkResult) -> Any:
    """ms per shower against batch size, per sampler and thread count, with Geant4's lines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name, cells in result.samplers.items():
        by_threads: dict[int, list[tuple[int, float]]] = {}
        for key, timing in cells.items():
            batch, t = (int(v) for v in key.split("/"))
            by_threads.setdefault(t, []).append((batch, timing.median))
        for t, points in by_threads.items():
            points.sort()
            ax.plot(*zip(*points, strict=True), "o-" if t > 1 else "s--", label=f"{name}, {t} thr")  # fmt: skip
    for key, row in result.geant4.items():
        if key.startswith("scored"):
            for e in result.energies_gev:
                ax.axhline(row[str(e)].median, color="grey", lw=0.8, ls=":" if key.endswith("/1") else "-")  # fmt: skip
                label = f"Geant4 {e:g} GeV ({key.split('/')[1]} thr)"
                ax.text(1, row[str(e)].median, label, fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per shower")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write(result: BenchmarkResult, out: Path) -> list[Path]:
    """``out/benchmark.md``, ``.json`` and ``.png`` (each atomically)."""
    from caloforge.atomic import atomic_file, write_json_atomic, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "benchmark.md", out / "benchmark.json", out / "benchmark.png"]
    write_text_atomic(paths[0], markdown(result))
    write_json_atomic(paths[1], result.to_dict())
    with atomic_file(paths[2]) as tmp:
        figure(result).savefig(tmp, dpi=110, format="png")
    return paths
