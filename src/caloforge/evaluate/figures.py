"""The figures of an evaluation report, drawn into its directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.config import EvaluationConfig
from caloforge.evaluate import plots, showerplots
from caloforge.evaluate.features import LOG_FEATURES, Side
from caloforge.evaluate.inputs import Conditions, Sample
from caloforge.evaluate.metrics import histogram


def draw_figures(
    ref: Side,
    gen: Side,
    reference: Sample,
    generated: Sample,
    conditions: Conditions,
    edges: Mapping[str, np.ndarray],
    voxel_edges: np.ndarray,
    metrics: Mapping[str, Any],
    ref_test: Side,
    ref_scores: np.ndarray,
    gen_scores: np.ndarray,
    config: EvaluationConfig,
    work: Path,
) -> dict[str, list[str]]:
    """Draw every plot; returns section -> PNG names relative to the report."""
    separation = metrics["separation_power"]
    baseline = metrics.get("baseline", {}).get("separation_power")
    written: dict[str, list[Path]] = {}
    written["summary"] = [
        plots.plot_separation_summary(separation, baseline, work / "separation_power.png")
    ]
    written["features"] = plots.plot_feature_histograms(
        ref.features,
        gen.features,
        edges,
        separation,
        work,
        log_x=[name for name in edges if name.rsplit("_", 1)[0] in LOG_FEATURES],
    )
    written["features"].append(
        plots.plot_voxel_spectrum(
            histogram(ref.voxels[ref.voxels > 0], voxel_edges),
            histogram(gen.voxels[gen.voxels > 0], voxel_edges),
            voxel_edges,
            separation["voxel_spectrum"],
            work / "voxel_spectrum.png",
        )
    )
    binning = reference.data.binning
    written["showers"] = [
        showerplots.plot_average_shower(
            ref.voxels.mean(axis=0), gen.voxels.mean(axis=0), binning, work / "average_shower.png"
        ),
        plots.plot_profiles(ref.features, gen.features, work / "profiles.png", title="all showers"),
    ]
    groups = [
        (cbin.label, ref.features.select(cbin.reference), gen.features.select(cbin.generated))
        for cbin in conditions.bins
        if min(cbin.reference.sum(), cbin.generated.sum()) >= 1
    ]
    if groups:
        written["showers"].append(
            plots.plot_profiles_per_condition(groups, work / "profiles_per_condition.png")
        )
    written["anomalies"] = [
        showerplots.plot_anomaly_scores(ref_scores, gen_scores, work / "anomaly_scores.png")
    ]
    k = min(config.n_anomalies, len(gen_scores), len(ref_scores))
    if k:
        worst = np.argsort(gen_scores)[:k]
        typical = np.argsort(np.abs(ref_scores - np.median(ref_scores)))[:k]
        written["anomalies"].append(
            showerplots.plot_showers(
                gen.voxels[worst],
                generated.data.binning,
                [
                    f"score {gen_scores[i]:.3f}, {gen.features.e_inc[i] / 1e3:.3g} GeV"
                    for i in worst
                ],
                work / "anomalous_generated.png",
                suptitle="most anomalous generated showers",
            )
        )
        written["anomalies"].append(
            showerplots.plot_showers(
                ref_test.voxels[typical],
                binning,
                [
                    f"score {ref_scores[i]:.3f}, {ref_test.features.e_inc[i] / 1e3:.3g} GeV"
                    for i in typical
                ],
                work / "typical_geant4.png",
                suptitle="typical Geant4 showers",
            )
        )
    return {section: [p.name for p in paths] for section, paths in written.items()}
