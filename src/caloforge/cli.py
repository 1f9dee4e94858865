"""The ``caloforge`` command: thin subcommands that parse, load and call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from caloforge import __version__
from caloforge.config import CALIBRATION, SIMULATION
from caloforge.errors import CaloforgeError, SpecError

log = logging.getLogger("caloforge")


def cmd_detectors(args: argparse.Namespace) -> int:
    from caloforge.geometry.detectors import builtin_detector_names, load_detector
    from caloforge.simulate.materials import detector_mesh

    if args.yaml:
        print(load_detector(args.yaml).to_yaml(), end="")
        return 0
    names = args.detector or builtin_detector_names()
    header = (
        "name",
        "layers (* active)",
        "depth",
        "X0",
        "R_M",
        "depth/X0",
        "sampling fraction",
        "mesh dz x dr",
    )
    rows = [header]
    for name in names:
        spec = load_detector(name)
        mesh, p = detector_mesh(spec)
        slices = " + ".join(
            f"{s.thickness_mm:g} mm {s.material.removeprefix('G4_')}{'*' if s.active else ''}"
            for s in spec.slices
        )
        sf = spec.sampling_fraction
        rows.append(
            (
                spec.name,
                f"{spec.n_layers} x ({slices})",
                f"{spec.depth_mm:.1f} mm",
                f"{p.x0_mm:.2f} mm",
                f"{p.moliere_radius_mm:.2f} mm",
                f"{spec.depth_mm / p.x0_mm:.1f}",
                f"{sf.value:.5f} +- {sf.error:.5f}" if sf else "not measured",
                f"{mesh.dz_mm:.2f} x {mesh.dr_mm:.2f} mm",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for k, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print("\nX0 and R_M from Geant4 NIST materials (PDG mixture rules); sampling fraction =")
    print("active/(active+passive) energy, measured with `caloforge calibrate` (see the YAML).")
    return 0


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
    from caloforge.simulate.calibrate import combine, measure_sampling_fraction

    energies = _parse_energies(args.energies)
    if args.n < 2 or not args.cut > 0:
        raise SpecError(f"calibrate needs -n >= 2 and --cut > 0, got -n {args.n} --cut {args.cut}")
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


def cmd_simulate(args: argparse.Namespace) -> int:
    from caloforge.geometry.detectors import load_detector
    from caloforge.geometry.mesh import parse_cells
    from caloforge.simulate.materials import detector_mesh
    from caloforge.simulate.primaries import PrimarySpec, parse_particle, parse_spec
    from caloforge.simulate.runner import RunRequest, check_output, run

    out = Path(args.out)
    primary = PrimarySpec(
        parse_particle(args.particle),
        parse_spec(args.energy, "energy"),
        parse_spec(args.theta, "theta"),
        parse_spec(args.phi, "phi"),
    )
    primary.check_ranges(allow_out_of_range=args.allow_out_of_range)
    cells = parse_cells(args.cells)
    RunRequest.check_workers(args.workers)
    check_output(out, overwrite=args.overwrite)
    spec = load_detector(args.detector)
    mesh, props = detector_mesh(spec, cells)
    request = RunRequest(spec, mesh, primary, args.n, args.seed, args.cut, args.chunk_size)
    run(
        request,
        out,
        x0_mm=props.x0_mm,
        moliere_radius_mm=props.moliere_radius_mm,
        workers=args.workers,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
    print(f"wrote {args.n} showers to {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from caloforge.data.inspect import format_report, inspect_file

    report = inspect_file(args.file, dataset=args.calochallenge, binning_xml=args.binning)
    print(format_report(report))
    return 0 if report.valid else 1


def cmd_export(args: argparse.Namespace) -> int:
    from caloforge.data.export import export_calochallenge
    from caloforge.data.inspect import THRESHOLD_DATASETS_2_3_MEV

    out = Path(args.out)
    threshold_mev = (
        THRESHOLD_DATASETS_2_3_MEV if args.threshold_kev is None else args.threshold_kev / 1000.0
    )
    n = export_calochallenge(args.input, out, threshold_mev=threshold_mev, overwrite=args.overwrite)
    print(f"wrote {n} calibrated showers to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from caloforge.config import PUBLISHED_CLASSIFIER, ClassifierConfig, EvaluationConfig
    from caloforge.evaluate.report import evaluate, tqdm_progress

    classifier = PUBLISHED_CLASSIFIER if args.classifier == "published" else ClassifierConfig()
    if args.classifier_repeats is not None:
        classifier = replace(classifier, repeats=args.classifier_repeats)
    if args.classifier_epochs is not None:
        classifier = replace(classifier, epochs=args.classifier_epochs)
    if classifier.repeats < 1 or classifier.epochs < 1:
        raise SpecError("--classifier-repeats and --classifier-epochs must be >= 1")
    if args.threshold is not None and not 0 <= args.threshold < float("inf"):
        raise SpecError(f"--threshold must be >= 0 keV, got {args.threshold}")
    if args.limit is not None and args.limit < 1:
        raise SpecError(f"--limit must be >= 1, got {args.limit}")
    config = EvaluationConfig(
        threshold_mev=None if args.threshold is None else args.threshold / 1000.0,
        classifier=classifier,
        low_level=not args.no_low_level,
        seed=args.seed,
        limit=args.limit,
        plots=not args.no_plots,
    )
    metrics = evaluate(
        args.reference,
        args.generated,
        args.out,
        config,
        binning_xml=args.binning,
        overwrite=args.overwrite,
        progress=None if args.no_progress else tqdm_progress,
    )
    _print_headline(metrics)
    for note in metrics["notes"]:
        print(f"note: {note}")
    print(f"report: {Path(args.out) / 'index.html'}")
    return 0


def _flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"section.key": value}``."""
    if not isinstance(settings, dict):
        return {prefix: settings}
    out: dict[str, Any] = {}
    for key, value in settings.items():
        out.update(
            _flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}")
        )
    return out


def _train_overrides(args: argparse.Namespace, steps: int | None) -> list[str]:
    """The ``--set`` overrides that train's own options stand for."""
    overrides = list(args.set or [])
    if args.preset:
        overrides.append(f"preset={args.preset}")
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    if args.batch_size is not None:
        overrides.append(f"train.batch_size={args.batch_size}")
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    import json

    import torch
    import yaml

    from caloforge.config import RunConfig, config_to_dict, load_config
    from caloforge.data.datasets import load_training_set
    from caloforge.diffusion.loss import EDMLoss
    from caloforge.fastsim import FastSimModel
    from caloforge.train import distributed
    from caloforge.train.checkpoint import latest_checkpoint, write_json_atomic, write_text_atomic
    from caloforge.train.loop import train

    out = Path(args.out)
    resolved = out / "config.yaml"
    dist = distributed.setup()
    try:
        if latest_checkpoint(out / "checkpoints") is not None or resolved.exists():
            if not args.resume:
                raise SpecError(
                    f"{out} already holds a run; pass --resume to continue it or choose another --out"
                )
            config = load_config(RunConfig, resolved, [])  # a resumed run keeps its settings
            try:
                recorded = json.loads((out / "run.json").read_text())
            except (OSError, ValueError):
                recorded = None  # killed before the first write: nothing to compare with
            if recorded is not None and [str(Path(p)) for p in args.data] != recorded["data"]:
                raise SpecError(f"--data differs from the files the run in {out} was started with")
            if recorded is not None and args.limit != recorded.get("limit"):
                raise SpecError(f"--limit differs from the run in {out} ({recorded.get('limit')})")
            overrides = _train_overrides(args, None)
            if args.config or overrides:
                # the settings given explicitly (in --config or as options) must be the run's
                requested = _flatten(config_to_dict(load_config(RunConfig, args.config, overrides)))
                given = {o.split("=", 1)[0].strip() for o in overrides}
                if args.config:  # readable: load_config has read it
                    given |= set(_flatten(yaml.safe_load(Path(args.config).read_text()) or {}))
                saved = _flatten(config_to_dict(config))
                differ = sorted(
                    k for k in given - {"train.steps"} if requested.get(k) != saved.get(k)
                )
                if differ:
                    raise SpecError(
                        f"{', '.join(differ)} differ from the run in {out} ({resolved}); "
                        "a resumed run keeps its settings, only --steps may change"
                    )
            if args.steps is not None and args.steps != config.train.steps:
                config = load_config(RunConfig, resolved, [f"train.steps={args.steps}"])
        else:
            config = load_config(RunConfig, args.config, _train_overrides(args, args.steps))
        dist.barrier()  # every process has looked at --out before the main one writes there
        data = load_training_set(
            list(args.data),
            val_fraction=config.train.val_fraction,
            seed=config.train.seed,
            limit=args.limit,
        )
        torch.manual_seed(config.train.seed)  # the same initial weights on every process
        model = FastSimModel.build(
            config.preset,
            dict(config.model),
            data.preprocessing,
            data.sigma_data,
            {
                "detectors": data.detectors,
                "particle": data.particle,
                "calibrated": data.calibrated,
                "diffusion": config_to_dict(config.diffusion),
                "training": {"files": data.files, "steps": config.train.steps},
            },
        )
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(resolved, yaml.safe_dump(config_to_dict(config), sort_keys=False))
            write_json_atomic(
                out / "run.json",
                {
                    "data": [str(Path(p)) for p in args.data],
                    "limit": args.limit,
                    "files": data.files,
                },
            )
        dist.barrier()
        loss = EDMLoss(
            sigma_data=data.sigma_data, P_mean=config.diffusion.p_mean, P_std=config.diffusion.p_std
        )

        def export(ema: torch.nn.Module, step: int) -> None:
            exported = FastSimModel(ema, model.preprocessing, {**model.meta})  # type: ignore[arg-type]
            exported.meta["training"] = {**model.meta["training"], "completed_steps": step}
            exported.save(out)

        train(
            model.net,
            loss,
            data.x,
            data.cond,
            data.val_x,
            data.val_cond,
            config.train,
            out,
            p_mean=config.diffusion.p_mean,
            p_std=config.diffusion.p_std,
            dist=dist,
            on_checkpoint=export,
            progress=not args.no_progress,
        )
        # leave together: a process tearing its connections down while a peer still uses
        # them makes gloo abort that peer
        dist.barrier()
    finally:
        dist.close()
    if dist.is_main:
        print(
            f"trained {config.train.steps} steps; model in {out} (caloforge sample --model {out})"
        )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from caloforge import __version__
    from caloforge.data.io import ShowerWriter
    from caloforge.fastsim import load_model, shower_seeds
    from caloforge.simulate.primaries import (
        PrimarySpec,
        draw_conditions,
        parse_particle,
        parse_spec,
    )
    from caloforge.simulate.runner import check_output

    out = Path(args.out)
    check_output(out, overwrite=args.overwrite)
    if args.n < 1:
        raise SpecError(f"-n must be >= 1, got {args.n}")
    primary = PrimarySpec(
        parse_particle(args.particle),
        parse_spec(args.energy, "energy"),
        parse_spec(args.theta, "theta"),
        parse_spec(args.phi, "phi"),
    )
    model = load_model(args.model)
    if primary.particle != model.meta.get("particle"):
        raise SpecError(
            f"the model was trained on {model.meta.get('particle')} showers, not {primary.particle}"
        )
    drawn = draw_conditions(primary, args.seed, range(args.n))
    energies = np.array([c.energy_mev for c in drawn])
    theta = np.array([c.theta for c in drawn])
    phi = np.array([c.phi for c in drawn])
    detector = model.detectors.get(args.detector)
    if detector is None:
        model.preprocessing.conditions.slot(args.detector)  # raises the clear error
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
    from tqdm import tqdm

    with tqdm(total=args.n, unit="shower", disable=args.no_progress) as bar:
        showers = model.generate(
            energies,
            theta,
            phi,
            args.detector,
            shower_seeds(args.seed, range(args.n)),
            steps=args.steps,
            sampler=args.sampler,
            churn=churn,
            batch_size=args.batch_size,
            allow_extrapolation=args.allow_extrapolation,
            on_batch=bar.update,
        )
    sampler = model.diffusion.sampler if args.sampler is None else args.sampler
    attrs = {
        **(detector or {}),
        "particle": primary.particle,
        "energy_spec_gev": str(primary.energy),
        "theta_spec_rad": str(primary.theta),
        "phi_spec_rad": str(primary.phi),
        "caloforge_version": __version__,
        "seed": args.seed,
        "n_showers": args.n,
        "energy_unit": "MeV",
        "angle_unit": "rad",
        "calibrated": bool(model.meta.get("calibrated", False)),
        "content": "generated by a caloforge model: energy in the active material (raw), as the "
        "Geant4 files it was trained on",
        "generator": {
            "model": str(args.model),
            "preset": model.meta.get("preset"),
            "sampler": sampler,
            "steps": model.diffusion.steps if args.steps is None else args.steps,
            **({**model.diffusion.churn, **churn} if sampler == "heun-stochastic" else {}),
        },
    }
    with ShowerWriter(out, args.n, showers.shape[1], attrs) as writer:
        writer.write(energies, showers, theta, phi)
    print(f"wrote {args.n} showers to {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    from caloforge.config import EvaluationConfig
    from caloforge.demo import run_demo
    from caloforge.evaluate.report import tqdm_progress

    config = EvaluationConfig()
    config = replace(config, classifier=replace(config.classifier, repeats=args.classifier_repeats))
    with tqdm(unit="shower", desc="sampling", disable=args.no_progress) as bar:
        metrics = run_demo(
            args.out,
            model=args.model,
            config=config,
            overwrite=args.overwrite,
            on_batch=bar.update,
            progress=None if args.no_progress else tqdm_progress,
        )
    for note in metrics["notes"]:
        if note.startswith("model card"):
            print(note)
    _print_headline(metrics)
    print(f"report: {Path(args.out) / 'report' / 'index.html'}")
    return 0


def _print_headline(metrics: dict[str, Any]) -> None:
    """The headline numbers of an evaluation beside its Geant4 baseline."""
    from caloforge.evaluate.metrics import format_value

    baseline = metrics.get("baseline", {})
    print(f"{'':<24}{'generated vs Geant4':<24}Geant4 vs Geant4")
    for key, scale in (
        ("auc_low", 1.0),
        ("auc_high", 1.0),
        ("jsd_low", 1.0),
        ("jsd_high", 1.0),
        ("fpd", 1e3),
        ("kpd", 1e3),
    ):
        if key in metrics or key in ("fpd", "kpd"):
            label = key + (" x1e3" if scale != 1 else "")
            print(
                f"  {label:<22}{format_value(metrics.get(key), scale):<24}"
                f"{format_value(baseline.get(key), scale)}"
            )
    sep, sep_base = metrics["separation_power"], baseline.get("separation_power", {})
    base = f"{sep_base['e_ratio']:.4g}" if sep_base else "-"
    print(f"  {'sep. power E_ratio':<22}{sep['e_ratio']:<24.4g}{base}")
    summary = metrics["separation_power_summary"]
    base_summary = baseline.get("separation_power_summary")
    base = f"{base_summary['mean']:.4g}" if base_summary else "-"
    print(f"  {'sep. power, mean':<22}{summary['mean']:<24.4g}{base}")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults in --help, except for required options and flags."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="caloforge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"caloforge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging details")
    sub = parser.add_subparsers(dest="command", required=True)
    formatter = _HelpFormatter

    p = sub.add_parser(
        "detectors",
        formatter_class=formatter,
        help="list the built-in detectors and their properties",
    )
    p.add_argument("--detector", action="append", help="only this detector (name or YAML file)")
    p.add_argument(
        "--yaml", metavar="NAME", help="print a detector's YAML (a template for your own)"
    )
    p.set_defaults(func=cmd_detectors)

    energies = ",".join(f"{e:g}" for e in CALIBRATION.energies_gev)
    p = sub.add_parser(
        "calibrate",
        formatter_class=formatter,
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

    p = sub.add_parser(
        "simulate", formatter_class=formatter, help="simulate Geant4 showers into an HDF5 file"
    )
    p.add_argument(
        "--detector", required=True, help="built-in name (see `caloforge detectors`) or YAML file"
    )
    _add_shower_spec(p)
    p.add_argument(
        "--workers",
        type=int,
        default=SIMULATION.workers,
        help="parallel Geant4 processes",
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

    p = sub.add_parser(
        "inspect", formatter_class=formatter, help="summarise and validate a shower file"
    )
    p.add_argument("file")
    p.add_argument(
        "--calochallenge",
        choices=["1-photons", "1-pions", "2", "3"],
        help="read as a CaloChallenge dataset (default: detect)",
    )
    p.add_argument("--binning", help="CaloChallenge binning XML to read the file with")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "export",
        formatter_class=formatter,
        help="write a calibrated copy for the CaloChallenge evaluation",
    )
    p.add_argument(
        "--calochallenge", dest="input", required=True, metavar="IN", help="caloforge shower file"
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

    p = sub.add_parser(
        "evaluate",
        formatter_class=formatter,
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

    p = sub.add_parser(
        "train",
        formatter_class=formatter,
        help="train a diffusion model on shower files (torchrun for several processes)",
    )
    p.add_argument("--data", nargs="+", required=True, help="caloforge shower files")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics, model)")
    p.add_argument("--preset", help="backbone preset (calodit-cpu, calodit-paper)")
    p.add_argument("--steps", type=int, help="optimiser steps")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--config", help="YAML run configuration (see configs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. train.lr=2e-4")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--limit", type=int, help="use only the first LIMIT showers of each file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "sample", formatter_class=formatter, help="generate showers with a trained model"
    )
    p.add_argument("--model", default="default", help="'default' (shipped) or a model/run folder")
    p.add_argument("--detector", required=True, help="a detector the model was trained on")
    _add_shower_spec(p)
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's, 32)")
    p.add_argument("--sampler", help="heun-stochastic, heun or euler (default: the model's)")
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

    p = sub.add_parser(
        "demo",
        formatter_class=formatter,
        help="sample the shipped model and compare it with shipped Geant4 showers",
    )
    p.add_argument("--out", required=True, help="folder for the generated file and the report")
    p.add_argument("--model", default="default", help="'default' (shipped) or a model/run folder")
    p.add_argument("--classifier-repeats", type=int, default=3, help="trainings per classifier")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (1 for any user error, with one clear message)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.func(args))
    except CaloforgeError as exc:
        print(f"caloforge: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("caloforge: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
