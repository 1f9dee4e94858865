"""``index.html``: one page with the headline numbers beside the Geant4 baseline, and the plots."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from caloforge.evaluate.metrics import format_value
from caloforge.evaluate.results import HEADLINE

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 6px 0; }
.note { color: #a05000; }
.small { color: #666; font-size: 90%; }
"""


def _number(entry: Any, scale: float = 1.0) -> str:
    return format_value(entry, scale, plus_minus="&plusmn;")


def _row(cells: list[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    first = f'<{tag} class="l">{cells[0]}</{tag}>'
    return "<tr>" + first + "".join(f"<{tag}>{c}</{tag}>" for c in cells[1:]) + "</tr>"


def _headline(metrics: Mapping[str, Any]) -> str:
    baseline = metrics.get("baseline", {})
    rows = [_row(["metric", "generated vs Geant4", "Geant4 vs Geant4", "reading"], header=True)]
    for metric in HEADLINE:
        if metric.key not in metrics:
            continue
        rows.append(
            _row(
                [
                    f"{metric.label}{metric.unit}",
                    _number(metrics[metric.key], metric.scale),
                    _number(baseline.get(metric.key), metric.scale),
                    metric.reading,
                ]
            )
        )
    sep, sep_base = metrics["separation_power"], baseline.get("separation_power", {})
    error = metrics.get("separation_power_error", {})
    for name in ("e_ratio", "voxel_spectrum", "profile_z", "profile_r"):
        if name in sep:
            base = f"{sep_base[name]:.3g}" if name in sep_base else "-"
            rows.append(
                _row(
                    [
                        f"separation power {name}",
                        f"{sep[name]:.3g} &plusmn; {error.get(name, 0):.2g}",
                        base,
                        "0: identical histograms",
                    ]
                )
            )
    summary, base_summary = (
        metrics["separation_power_summary"],
        baseline.get("separation_power_summary"),
    )
    rows.append(
        _row(
            [
                "separation power, mean over all features",
                f"{summary['mean']:.3g} (max {summary['max']:.3g}: {html.escape(summary['max_feature'])})",
                f"{base_summary['mean']:.3g} (max {base_summary['max']:.3g})"
                if base_summary
                else "-",
                "read against the baseline",
            ]
        )
    )
    sizes = f"{metrics['n_reference']} Geant4 vs {metrics['n_generated']} generated showers" + (
        f"; baseline: two disjoint parts of the reference, {baseline['n_reference']} vs "
        f"{baseline['n_generated']}"
        if baseline
        else ""
    )
    return f"<table>{''.join(rows)}</table><p class='small'>{html.escape(sizes)}</p>"


def _bins(metrics: Mapping[str, Any]) -> str:
    conditions = metrics.get("conditions", {})
    rows = [
        _row(
            [
                "condition bin",
                "showers (G4 / gen)",
                "AUC high",
                "baseline AUC high",
                "mean separation power",
                "baseline",
            ],
            header=True,
        )
    ]
    for entry in conditions.get("bins", []):
        label = html.escape(entry["label"])
        counts = f"{entry['n_reference']} / {entry['n_generated']}"
        if "skipped" in entry:
            rows.append(_row([label, counts, html.escape(entry["skipped"]), "", "", ""]))
            continue
        base = entry.get("baseline", {})
        rows.append(
            _row(
                [
                    label,
                    counts,
                    _number(entry["auc_high"]),
                    _number(base.get("auc_high")),
                    f"{entry['separation_power_summary']['mean']:.3g}",
                    f"{base['separation_power_summary']['mean']:.3g}" if base else "-",
                ]
            )
        )
    mode = conditions.get("mode", "")
    return f"<p class='small'>binning of the conditions: {html.escape(mode)}</p><table>{''.join(rows)}</table>"


def _images(names: list[str]) -> str:
    return "".join(f'<div><img src="{html.escape(n)}" alt="{html.escape(n)}"></div>' for n in names)


def write_index(path: Path, metrics: Mapping[str, Any]) -> None:
    """Write the report page for ``metrics`` (the content of ``metrics.json``)."""
    ref, gen = metrics["reference"], metrics["generated"]
    notes = "".join(f"<li class='note'>{html.escape(n)}</li>" for n in metrics.get("notes", []))
    settings = metrics.get("settings", {})
    anomalies = metrics.get("anomalies", {})
    plots = metrics.get("plots", {})
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>caloforge evaluation</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>caloforge evaluation</h1>",
        (
            f"<p>Geant4 reference: <b>{html.escape(ref['path'])}</b> ({ref['n']} showers, detector "
            f"{html.escape(str(ref['detector']))})<br>generated: <b>{html.escape(gen['path'])}</b> "
            f"({gen['n']} showers, detector {html.escape(str(gen['detector']))})<br>"
            f"voxel threshold: {html.escape(metrics['threshold_note'])}</p>"
        ),
        f"<ul>{notes}</ul>" if notes else "",
        "<h2>Headline metrics</h2>",
        _headline(metrics),
        (
            "<p class='small'>Separation power: &frac12; &Sigma; (h1-h2)&sup2;/(h1+h2) of unit-"
            "normalised histograms; it is positive for finite samples even for identical "
            "distributions, so read it against the Geant4 baseline. Classifier: "
            f"{html.escape(settings.get('classifier', ''))}. "
            f"{html.escape(metrics.get('distance_settings', ''))}.</p>"
        ),
        _images(plots.get("summary", [])),
        "<h2>Per condition</h2>",
        _bins(metrics),
        "<h2>Average showers and profiles</h2>",
        _images(plots.get("showers", [])),
        "<h2>High-level features</h2>",
        _images(plots.get("features", [])),
        "<h2>Anomalies</h2>",
        (
            "<p>Isolation forest trained on Geant4 high-level features: "
            f"{100 * anomalies.get('generated_fraction_below', float('nan')):.2f} % of the generated "
            "showers score below the Geant4 1 % quantile (1 % expected).</p>"
        ),
        _images(plots.get("anomalies", [])),
        (
            "<p class='small'>All numbers: metrics.json. Timings (s): "
            f"{html.escape(str(metrics.get('timing_s', {})))}</p>"
        ),
        "</body></html>",
    ]
    path.write_text("\n".join(parts))
