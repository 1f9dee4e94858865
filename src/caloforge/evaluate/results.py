"""Typed results of an evaluation: the headline metrics, defined once, and a comparison.

:data:`HEADLINE` is the one definition of the headline metrics: their key in ``metrics.json``,
their label, their display scale (FPD and KPD are shown x 10^3) and how to read them. The
report page, the CLI table, the model card and the benchmarks all show them through
:class:`Comparison`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from caloforge.evaluate.metrics import format_value


@dataclass(frozen=True)
class HeadlineMetric:
    """How a headline metric is named, scaled and read.

    Attributes:
        key: its key in ``metrics.json``.
        label: its name for people.
        short: its name in a narrow table.
        scale: displayed values are the values times this.
        reading: what its values mean.
    """

    key: str
    label: str
    short: str
    scale: float
    reading: str

    @property
    def unit(self) -> str:
        """The display scale as a label suffix (``" (x 10^3)"``), empty if none."""
        return " (x 10^3)" if self.scale == 1e3 else ""


HEADLINE: tuple[HeadlineMetric, ...] = (
    HeadlineMetric(
        "auc_low",
        "classifier AUC, low level (voxels)",
        "AUC low",
        1.0,
        "0.5: indistinguishable, 1: fully separable",
    ),
    HeadlineMetric(
        "auc_high",
        "classifier AUC, high level (features)",
        "AUC high",
        1.0,
        "0.5: indistinguishable",
    ),
    HeadlineMetric("jsd_low", "classifier JSD, low level", "JSD low", 1.0, "0: indistinguishable"),
    HeadlineMetric(
        "jsd_high", "classifier JSD, high level", "JSD high", 1.0, "0: indistinguishable"
    ),
    HeadlineMetric("fpd", "FPD", "FPD", 1e3, "0: same distribution"),
    HeadlineMetric("kpd", "KPD", "KPD", 1e3, "0: same distribution"),
)
"""The headline metrics, in display order."""

VERDICTS = ((0.6, "GOOD"), (0.75, "FAIR"))
"""A model's verdict from its worse classifier AUC: at most 0.6 GOOD, at most 0.75 FAIR, else
POOR (the CaloChallenge dataset-2 entries below 0.6 are the state of the art)."""


@dataclass(frozen=True)
class Measured:
    """A measured value with its uncertainty."""

    value: float
    error: float

    @classmethod
    def read(cls, entry: Any) -> Measured | None:
        """From a ``metrics.json`` entry ``{"value": v, "error": e}``; None if absent."""
        if not isinstance(entry, Mapping) or entry.get("value") is None:
            return None
        return cls(float(entry["value"]), float(entry.get("error") or 0.0))

    def format(self, scale: float = 1.0, *, plus_minus: str = "±") -> str:
        """``"v ± e"``, both times ``scale``."""
        return format_value(
            {"value": self.value, "error": self.error}, scale, plus_minus=plus_minus
        )


def _format(measured: Measured | None, scale: float, plus_minus: str = "±") -> str:
    return "-" if measured is None else measured.format(scale, plus_minus=plus_minus)


@dataclass(frozen=True)
class Comparison:
    """An evaluation of generated showers against a Geant4 reference.

    Attributes:
        n_reference, n_generated: showers compared.
        auc_low, auc_high, jsd_low, jsd_high, fpd, kpd: the headline metrics (None where not
            computed, e.g. too few showers or ``--no-low-level``).
        separation_power: feature -> separation power of its histograms.
        separation_power_mean: the mean over all features.
        baseline: the same metrics between two disjoint parts of the reference (Geant4 vs
            Geant4), None if the reference was too small to split.
        notes: what the reader should know (skipped metrics, differences between the files).
        metrics: everything, as written to ``metrics.json`` (per condition bin, settings, ...).
    """

    n_reference: int
    n_generated: int
    auc_low: Measured | None
    auc_high: Measured | None
    jsd_low: Measured | None
    jsd_high: Measured | None
    fpd: Measured | None
    kpd: Measured | None
    separation_power: dict[str, float]
    separation_power_mean: float
    baseline: Comparison | None
    notes: tuple[str, ...]
    metrics: dict[str, Any]

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> Comparison:
        """The comparison of a ``metrics.json`` content (the whole file or its baseline)."""
        baseline = metrics.get("baseline")
        return cls(
            n_reference=int(metrics["n_reference"]),
            n_generated=int(metrics["n_generated"]),
            **{m.key: Measured.read(metrics.get(m.key)) for m in HEADLINE},
            separation_power=dict(metrics["separation_power"]),
            separation_power_mean=float(metrics["separation_power_summary"]["mean"]),
            baseline=cls.from_metrics(baseline) if baseline else None,
            notes=tuple(metrics.get("notes", ())),
            metrics=dict(metrics),
        )

    def headline(self, metric: HeadlineMetric) -> Measured | None:
        """The value of a headline metric."""
        value = getattr(self, metric.key)
        return value if value is None or isinstance(value, Measured) else None

    def rows(self, *, plus_minus: str = "±") -> list[tuple[str, str, str]]:
        """(label, generated vs Geant4, Geant4 vs Geant4) per headline metric, then the
        separation powers of E_ratio and their mean over all features."""
        base = self.baseline
        rows = [
            (
                f"{m.label}{m.unit}",
                _format(self.headline(m), m.scale, plus_minus),
                _format(base.headline(m) if base else None, m.scale, plus_minus),
            )
            for m in HEADLINE
            if self.headline(m) is not None or m.key in ("fpd", "kpd")
        ]
        e_ratio = self.separation_power.get("e_ratio")
        base_e_ratio = base.separation_power.get("e_ratio") if base else None
        rows.append(
            (
                "separation power E_tot/E_inc",
                "-" if e_ratio is None else f"{e_ratio:.4g}",
                "-" if base_e_ratio is None else f"{base_e_ratio:.4g}",
            )
        )
        rows.append(
            (
                "separation power, mean over features",
                f"{self.separation_power_mean:.4g}",
                "-" if base is None else f"{base.separation_power_mean:.4g}",
            )
        )
        return rows

    def verdict(self) -> str:
        """GOOD if both classifier AUCs are at most 0.6, FAIR if at most 0.75, else POOR
        (the worse of the two decides; a missing AUC counts as 1)."""
        worst = max(1.0 if m is None else m.value for m in (self.auc_low, self.auc_high))
        for limit, word in VERDICTS:
            if worst <= limit:
                return word
        return "POOR"

    def table(self) -> str:
        """The headline as plain text: one row per metric, beside the Geant4 baseline."""
        lines = [f"  {'':<44}{'generated vs Geant4':<24}Geant4 vs Geant4"]
        lines += [f"  {label:<44}{ours:<24}{base}" for label, ours, base in self.rows()]
        return "\n".join(lines)

    def markdown(self) -> str:
        """The headline as a Markdown table (model cards, benchmark results)."""
        lines = ["| metric | model vs Geant4 | Geant4 vs Geant4 |", "|---|---|---|"]
        lines += [f"| {label} | {ours} | {base} |" for label, ours, base in self.rows()]
        return "\n".join(lines)
