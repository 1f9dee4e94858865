"""``caloforge evaluate``: every metric of a generated sample against a Geant4 reference.

The run computes, on the whole files and then per condition bin, the CaloChallenge metrics of
:mod:`caloforge.evaluate.metrics` and :mod:`caloforge.evaluate.classifier`, and the same
metrics between two random parts of the reference (the Geant4-vs-Geant4 baseline) whenever
the reference is large enough to split. :func:`evaluate` reads two files and writes
``metrics.json``, PNG plots and ``index.html`` into a temporary directory that replaces the
output directory only at the end; :func:`compare` takes showers held in memory. Both return a
:class:`~caloforge.evaluate.results.Comparison`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.atomic import atomic_directory, check_output, output_lock
from caloforge.config import EvaluationConfig
from caloforge.data.showers import ShowerData
from caloforge.evaluate.classifier import ClassifierResult, classifier_test
from caloforge.evaluate.features import (
    LOG_FEATURES,
    HighLevelFeatures,
    Side,
    apply_threshold,
    compute_features,
)
from caloforge.evaluate.figures import draw_figures
from caloforge.evaluate.html import write_index
from caloforge.evaluate.inputs import (
    Conditions,
    Sample,
    check_compatible,
    condition_bins,
    default_threshold,
    load_sample,
    sample_from_data,
)
from caloforge.evaluate.metrics import (
    MIN_DISTANCE_SAMPLES,
    DistanceSettings,
    FitError,
    fpd,
    histogram,
    histogram_edges,
    kpd,
    profile_separation_power,
    separation_power_error,
)
from caloforge.evaluate.results import Comparison

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Callable[[], None]]
"""(description, total) -> callback to call once per unit of work (a progress bar)."""

MIN_CLASSIFIER_SAMPLES = 10  # per file; fewer leave the 60/20/20 split empty  # families histogrammed on log-spaced bins from the threshold


def tqdm_progress(description: str, total: int) -> Callable[[], None]:
    """A :data:`ProgressFactory` drawing tqdm bars (on stderr)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit="epoch", leave=False, dynamic_ncols=True)

    def update() -> None:
        bar.update()
        if bar.n >= total:
            bar.close()

    return update


def _side(sample: Sample, threshold: float) -> Side:
    data = sample.data
    features = compute_features(data.showers, data.energies, data.binning, threshold)
    return Side(features, apply_threshold(data.showers, threshold).astype(np.float32))


def _edges(reference: HighLevelFeatures, threshold: float) -> dict[str, np.ndarray]:
    """Histogram edges of every named feature, from the reference."""
    out = {}
    for name, values in reference.named().items():
        family = name.rsplit("_", 1)[0]
        if family in LOG_FEATURES:
            out[name] = histogram_edges(values, bins=40, log=True, low=threshold)
        else:
            out[name] = histogram_edges(values, bins=100)
    return out


def separation_powers(
    ref: Side,
    gen: Side,
    edges: Mapping[str, np.ndarray],
    voxel_edges: np.ndarray,
    *,
    n_boot: int,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Separation power (value, bootstrap error) of every feature, spectrum and profile."""
    out = {}
    ref_named, gen_named = ref.features.named(), gen.features.named()
    for k, (name, values) in enumerate(ref_named.items()):
        counts_ref = histogram(values, edges[name])
        counts_gen = histogram(gen_named[name], edges[name])
        out[name] = separation_power_error(counts_ref, counts_gen, n_boot=n_boot, seed=seed + k)
    ref_voxels = histogram(ref.voxels[ref.voxels > 0], voxel_edges)
    gen_voxels = histogram(gen.voxels[gen.voxels > 0], voxel_edges)
    out["voxel_spectrum"] = separation_power_error(ref_voxels, gen_voxels, n_boot=n_boot, seed=seed)
    out["profile_z"] = profile_separation_power(
        ref.features.e_layer, gen.features.e_layer, n_boot=n_boot, seed=seed
    )
    out["profile_r"] = profile_separation_power(
        ref.features.e_r, gen.features.e_r, n_boot=n_boot, seed=seed
    )
    return out


def _low_inputs(side: Side, scale: float) -> np.ndarray:
    """CaloChallenge low-level inputs ``[log10 E_inc, voxels / E_inc]`` (voxels x ``scale``)."""
    e_inc = side.features.e_inc
    return np.concatenate(
        [np.log10(e_inc)[:, None], side.voxels / e_inc[:, None] * scale], axis=1, dtype=np.float32
    )


def _value(pair: tuple[float, float]) -> dict[str, float]:
    return {"value": pair[0], "error": pair[1]}


def _summary(powers: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    values = {name: v for name, (v, _) in powers.items()}
    worst = max(values, key=lambda name: values[name])
    return {
        "mean": float(np.mean(list(values.values()))),
        "max": values[worst],
        "max_feature": worst,
    }


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        log.info("evaluate: %s", stage)
        start = time.perf_counter()
        yield
        self.seconds[stage] = round(time.perf_counter() - start, 2)


def _classifier(
    ref: np.ndarray,
    gen: np.ndarray,
    config: EvaluationConfig,
    description: str,
    progress: ProgressFactory | None,
    seed: int,
) -> ClassifierResult:
    factory = (lambda total: progress(description, total)) if progress else None
    return classifier_test(ref, gen, config.classifier, seed=seed, progress=factory)


def _comparison(
    ref: Side,
    gen: Side,
    edges: Mapping[str, np.ndarray],
    voxel_edges: np.ndarray,
    config: EvaluationConfig,
    *,
    label: str,
    whole_file: bool,
    low_scale: float,
    progress: ProgressFactory | None,
) -> dict[str, Any]:
    """Every metric between two samples; the whole-file run adds low level, FPD and KPD."""
    result: dict[str, Any] = {"n_reference": len(ref), "n_generated": len(gen)}
    powers = separation_powers(ref, gen, edges, voxel_edges, n_boot=config.n_boot, seed=config.seed)
    result["separation_power"] = {name: v for name, (v, _) in powers.items()}
    result["separation_power_error"] = {name: e for name, (_, e) in powers.items()}
    result["separation_power_summary"] = _summary(powers)
    n_min = min(len(ref), len(gen))
    if n_min < MIN_CLASSIFIER_SAMPLES:
        result["skipped"] = (
            f"classifiers need >= {MIN_CLASSIFIER_SAMPLES} showers per file, FPD and KPD "
            f">= {MIN_DISTANCE_SAMPLES}"
        )
        return result
    high = _classifier(
        ref.features.classifier_inputs(),
        gen.features.classifier_inputs(),
        config,
        f"{label}: high-level classifier",
        progress,
        config.seed,
    )
    result["auc_high"], result["jsd_high"] = high.as_dict()["auc"], high.as_dict()["jsd"]
    result["classifier_high"] = high.as_dict()
    if not whole_file:
        return result
    if config.low_level:
        low = _classifier(
            _low_inputs(ref, low_scale),
            _low_inputs(gen, low_scale),
            config,
            f"{label}: low-level classifier",
            progress,
            config.seed + 100,
        )
        result["auc_low"], result["jsd_low"] = low.as_dict()["auc"], low.as_dict()["jsd"]
        result["classifier_low"] = low.as_dict()
    if n_min < MIN_DISTANCE_SAMPLES:
        result["skipped"] = f"FPD and KPD need >= {MIN_DISTANCE_SAMPLES} showers per file"
        return result
    settings = DistanceSettings.fitting(len(ref), len(gen))
    real, fake = ref.features.distance_inputs(), gen.features.distance_inputs()
    d = real.shape[1]
    failed = []
    # a batch no larger than the number of features has a singular covariance (FPD) and
    # normalisations set by a handful of showers (KPD): its numbers are noise, not results
    for name, batch, measure in (
        ("fpd", settings.fpd_min_samples, lambda: fpd(
            real, fake, min_samples=settings.fpd_min_samples,
            max_samples=settings.fpd_max_samples, num_batches=settings.fpd_num_batches,
            num_points=settings.fpd_num_points, seed=config.seed + 42,
        )),
        ("kpd", settings.kpd_batch_size, lambda: kpd(
            real, fake, num_batches=settings.kpd_num_batches,
            batch_size=settings.kpd_batch_size, seed=config.seed + 42,
        )),
    ):  # fmt: skip
        if batch <= d:
            needed = 2 * d + 2 if name == "fpd" else d + 1
            failed.append(
                f"{name.upper()} not computed: its batches ({batch} showers) must exceed the "
                f"{d} features; it needs at least {needed} showers per file"
            )
            continue
        try:
            result[name] = _value(measure())
        except FitError as exc:
            failed.append(f"{name.upper()} failed: {exc}")
    if failed:
        result["not_computed"] = failed
    result["distance_settings"] = settings.describe()
    return result


def _anomalies(
    ref_train: Side, ref_test: Side, gen: Side, config: EvaluationConfig
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Isolation-Forest normality scores (higher = more normal) trained on the reference."""
    from sklearn.ensemble import IsolationForest

    train = ref_train.features.classifier_inputs()
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0
    forest = IsolationForest(n_estimators=200, random_state=config.seed).fit((train - mean) / std)
    ref_scores = forest.score_samples((ref_test.features.classifier_inputs() - mean) / std)
    gen_scores = forest.score_samples((gen.features.classifier_inputs() - mean) / std)
    cut = float(np.quantile(ref_scores, 0.01))
    summary = {
        "reference_1pct_quantile": cut,
        "generated_fraction_below": float((gen_scores < cut).mean()),
        "expected_fraction_below": 0.01,
        "reference_median": float(np.median(ref_scores)),
        "generated_median": float(np.median(gen_scores)),
    }
    return summary, ref_scores, gen_scores


def _bins_report(
    reference: Side,
    generated: Side,
    halves: tuple[np.ndarray, np.ndarray] | None,
    conditions: Conditions,
    edges: Mapping[str, np.ndarray],
    voxel_edges: np.ndarray,
    config: EvaluationConfig,
    progress: ProgressFactory | None,
) -> list[dict[str, Any]]:
    out = []
    for cbin in conditions.bins:
        entry: dict[str, Any] = {"key": cbin.key, "label": cbin.label}
        n_ref, n_gen = int(cbin.reference.sum()), int(cbin.generated.sum())
        if min(n_ref, n_gen) < config.min_bin:
            entry.update(
                n_reference=n_ref, n_generated=n_gen, skipped=f"fewer than {config.min_bin} showers"
            )
            out.append(entry)
            continue
        ref_bin, gen_bin = reference.select(cbin.reference), generated.select(cbin.generated)
        entry.update(
            _comparison(
                ref_bin,
                gen_bin,
                edges,
                voxel_edges,
                config,
                label=cbin.label,
                whole_file=False,
                low_scale=1.0,
                progress=progress,
            )
        )
        if halves is not None:
            half_a = reference.select(halves[0] & cbin.reference)
            half_b = reference.select(halves[1] & cbin.reference)
            if min(len(half_a), len(half_b)) >= config.min_bin:
                base = _comparison(
                    half_a,
                    half_b,
                    edges,
                    voxel_edges,
                    config,
                    label=f"{cbin.label} baseline",
                    whole_file=False,
                    low_scale=1.0,
                    progress=progress,
                )
                entry["baseline"] = {
                    key: base[key]
                    for key in (
                        "n_reference",
                        "n_generated",
                        "auc_high",
                        "jsd_high",
                        "separation_power",
                        "separation_power_summary",
                    )
                }
        out.append(entry)
    return out


def evaluate(
    reference_path: str | Path,
    generated_path: str | Path,
    out_dir: str | Path,
    config: EvaluationConfig | None = None,
    *,
    binning_xml: str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressFactory | None = tqdm_progress,
    notes: Sequence[str] = (),
) -> Comparison:
    """Compare a generated shower file with a Geant4 reference and write the report.

    Args:
        reference_path: the Geant4 file (caloforge or CaloChallenge layout).
        generated_path: the file to evaluate, same cell count and energy scale.
        out_dir: the report directory (``metrics.json``, PNGs, ``index.html``).
        config: what to compute; default :class:`~caloforge.config.EvaluationConfig`.
        binning_xml: binning of CaloChallenge-layout files (default: from the voxel count).
        overwrite: replace an existing ``out_dir``.
        progress: progress-bar factory for the classifiers, None for none.
        notes: lines shown first in the report (e.g. the model card's verdict).

    Returns:
        The comparison (its ``metrics`` are the content of ``metrics.json``).

    Raises:
        DataError: for files that cannot be read or compared.
        OutputError: if ``out_dir`` exists (without ``overwrite``) or cannot be written.
    """
    config = config or EvaluationConfig()
    check_output(out_dir, overwrite=overwrite, directory=True)
    timer = _Timer()
    with timer("reading"):
        reference = load_sample(reference_path, binning_xml=binning_xml, limit=config.limit)
        generated = load_sample(generated_path, binning_xml=binning_xml, limit=config.limit)
    return _evaluate(reference, generated, config, timer, progress, notes, out_dir, overwrite)


def compare(
    reference: ShowerData,
    generated: ShowerData,
    config: EvaluationConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressFactory | None = None,
    notes: Sequence[str] = (),
) -> Comparison:
    """Compare generated showers with Geant4 showers held in memory (no files read).

    The same metrics as :func:`evaluate`, with the same checks. Without ``out_dir`` nothing is
    written (and no plots are drawn); with it, the report is written there as by
    :func:`evaluate`.

    Args:
        reference: the Geant4 showers, with their attributes (e.g. ``read_showers``' or a
            sampled file's: the energy scale and detector are read from them).
        generated: the showers to evaluate, same binning and energy scale.
        config: what to compute; default :class:`~caloforge.config.EvaluationConfig`
            (``limit`` keeps the first showers of each).
        out_dir: a report directory, or None for none.
        overwrite: replace an existing ``out_dir``.
        progress: progress-bar factory for the classifiers, None for none.
        notes: lines shown first in the report.

    Raises:
        DataError: for showers that cannot be compared (NaN, different binnings or scales).
        OutputError: if ``out_dir`` exists (without ``overwrite``) or cannot be written.
    """
    config = config or EvaluationConfig()
    if out_dir is not None:
        check_output(out_dir, overwrite=overwrite, directory=True)
    elif config.plots:
        config = replace(config, plots=False)
    timer = _Timer()
    stop = config.limit
    with timer("reading"):
        ref_sample = sample_from_data(_first(reference, stop), Path("<reference>"))
        gen_sample = sample_from_data(_first(generated, stop), Path("<generated>"))
    return _evaluate(ref_sample, gen_sample, config, timer, progress, notes, out_dir, overwrite)


def _first(data: ShowerData, n: int | None) -> ShowerData:
    """The first ``n`` showers (all for None)."""
    if n is None or n >= len(data):
        return data
    sl = slice(0, n)
    theta = None if data.theta is None else data.theta[sl]
    phi = None if data.phi is None else data.phi[sl]
    return ShowerData(data.energies[sl], data.showers[sl], data.binning, theta, phi, data.attrs)


def _evaluate(
    reference: Sample,
    generated: Sample,
    config: EvaluationConfig,
    timer: _Timer,
    progress: ProgressFactory | None,
    notes: Sequence[str],
    out_dir: str | Path | None,
    overwrite: bool,
) -> Comparison:
    """Every metric of two checked samples; the report written into ``out_dir`` if given."""
    with timer("reading"):
        notes = [*notes, *check_compatible(reference, generated)]
        conditions = condition_bins(
            reference.data,
            generated.data,
            theta_bins=config.theta_bins,
            max_points=config.max_points,
        )
        notes += conditions.notes
    if config.threshold_mev is None:
        threshold, threshold_note = default_threshold(reference)
    else:
        threshold, threshold_note = (
            config.threshold_mev,
            f"{config.threshold_mev * 1e3:g} keV (given)",
        )

    def run(work: Path | None) -> dict[str, Any]:
        metrics = _run(reference, generated, conditions, threshold, config, work, timer, progress)
        metrics.update(threshold_mev=threshold, threshold_note=threshold_note)
        metrics["notes"] = notes + metrics.pop("notes", [])
        metrics["timing_s"] = timer.seconds
        return metrics

    if out_dir is None:
        return Comparison.from_metrics(_jsonable(run(None)))
    with output_lock(out_dir), atomic_directory(out_dir, overwrite=overwrite) as work:
        metrics = _jsonable(run(work))
        (work / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_index(work / "index.html", metrics)
    return Comparison.from_metrics(metrics)


def _baseline_split(
    n_ref: int, n_gen: int, config: EvaluationConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """Random masks (A, B) over the reference for the Geant4-vs-Geant4 baseline, or None.

    B has ``min(n_gen, n_ref // 2)`` showers (at least ``min_baseline``) and A the rest. The
    finite-sample floor of every metric grows like ``1/n_1 + 1/n_2``; with these sizes the
    baseline's floor is never below that of the comparison (``n_ref`` vs ``n_gen``) and equals
    it when the generated sample is small, so a perfect generator scores at or below the
    baseline (by up to a factor ~2 when both files have the same size).
    """
    if n_ref < 2 * config.min_baseline:
        return None
    n_b = max(min(n_gen, n_ref // 2), config.min_baseline)
    order = np.random.default_rng(config.seed).permutation(n_ref)
    half_b = np.zeros(n_ref, dtype=bool)
    half_b[order[:n_b]] = True
    return ~half_b, half_b


def _run(
    reference: Sample,
    generated: Sample,
    conditions: Conditions,
    threshold: float,
    config: EvaluationConfig,
    work: Path | None,
    timer: _Timer,
    progress: ProgressFactory | None,
) -> dict[str, Any]:
    with timer("features"):
        ref, gen = _side(reference, threshold), _side(generated, threshold)
        edges = _edges(ref.features, threshold)
        positive = ref.voxels[ref.voxels > 0]
        voxel_edges = histogram_edges(positive, bins=50, log=True, low=threshold)
        # Raw energies are ~1/SF smaller than calibrated ones: scale the low-level inputs so that
        # the reference's mean response is 1 and the classifier learns at the same pace.
        response = float(np.mean(ref.features.e_ratio))
        low_scale = 1.0 / response if response > 0 and not reference.calibrated else 1.0
    metrics: dict[str, Any] = {
        "reference": reference.describe(),
        "generated": generated.describe(),
        "settings": {
            "classifier": config.classifier.describe(),
            "histograms": "bins from the reference: 100 linear bins over its 0.1-99.9 % range "
            "(+5 %), 40 log bins from the threshold for layer energies, 50 for voxel energies; "
            "overflow counted in the outer bins",
            "low_level_scale": low_scale,
        },
        "notes": [],
    }
    halves = _baseline_split(reference.n, generated.n, config)
    if halves is None:
        metrics["notes"].append(
            f"too few showers to split off a Geant4 baseline of {config.min_baseline}"
        )

    with timer("whole file"):
        metrics.update(
            _comparison(
                ref,
                gen,
                edges,
                voxel_edges,
                config,
                label="whole file",
                whole_file=True,
                low_scale=low_scale,
                progress=progress,
            )
        )
    if "skipped" in metrics:
        metrics["notes"].append(f"whole file: {metrics['skipped']}: not computed")
    metrics["notes"] += [f"whole file: {why}" for why in metrics.get("not_computed", [])]
    if halves is not None:
        with timer("baseline"):
            metrics["baseline"] = _comparison(
                ref.select(halves[0]),
                ref.select(halves[1]),
                edges,
                voxel_edges,
                config,
                label="Geant4 baseline",
                whole_file=True,
                low_scale=low_scale,
                progress=progress,
            )
            metrics["notes"] += [
                f"baseline: {why}" for why in metrics["baseline"].get("not_computed", [])
            ]
    with timer("condition bins"):
        metrics["conditions"] = {
            "mode": conditions.mode,
            "uses_angles": conditions.uses_angles,
            "bins": _bins_report(
                ref, gen, halves, conditions, edges, voxel_edges, config, progress
            ),
        }
    with timer("anomalies"):
        if halves is not None:
            ref_train, ref_test = ref.select(halves[0]), ref.select(halves[1])
        else:  # score Geant4 showers the forest has not seen
            held = np.random.default_rng(config.seed).random(len(ref)) < 0.3
            ref_train, ref_test = ref.select(~held), ref.select(held)
        summary, ref_scores, gen_scores = _anomalies(ref_train, ref_test, gen, config)
        metrics["anomalies"] = summary
    if not config.plots or work is None:
        metrics["plots"] = {}
        return metrics
    with timer("plots"):
        metrics["plots"] = draw_figures(
            ref,
            gen,
            reference,
            generated,
            conditions,
            edges,
            voxel_edges,
            metrics,
            ref_test,
            ref_scores,
            gen_scores,
            config,
            work,
        )
    return metrics


def _jsonable(value: Any) -> Any:
    """Plain JSON types (NaN and inf become null)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
