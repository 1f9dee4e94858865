"""The ``caloforge`` command: thin subcommands that parse, load and call the library."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from caloforge import __version__
from caloforge.config import CALIBRATION, SIMULATION
from caloforge.data.specs import PrimarySpec, parse_particle, parse_spec
from caloforge.errors import CaloforgeError, SpecError

log = logging.getLogger("caloforge")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults in --help, except for required options and flags."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


class _Deprecated(argparse.Action):
    """An old spelling of an option: works for one more release, with a warning."""

    def __init__(self, *args: Any, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        command = parser.prog.removeprefix("caloforge ")
        print(
            f"caloforge: warning: {command} {option_string} is deprecated and goes in the next "
            f"release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error convention: one line, exit code 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"caloforge: error: {self.prog.removeprefix('caloforge ')}: {message}\n")


def _add_shower_spec(p: argparse.ArgumentParser) -> None:
    """The options that say which showers to make (shared by simulate and sample)."""
    p.add_argument("--particle", default=SIMULATION.particle, help="gamma, e- or e+")
    p.add_argument(
        "--energy", required=True, help="GeV: 50, A:B (uniform), log:A:B or 10,50,100 (one of)"
    )
    p.add_argument("--theta", default=SIMULATION.theta, help="rad: fixed, A:B or log:A:B")
    p.add_argument("--phi", default=SIMULATION.phi, help="rad, taken modulo 2 pi: fixed or A:B")
    p.add_argument("-n", type=int, required=True, help="number of showers")
    p.add_argument("--seed", type=int, default=SIMULATION.seed, help="run seed")


def cmd_detectors(args: argparse.Namespace) -> int:
    from caloforge.geometry.detectors import builtin_detector_names, load_detector
    from caloforge.simulate.materials import CATALOG_COLUMNS, catalog_row

    if args.yaml:
        print(load_detector(args.yaml).to_yaml(), end="")
        return 0
    rows = [CATALOG_COLUMNS, *(catalog_row(load_detector(name)) for name in args.detector or builtin_detector_names())]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(CATALOG_COLUMNS))]
    for k, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print("\nX0 and R_M from Geant4 NIST materials (PDG mixture rules); sampling fraction =")
    print("active/(active+passive) energy, measured with `caloforge calibrate` (see the YAML).")
    return 0


def _add_detectors(sub: Any) -> None:
    """The ``detectors`` command's options."""
    p = sub.add_parser(
        "detectors",
        formatter_class=_HelpFormatter,
        help="list the built-in detectors and their properties",
    )
    p.add_argument("--detector", action="append", help="only this detector (name or YAML file)")
    p.add_argument(
        "--yaml", metavar="NAME", help="print a detector's YAML (a template for your own)"
    )
    p.set_defaults(func=cmd_detectors)


def _parse_energies(text: str) -> tuple[float, ...]:
    try:
        energies = tuple(float(e) for e in text.split(","))
    except ValueError:
        energies = ()
    if not energies or not all(0 < e < float("inf") for e in energies):
        raise SpecError(f"--energies {text!r}: expected positive energies in GeV like 1,10,100")
    return energies


def cmd_calibrate(args: argparse.Namespace) -> int:
    from caloforge.geometry.detectors import load_detector
    from caloforge.resources import check_seed
    from caloforge.simulate.calibrate import combine, measure_sampling_fraction

    energies = _parse_energies(args.energies)
    if args.n < 2 or not args.cut > 0:
        raise SpecError(f"calibrate needs -n >= 2 and --cut > 0, got -n {args.n} --cut {args.cut}")
    check_seed(args.seed)
    spec = load_detector(args.detector)
    measurements = measure_sampling_fraction(spec, energies, args.n, args.seed, args.cut)
    print(f"{'E [GeV]':>8} {'n':>5} {'sampling fraction':>20} {'E_active/E_inc':>15}")
    for m in measurements:
        print(
            f"{m.energy_gev:>8g} {m.n:>5} {m.value:>12.5f} ± {m.error:.5f} {m.active_over_incident:>15.5f}"
        )
    value, error = combine(measurements)
    command = (
        f"caloforge calibrate --detector {args.detector} -n {args.n} "
        f"--energies {args.energies} --seed {args.seed} --cut {args.cut:g}"
    )
    print("\n# for the detector's YAML:")
    print(
        f"sampling_fraction: {{value: {value:.5f}, error: {error:.5f}, measured_with: '{command}'}}"
    )
    return 0


def _add_calibrate(sub: Any) -> None:
    """The ``calibrate`` command's options."""
    energies = ",".join(f"{e:g}" for e in CALIBRATION.energies_gev)
    p = sub.add_parser(
        "calibrate",
        formatter_class=_HelpFormatter,
        help="measure a detector's sampling fraction with Geant4",
    )
    p.add_argument("--detector", required=True, help="built-in name or YAML file")
    p.add_argument("-n", type=int, default=CALIBRATION.n, help="photons per energy")
    p.add_argument("--energies", default=energies, help="photon energies in GeV")
    p.add_argument("--seed", type=int, default=CALIBRATION.seed, help="run seed")
    p.add_argument(
        "--cut",
        type=float,
        default=SIMULATION.cut_mm,
        help="production cut in mm",
    )
    p.set_defaults(func=cmd_calibrate)


def cmd_simulate(args: argparse.Namespace) -> int:
    from caloforge.simulate.runner import simulate_file

    simulate_file(
        args.detector,
        _primary(args),
        args.n,
        args.out,
        seed=args.seed,
        cut_mm=args.cut,
        cells=args.cells,
        chunk_size=args.chunk_size,
        workers=args.workers,
        dask=args.dask,
        allow_out_of_range=args.allow_out_of_range,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
    print(f"wrote {args.n} showers to {args.out}")
    return 0


def _add_simulate(sub: Any) -> None:
    """The ``simulate`` command's options."""
    p = sub.add_parser(
        "simulate", formatter_class=_HelpFormatter, help="simulate Geant4 showers into an HDF5 file"
    )
    p.add_argument(
        "--detector", required=True, help="built-in name (see `caloforge detectors`) or YAML file"
    )
    _add_shower_spec(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=SIMULATION.workers,
        help="parallel Geant4 processes",
    )
    where.add_argument(
        "--dask",
        metavar="ADDRESS|local:N",
        help="run the chunks on a Dask cluster: a scheduler address (tcp://host:8786), or "
        "local:N for N worker processes here (needs caloforge[dask]; see docs/commands/simulate.md)",
    )
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument(
        "--cut",
        type=float,
        default=SIMULATION.cut_mm,
        help="production cut in mm",
    )
    p.add_argument(
        "--cells",
        default=SIMULATION.cells,
        help="mesh cells z x phi x r",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=SIMULATION.chunk_size,
        help="showers per resumable chunk",
    )
    p.add_argument(
        "--allow-out-of-range",
        action="store_true",
        help="allow energies outside [1 GeV, 1 TeV] and theta outside [0.87, 2.27]",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)


def cmd_inspect(args: argparse.Namespace) -> int:
    from caloforge.data.inspect import format_report, inspect_file

    report = inspect_file(args.file, dataset=args.dataset, binning_xml=args.binning)
    print(format_report(report))
    return 0 if report.valid else 1


def _add_inspect(sub: Any) -> None:
    """The ``inspect`` command's options."""
    p = sub.add_parser(
        "inspect", formatter_class=_HelpFormatter, help="summarise and validate a shower file"
    )
    p.add_argument("file")
    p.add_argument(
        "--calochallenge",
        dest="dataset",
        choices=["1-photons", "1-pions", "2", "3"],
        action=_Deprecated,
        new="--dataset",
        help=argparse.SUPPRESS,
    )
    p.add_argument(
        "--dataset",
        choices=["1-photons", "1-pions", "2", "3"],
        help="read as a CaloChallenge dataset (default: detect)",
    )
    p.add_argument("--binning", help="CaloChallenge binning XML to read the file with")
    p.set_defaults(func=cmd_inspect)


def cmd_export(args: argparse.Namespace) -> int:
    from caloforge.data.contract import THRESHOLD_DATASETS_2_3_MEV
    from caloforge.data.export import export_calochallenge

    if args.onnx is not None:
        return _export_onnx(args)
    if (args.input is None) == (args.input_deprecated is None):
        raise SpecError("give one input file: caloforge export IN --out OUT")
    threshold_mev = (
        THRESHOLD_DATASETS_2_3_MEV if args.threshold_kev is None else args.threshold_kev / 1000.0
    )
    n = export_calochallenge(
        args.input or args.input_deprecated,
        args.out,
        threshold_mev=threshold_mev,
        overwrite=args.overwrite,
    )
    print(f"wrote {n} calibrated showers to {args.out}")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from caloforge.deploy.onnx import OPSET, export_onnx
    from caloforge.fastsim.model import SamplerSettings

    if args.input is not None or args.input_deprecated is not None:
        raise SpecError("export either a shower file (IN) or a model (--onnx), not both")
    result = export_onnx(
        args.onnx,
        args.out,
        settings=SamplerSettings(args.sampler, args.sampler_steps),
        overwrite=args.overwrite,
    )
    meta = result.metadata
    print(
        f"wrote {result.path}: the {meta['sampler']} sampler ({meta['sampler_steps']} steps) "
        f"of {args.onnx}, ONNX opset {OPSET}, dynamic batch; inputs energy_gev, theta, phi, "
        f"detector {meta['detectors']}, noise ({meta['noise_size']} per shower); output "
        f"showers in MeV. ONNX Runtime matches PyTorch within {result.max_rel_diff:.1e}."
    )
    return 0


def _add_export(sub: Any) -> None:
    """The ``export`` command's options."""
    p = sub.add_parser(
        "export",
        formatter_class=_HelpFormatter,
        help="write a calibrated copy for the CaloChallenge evaluation, or a model as ONNX",
    )
    p.add_argument("input", nargs="?", metavar="IN", help="raw caloforge shower file")
    p.add_argument(
        "--onnx", metavar="MODEL", help="write this model ('default' or a folder) as ONNX instead"
    )
    p.add_argument("--sampler", help="--onnx: the sampler (default: the model's)")
    p.add_argument("--sampler-steps", type=int, help="--onnx: its steps (default: the model's)")
    p.add_argument(
        "--calochallenge",
        dest="input_deprecated",
        metavar="IN",
        action=_Deprecated,
        new="the input file as the first argument: caloforge export IN --out OUT",
        help=argparse.SUPPRESS,
    )
    p.add_argument("--out", required=True)
    p.add_argument(
        "--threshold-kev",
        type=float,
        default=None,
        help="voxel threshold after calibration, keV (default 0.5/0.033 = 15.15 as datasets 2/3)",
    )
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from caloforge.config import PUBLISHED_CLASSIFIER, ClassifierConfig, EvaluationConfig
    from caloforge.evaluate.report import evaluate, tqdm_progress

    classifier = PUBLISHED_CLASSIFIER if args.classifier == "published" else ClassifierConfig()
    if args.classifier_repeats is not None:
        classifier = replace(classifier, repeats=args.classifier_repeats)
    if args.classifier_epochs is not None:
        classifier = replace(classifier, epochs=args.classifier_epochs)
    config = EvaluationConfig(
        threshold_mev=None if args.threshold_kev is None else args.threshold_kev / 1000.0,
        classifier=classifier,
        low_level=not args.no_low_level,
        seed=args.seed,
        limit=args.limit,
        plots=not args.no_plots,
    )
    result = evaluate(
        args.reference,
        args.generated,
        args.out,
        config,
        binning_xml=args.binning,
        overwrite=args.overwrite,
        progress=None if args.no_progress else tqdm_progress,
    )
    print(result.table())
    for note in result.notes:
        print(f"note: {note}")
    print(f"report: {Path(args.out) / 'index.html'}")
    return 0


def _add_evaluate(sub: Any) -> None:
    """The ``evaluate`` command's options."""
    p = sub.add_parser(
        "evaluate",
        formatter_class=_HelpFormatter,
        help="compare generated showers with a Geant4 reference (CaloChallenge metrics)",
    )
    p.add_argument(
        "--reference", required=True, help="Geant4 shower file (caloforge or CaloChallenge)"
    )
    p.add_argument("--generated", required=True, help="shower file to evaluate")
    p.add_argument(
        "--out", required=True, help="report directory (metrics.json, plots, index.html)"
    )
    p.add_argument("--binning", help="binning XML of CaloChallenge-layout files (default: detect)")
    p.add_argument(
        "--threshold",
        dest="threshold_kev",
        type=float,
        action=_Deprecated,
        new="--threshold-kev",
        help=argparse.SUPPRESS,
    )
    p.add_argument(
        "--threshold-kev",
        type=float,
        help="voxel threshold in keV (default: 0.5 raw, 15.15 calibrated, 1000 dataset 1)",
    )
    p.add_argument(
        "--classifier",
        choices=["default", "published"],
        default="default",
        help="default: small MLP for a CPU; published: 2 x 2048, 50 epochs, float64, 10 repeats",
    )
    p.add_argument("--classifier-repeats", type=int, help="trainings averaged per classifier")
    p.add_argument("--classifier-epochs", type=int, help="epochs per training")
    p.add_argument("--no-low-level", action="store_true", help="skip the voxel-level classifier")
    p.add_argument("--no-plots", action="store_true", help="numbers only: no PNG plots")
    p.add_argument("--limit", type=int, help="use only the first LIMIT showers of each file")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, classifiers, bootstraps")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)


def _train_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides that train's own options stand for."""
    overrides = list(args.set or [])
    if args.family:
        overrides.append(f"family={args.family}")
    if args.preset:
        overrides.append(f"preset={args.preset}")
    if args.batch_size is not None:
        overrides.append(f"train.batch_size={args.batch_size}")
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    from caloforge.fastsim.fit import fit

    result = fit(
        args.out,
        args.data,
        config_path=args.config,
        overrides=_train_overrides(args),
        steps=args.steps,
        resume=args.resume,
        limit=args.limit,
        part=args.part,
        init=args.init,
        progress=not args.no_progress,
    )
    if result.is_main:
        print(f"{result.describe()}; model in {args.out} (caloforge sample --model {args.out})")
    return 0


def _add_train(sub: Any) -> None:
    """The ``train`` command's options."""
    p = sub.add_parser(
        "train",
        formatter_class=_HelpFormatter,
        help="train a diffusion model on shower files (torchrun for several processes)",
    )
    p.add_argument("--data", nargs="+", required=True, help="caloforge shower files")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics, model)")
    p.add_argument(
        "--family", help="calodit (one network) or factorized (energy model + shape model)"
    )
    p.add_argument(
        "--part", help="train only this network of the pipeline: energy or shape (factorized)"
    )
    p.add_argument(
        "--preset", help="backbone preset of the voxel network (calodit-cpu, calodit-layers, ...)"
    )
    p.add_argument("--steps", type=int, help="optimiser steps of the voxel network")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--config", help="YAML run configuration (see configs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. train.lr=2e-4")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this trained model's weights and preprocessing (default or a folder)",
    )
    p.add_argument("--limit", type=int, help="use only the first LIMIT showers of each file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_distill(args: argparse.Namespace) -> int:
    from caloforge.fastsim.distill import distill

    overrides = list(args.set or [])
    if args.batch_size is not None:
        overrides.append(f"train.batch_size={args.batch_size}")
    result = distill(
        args.model,
        args.data,
        args.out,
        name=args.name,
        method=args.method,
        steps=args.steps,
        overrides=overrides,
        resume=args.resume,
        limit=args.limit,
        make_default=args.make_default,
        progress=not args.no_progress,
    )
    print(
        f"distilled the student {result.name!r} ({result.steps} steps) into {result.out} "
        f"(caloforge sample --model {result.out} --sampler {result.name})"
    )
    return 0


def _add_distill(sub: Any) -> None:
    """The ``distill`` command's options."""
    p = sub.add_parser(
        "distill",
        formatter_class=_HelpFormatter,
        help="distil a model's voxel network into a 1-2 step consistency student",
    )
    p.add_argument("--model", default="default", help="the teacher: 'default' or a model folder")
    p.add_argument("--data", nargs="+", required=True, help="shower files of its detectors")
    p.add_argument("--out", required=True, help="model folder that gets the student")
    p.add_argument("--method", help="cd (consistency distillation, default) or ect")
    p.add_argument("--name", help="the student's sampler name (default: the method)")
    p.add_argument("--steps", type=int, help="distillation steps (default 2000)")
    p.add_argument("--batch-size", type=int, help="batch size (default 64)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. train.lr=5e-5")
    p.add_argument("--resume", action="store_true", help="continue this student's run")
    p.add_argument("--limit", type=int, help="use only the first LIMIT showers of each file")
    p.add_argument(
        "--make-default", action="store_true", help="the student becomes the default sampler"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_distill)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from caloforge.deploy.benchmark import benchmark, write

    def numbers(text: str, kind: type, what: str) -> list[Any]:
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise SpecError(f"{what}: expected comma-separated numbers, got {text!r}") from None

    from caloforge.atomic import check_output

    out = Path(args.out)
    if out.is_dir():
        check_output(out / "benchmark.md", overwrite=args.overwrite)
    else:
        check_output(out, directory=True)
    result = benchmark(
        args.model,
        energies=numbers(args.energies, float, "--energies"),
        batches=numbers(args.batches, int, "--batches"),
        threads=numbers(args.threads, int, "--threads"),
        repeats=args.repeats,
        budget_s=args.budget_s,
        geant4=not args.no_geant4,
        onnx=not args.no_onnx,
        progress=None if args.no_progress else lambda what: print(f"timing {what}", flush=True),
    )
    paths = write(result, out)
    print(Path(paths[0]).read_text())
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _add_benchmark(sub: Any) -> None:
    """The ``benchmark`` command's options."""
    p = sub.add_parser(
        "benchmark",
        formatter_class=_HelpFormatter,
        help="time a model's samplers (and ONNX Runtime) against Geant4, in one run",
    )
    p.add_argument("--model", default="default", help="'default' or a model folder")
    p.add_argument("--out", required=True, help="folder for benchmark.md, .json and .png")
    p.add_argument("--energies", default="1,10,100", help="photon energies, GeV")
    p.add_argument("--batches", default="1,64,256", help="batch sizes")
    p.add_argument("--threads", default="1,2", help="thread counts")
    p.add_argument("--repeats", type=int, default=3, help="timings per cell (at most)")
    p.add_argument("--budget-s", type=float, default=10.0, help="seconds per cell (at least 1 timing)")  # fmt: skip
    p.add_argument("--no-geant4", action="store_true", help="the model only")
    p.add_argument("--no-onnx", action="store_true", help="no ONNX Runtime session")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_benchmark)


def cmd_adapt(args: argparse.Namespace) -> int:
    from caloforge.fastsim.adapt import adapt
    from caloforge.geometry.detectors import load_detector

    detector = load_detector(args.detector).name if args.detector else None
    model = adapt(
        args.model,
        args.data,
        args.out,
        detector=detector,
        strategy=args.strategy,
        steps=args.steps,
        lr=args.lr,
        patience=args.patience,
        resume=args.resume,
        limit=args.limit,
        replay=args.replay,
        progress=not args.no_progress,
    )
    found = model.record.extra["adapted_from"]["detector"]
    print(
        f"adapted {args.model} to {found} ({args.strategy}); model in {args.out} "
        f"(caloforge sample --model {args.out} --detector {found})"
    )
    return 0


def _add_adapt(sub: Any) -> None:
    """The ``adapt`` command's options."""
    p = sub.add_parser(
        "adapt",
        formatter_class=_HelpFormatter,
        help="fine-tune a pretrained model to a new detector through its spare one-hot slot",
    )
    p.add_argument("--model", default="default", help="the parent: 'default' or a model folder")
    p.add_argument("--detector", help="the new detector: a built-in name or a YAML file")
    p.add_argument("--data", nargs="+", required=True, help="shower files of the new detector")
    p.add_argument("--out", required=True, help="the adapted model's folder (also its run)")
    p.add_argument("--strategy", default="full", help="full, bias or frozen (which weights train)")
    p.add_argument("--steps", type=int, help="optimiser steps per network (default 1000)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    p.add_argument(
        "--patience", type=int, help="stop after N validations without improvement (default 5)"
    )
    p.add_argument("--resume", action="store_true", help="continue the adaptation in --out")
    p.add_argument("--limit", type=int, help="use only the first LIMIT showers of each file")
    p.add_argument(
        "--replay",
        nargs="+",
        default=[],
        metavar="FILE",
        help="showers of detectors the parent knows, trained beside the new ones so that the "
        "adapted model keeps them (e.g. an earlier adaptation's files)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_adapt)


def _primary(args: argparse.Namespace) -> PrimarySpec:
    return PrimarySpec(
        parse_particle(args.particle),
        parse_spec(args.energy, "energy"),
        parse_spec(args.theta, "theta"),
        parse_spec(args.phi, "phi"),
    )


def cmd_sample(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from caloforge.fastsim.sampling import Conditions, SamplerSettings, sample_to_file

    primary = _primary(args)
    churn = {
        name: value
        for name, value in (
            ("S_churn", args.s_churn),
            ("S_tmin", args.s_tmin),
            ("S_tmax", args.s_tmax),
            ("S_noise", args.s_noise),
        )
        if value is not None
    }
    settings = SamplerSettings(args.sampler, args.sampler_steps, churn, args.batch_size)
    conditions = Conditions.draw(primary, args.n, args.seed)
    with tqdm(total=args.n, unit="shower", disable=args.no_progress) as bar:
        sample_to_file(
            args.model,
            args.out,
            conditions,
            args.detector,
            particle=primary.particle,
            seed=args.seed,
            settings=settings,
            allow_extrapolation=args.allow_extrapolation,
            overwrite=args.overwrite,
            on_batch=bar.update,
        )
    print(f"wrote {args.n} showers to {args.out}")
    return 0


def _add_sample(sub: Any) -> None:
    """The ``sample`` command's options."""
    p = sub.add_parser(
        "sample", formatter_class=_HelpFormatter, help="generate showers with a trained model"
    )
    p.add_argument("--model", default="default", help="'default' (shipped) or a model/run folder")
    p.add_argument("--detector", required=True, help="a detector the model was trained on")
    _add_shower_spec(p)
    p.add_argument("--sampler-steps", type=int, help="sampler steps (default: the model's, 32)")
    p.add_argument(
        "--steps",
        dest="sampler_steps",
        type=int,
        action=_Deprecated,
        new="--sampler-steps (--steps is train's optimiser steps)",
        help=argparse.SUPPRESS,
    )
    p.add_argument(
        "--sampler",
        help="heun-stochastic, heun, euler, or a student of the model (caloforge distill); "
        "default: the model's",
    )
    for name, what in (
        ("churn", "S_churn: stochasticity, 0 = deterministic Heun"),
        ("tmin", "S_tmin: noise is added only for sigma in [S_tmin, S_tmax]"),
        ("tmax", "S_tmax"),
        ("noise", "S_noise: scale of the added noise"),
    ):
        p.add_argument(
            f"--s-{name}", type=float, help=f"heun-stochastic's {what} (default: the model's)"
        )
    p.add_argument("--batch-size", type=int, default=256, help="showers per network call")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument(
        "--allow-extrapolation", action="store_true", help="allow conditions outside training"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sample)


def cmd_g4run(args: argparse.Namespace) -> int:
    from caloforge.fastsim.g4run import GunSpec, g4run
    from caloforge.fastsim.model import SamplerSettings

    gun = GunSpec.parse(args.gun, _primary(args))
    fast = None if args.fast == "none" else args.fast
    settings = SamplerSettings(args.sampler, args.sampler_steps)
    summary = g4run(
        args.detector,
        gun,
        args.events,
        args.out,
        fast=fast,
        tracker_x0=args.tracker,
        seed=args.seed,
        cut_mm=args.cut,
        readout_phi=args.readout_phi,
        readout_z_mm=args.readout_z,
        settings=settings,
        trigger_particles=args.trigger_particles.split(",") if args.trigger_particles else None,
        trigger_energy_gev=_window(args.trigger_energy, "trigger energy"),
        batch_events=args.batch_events,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
    what = (
        f", {summary.handovers} particles handed to {args.fast}" if fast else " (full simulation)"
    )
    print(
        f"wrote {summary.events} events to {args.out}{what}; CPU: Geant4 "
        f"{summary.geant4_seconds:.1f} s, model {summary.model_seconds:.1f} s"
    )
    return 0


def _window(text: str | None, subject: str) -> tuple[float, float] | None:
    """``LO:HI`` as two floats (None stays None)."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise SpecError(f"must be LO:HI, got {text!r}", subject=subject) from None
    return lo, hi


def _add_g4run(sub: Any) -> None:
    """The ``g4run`` command's options."""
    p = sub.add_parser(
        "g4run",
        formatter_class=_HelpFormatter,
        help="a Geant4 run of a detector, full or with a model as its fast simulation",
    )
    p.add_argument("--detector", required=True, help="built-in name or YAML file")
    p.add_argument(
        "--fast",
        default="none",
        help="'none' (full simulation), 'default', a model folder or an .onnx file of its sampler",
    )
    p.add_argument(
        "--gun",
        default="single",
        help="single (--particle), pi0 (-> 2 photons) or cone:N:HALF_ANGLE (N photons)",
    )
    p.add_argument("--particle", default=SIMULATION.particle, help="gamma, e- or e+ (single)")
    p.add_argument("--energy", required=True, help="GeV (per particle; a pi0's kinetic energy)")
    p.add_argument("--theta", default=SIMULATION.theta, help="rad: the gun's polar angle")
    p.add_argument("--phi", default=SIMULATION.phi, help="rad: the gun's azimuth")
    p.add_argument("--events", type=int, required=True, help="number of events")
    p.add_argument("--seed", type=int, default=SIMULATION.seed, help="run seed")
    p.add_argument(
        "--tracker",
        type=float,
        default=0.0,
        help="X0 of silicon in front of the calorimeter, at half its inner radius (e.g. 0.05)",
    )
    p.add_argument("--cut", type=float, default=SIMULATION.cut_mm, help="production cut in mm")
    p.add_argument("--readout-phi", type=int, default=256, help="readout segments in phi")
    p.add_argument("--readout-z", type=float, default=10.0, help="readout cell length in z, mm")
    p.add_argument("--sampler", help="the model's sampler (default: the model's)")
    p.add_argument("--sampler-steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument(
        "--trigger-particles",
        help="particles handed to the model, e.g. gamma,e-,e+ (default: the model's particle)",
    )
    p.add_argument(
        "--trigger-energy", help="LO:HI GeV handed to the model (default: the model's range)"
    )
    p.add_argument(
        "--batch-events",
        type=int,
        default=1,
        help="the model draws the showers of this many consecutive events in one batch (1-25)",
    )
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_g4run)


def cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    from caloforge.config import EvaluationConfig
    from caloforge.evaluate.report import tqdm_progress
    from caloforge.fastsim.demo import run_demo
    from caloforge.fastsim.model import SamplerSettings

    config = EvaluationConfig()
    config = replace(config, classifier=replace(config.classifier, repeats=args.classifier_repeats))
    with tqdm(unit="shower", desc="sampling", disable=args.no_progress) as bar:
        result = run_demo(
            args.out,
            model=args.model,
            config=config,
            overwrite=args.overwrite,
            settings=SamplerSettings(args.sampler, args.sampler_steps),
            on_batch=bar.update,
            progress=None if args.no_progress else tqdm_progress,
        )
    for note in result.notes:
        if note.startswith(("sampled with", "model card", "at release")):
            print(note)
    print(result.table())
    print(f"report: {Path(args.out) / 'report' / 'index.html'}")
    return 0


def _add_demo(sub: Any) -> None:
    """The ``demo`` command's options."""
    p = sub.add_parser(
        "demo",
        formatter_class=_HelpFormatter,
        help="sample the shipped model and compare it with shipped Geant4 showers",
    )
    p.add_argument("--out", required=True, help="folder for the generated file and the report")
    p.add_argument("--model", default="default", help="'default' (shipped) or a model/run folder")
    p.add_argument("--sampler", help="a sampler or student of the model (default: the model's)")
    p.add_argument("--sampler-steps", type=int, help="its steps (default: the model's)")
    p.add_argument("--classifier-repeats", type=int, default=3, help="trainings per classifier")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="caloforge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"caloforge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging details")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_detectors,
        _add_calibrate,
        _add_simulate,
        _add_inspect,
        _add_export,
        _add_evaluate,
        _add_train,
        _add_distill,
        _add_adapt,
        _add_sample,
        _add_g4run,
        _add_benchmark,
        _add_demo,
    ):
        add(sub)
    for command in sub.choices.values():  # each command's flags, to name them in errors
        command.set_defaults(
            flags={
                action.dest: max(action.option_strings, key=len)
                for action in command._actions
                if action.option_strings and action.help != argparse.SUPPRESS
            }
        )
    return parser


# library settings named differently on the command line (the rest map by name: chunk_size ->
# --chunk-size, classifier.repeats -> --classifier-repeats)
_OPTION_OF = {"threshold_mev": "threshold_kev"}


def _message(exc: CaloforgeError, flags: dict[str, str]) -> str:
    """A library error in the words of the command line: its settings named by their flags.

    Args:
        exc: the error.
        flags: the command's options, dest -> flag (``chunk_size`` -> ``--chunk-size``).
    """

    def flag(name: str) -> str:
        dest = name.replace(".", "_")
        return flags.get(_OPTION_OF.get(dest, dest), name)

    text = exc.detail if exc.subject is None else f"{flag(exc.subject)} {exc.detail}"
    if exc.override is not None:
        text += f"; pass {flag(exc.override)} to {exc.action}"
    return text


def _quiet_unraisable(unraisable: Any) -> None:
    """HDF5 objects that cannot be freed on a full disk complain during garbage collection;
    the error the user gets already says why. Everything else is reported as usual."""
    if isinstance(unraisable.exc_value, OSError) and "h5py" in repr(unraisable.object):
        log.debug("ignored while freeing an HDF5 object: %s", unraisable.exc_value)
        return
    sys.__unraisablehook__(unraisable)


def _exit_code(code: int) -> int:
    """``code``, or the process ends here if HDF5 holds a file it could not close: its retry
    at interpreter exit would crash (see :func:`caloforge.data.io.unclosed_hdf5`)."""
    io = sys.modules.get("caloforge.data.io")
    if io is not None and io.unclosed_hdf5():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (1 for any user error, with one clear message)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    sys.unraisablehook = _quiet_unraisable
    try:
        return _exit_code(int(args.func(args)))
    except CaloforgeError as exc:
        print(f"caloforge: error: {_message(exc, args.flags)}", file=sys.stderr)
        return _exit_code(1)
    except KeyboardInterrupt:
        print("caloforge: interrupted; run the same command again to resume", file=sys.stderr)
        return _exit_code(130)


if __name__ == "__main__":
    sys.exit(main())
