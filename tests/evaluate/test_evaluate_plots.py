"""Tests of caloforge.evaluate.plots and showerplots: each figure shows what it is meant to.

The histograms, profiles, images and ratios read back from the figures' artists are compared
with the same quantities computed here from the showers or feature values; titles, axis labels
and legends are compared with their expected text. Drawing the figures needs no PNG; one test
per ``plot_*`` function checks that it writes its figure.
"""

from __future__ import annotations

import functools
import re
import struct
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from caloforge.errors import DataError, OutputError
from caloforge.evaluate import metrics, plots, showerplots
from caloforge.evaluate.features import HighLevelFeatures, compute_features
from caloforge.geometry.binning import Binning, calochallenge_binning

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import StepPatch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 100  # of the written PNGs
LOG_FAMILIES = ("e_layer",)
S_FLOOR = 1e-5  # separation powers below this are drawn at it
FAMILY_LABELS = {  # x label of each per-layer family, in report order
    "e_layer": "energy in layer [MeV]",
    "ec_eta": r"centre of energy in $\eta$ [mm]",
    "ec_phi": r"centre of energy in $\phi$ [mm]",
    "width_eta": r"width in $\eta$ [mm]",
    "width_phi": r"width in $\phi$ [mm]",
    "ec_r": "radial centre of energy [mm]",
    "width_r": "radial width [mm]",
    "sparsity": "sparsity (fraction of empty voxels)",
}
E_RATIO_LABEL = r"$E_\mathrm{dep} / E_\mathrm{inc}$"


@pytest.fixture(autouse=True)
def _no_open_figures() -> Iterator[None]:
    yield
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


# ----------------------------------------------------------------------------------------------
# Samples


def synthetic_showers(binning: Binning, n: int, *, seed: int, scale: float = 1.0) -> np.ndarray:
    """Showers falling off in r and peaking at 30 % depth, 30 % of voxels empty, (n, V)."""
    rng = np.random.default_rng(seed)
    depth = binning.voxel_layer / max(binning.n_layers - 1, 1)
    mean = 50.0 * np.exp(-binning.voxel_r / 20.0) * np.exp(-((depth - 0.3) ** 2) / 0.05)
    showers = rng.gamma(2.0, scale * mean / 2.0, size=(n, binning.n_voxels))
    showers[rng.random(showers.shape) < 0.3] = 0.0  # empty voxels, for sparsity
    return showers


BINNINGS = {
    "regular": Binning.regular(45, 16, 9, 4.65),
    "dataset-1": calochallenge_binning("1-photons"),  # 5 read-out layers, 2 of them in alpha
}


@dataclass(frozen=True)
class Sample:
    """Geant4-like and 10 % hotter 'generated' showers, their features and histogram edges."""

    binning: Binning
    ref_showers: np.ndarray  # (N, V)
    gen_showers: np.ndarray  # (N, V)
    ref: HighLevelFeatures
    gen: HighLevelFeatures
    edges: dict[str, np.ndarray]  # feature name -> (B + 1,)
    separation: dict[str, float]  # feature name -> S


@functools.cache
def make_sample(name: str) -> Sample:
    binning = BINNINGS[name]
    n = 60
    energies = np.full(n, 1000.0)
    ref_showers = synthetic_showers(binning, n, seed=1)
    gen_showers = synthetic_showers(binning, n, seed=2, scale=1.1)
    ref = compute_features(ref_showers, energies, binning, threshold_mev=0.0)
    gen = compute_features(gen_showers, energies, binning, threshold_mev=0.0)
    edges, separation = {}, {}
    gen_named = gen.named()
    for feature, values in ref.named().items():
        edges[feature] = metrics.histogram_edges(
            values, bins=20, log=feature.startswith(LOG_FAMILIES)
        )
        separation[feature] = metrics.separation_power(
            folded_histogram(values, edges[feature]),
            folded_histogram(gen_named[feature], edges[feature]),
        )
    return Sample(binning, ref_showers, gen_showers, ref, gen, edges, separation)


@pytest.fixture(params=list(BINNINGS))
def sample(request: pytest.FixtureRequest) -> Sample:
    return make_sample(request.param)


# ----------------------------------------------------------------------------------------------
# The expected content, computed without caloforge.evaluate


def folded_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts with entries beyond the outer edges in the outer bins, NaNs dropped, (B,)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return np.histogram(np.clip(values, edges[0], edges[-1]), edges)[0].astype(np.float64)


def unit(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64) / np.sum(values)


def separation_power(h1: np.ndarray, h2: np.ndarray) -> float:
    """Eq. 15 of arXiv:2009.03796 on unit-normalised histograms."""
    p, q = unit(h1), unit(h2)
    both = p + q > 0
    return float(0.5 * np.sum((p[both] - q[both]) ** 2 / (p[both] + q[both])))


def layer_energies(showers: np.ndarray, binning: Binning) -> np.ndarray:
    """Energy per read-out layer, (N, V) -> (N, L)."""
    return np.stack(
        [showers[:, binning.layer_slices[i]].sum(axis=1) for i in binning.readout_layers], axis=1
    )


def radial_energies(showers: np.ndarray, binning: Binning, layer: int) -> np.ndarray:
    """Energy per r bin of one layer, summed over alpha, (N, V) -> (N, n_r)."""
    spec = binning.layers[layer]
    per_voxel = showers[:, binning.layer_slices[layer]]
    return per_voxel.reshape(len(showers), spec.n_alpha, spec.n_r).sum(axis=1)


def rz_grid(showers: np.ndarray, binning: Binning) -> np.ndarray:
    """Energy per (layer, r) summed over alpha of a regular binning, (..., V) -> (..., L, n_r)."""
    n_layers, n_alpha, n_r = binning.grid_shape
    return showers.reshape(*showers.shape[:-1], n_layers, n_alpha, n_r).sum(axis=-2)


def layers_of(family: str, names: Iterable[str]) -> list[int]:
    """The sorted layers of the ``<family>_<layer>`` names."""
    tails = (name.removeprefix(f"{family}_") for name in names if name.startswith(f"{family}_"))
    return sorted(int(tail) for tail in tails if tail.isdigit())


def ratio_or_nan(gen: np.ndarray, ref: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ref > 0, gen / ref, np.nan)


# ----------------------------------------------------------------------------------------------
# Reading a figure


def stairs(ax: Axes) -> dict[str, StepPatch]:
    """The labelled step histograms of ``ax`` by label ("Geant4", "generated")."""
    from matplotlib.patches import StepPatch

    return {
        p.get_label(): p
        for p in ax.patches
        if isinstance(p, StepPatch) and not p.get_label().startswith("_")
    }


def step_patches(fig: Figure) -> list[StepPatch]:
    from matplotlib.patches import StepPatch

    return [p for ax in fig.axes for p in ax.patches if isinstance(p, StepPatch)]


def visible_axes(fig: Figure) -> list[Axes]:
    """The visible axes of ``fig`` that are not colour bars."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def ratio_pairs(fig: Figure) -> list[tuple[Axes, Axes]]:
    """(main, ratio) axes pairs of a figure drawn with ratio panels, in drawing order."""
    axes = fig.axes
    pairs = list(zip(axes[::2], axes[1::2], strict=True))
    for main, ratio in pairs:
        assert ratio.get_shared_x_axes().joined(main, ratio)
    return pairs


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def legend_labels(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def legends(fig: Figure) -> list[list[str]]:
    return [legend_labels(ax) for ax in fig.axes if ax.get_legend() is not None]


def assert_title_s(ax: Axes, expected: float) -> None:
    """The panel title ends in ``S=<expected to 3 significant digits>``."""
    match = re.search(r"S=([0-9.e+-]+)$", ax.get_title())
    assert match, ax.get_title()
    assert float(match.group(1)) == pytest.approx(expected, rel=5e-3, abs=1e-12)


def assert_pair(ax: Axes, ref: np.ndarray, gen: np.ndarray, edges: np.ndarray) -> None:
    """``ax`` shows ``ref`` as the Geant4 fill and ``gen`` as the generated step line."""
    drawn = stairs(ax)
    assert set(drawn) == {"Geant4", "generated"}
    assert drawn["Geant4"].get_fill()
    assert not drawn["generated"].get_fill()
    for label, values in (("Geant4", ref), ("generated", gen)):
        data = drawn[label].get_data()
        np.testing.assert_allclose(data.values, values, rtol=1e-12, err_msg=label)
        np.testing.assert_allclose(data.edges, edges, rtol=1e-12, err_msg=label)


def assert_ratio_panel(
    ratio: Axes,
    ref: np.ndarray,
    gen: np.ndarray,
    edges: np.ndarray,
    *,
    ref_counts: np.ndarray | None = None,
) -> None:
    """``ratio`` shows gen / ref (NaN where ref is 0) and, with counts, 1 +- 1/sqrt(counts)."""
    from matplotlib.patches import StepPatch

    assert ratio.get_visible()
    patches = [p for p in ratio.patches if isinstance(p, StepPatch)]
    lines = [p for p in patches if not p.get_fill()]
    bands = [p for p in patches if p.get_fill()]
    assert len(lines) == 1
    np.testing.assert_allclose(lines[0].get_data().values, ratio_or_nan(gen, ref), rtol=1e-12)
    np.testing.assert_allclose(lines[0].get_data().edges, edges, rtol=1e-12)
    assert [list(line.get_ydata()) for line in ratio.lines] == [[1.0, 1.0]]  # the line at 1
    assert ratio.get_ylim() == (0.5, 1.5)
    assert ratio.get_ylabel() == "gen. / Geant4"
    if ref_counts is None:
        assert bands == []
        return
    assert len(bands) == 1
    with np.errstate(divide="ignore"):
        rel = np.where(ref_counts > 0, 1.0 / np.sqrt(ref_counts), np.nan)
    np.testing.assert_allclose(bands[0].get_data().values, 1.0 + rel, rtol=1e-12)
    np.testing.assert_allclose(bands[0].get_data().baseline, 1.0 - rel, rtol=1e-12)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG header."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def pixel_size(fig: Figure) -> tuple[int, int]:
    width, height = fig.get_size_inches() * DPI
    return round(width), round(height)


# ----------------------------------------------------------------------------------------------
# Feature histograms


def test_feature_histograms(sample: Sample) -> None:
    ref_named, gen_named = sample.ref.named(), sample.gen.named()
    log_x = [name for name in sample.edges if name.startswith(LOG_FAMILIES)]
    figures = dict(
        plots.feature_histogram_figures(
            sample.ref, sample.gen, sample.edges, sample.separation, log_x=log_x
        )
    )
    families = [f for f in FAMILY_LABELS if any(n.startswith(f"{f}_") for n in sample.edges)]
    assert list(figures) == ["e_ratio", *families]

    # e_ratio: one histogram panel over its ratio panel
    fig = figures["e_ratio"]
    ((main, ratio),) = ratio_pairs(fig)
    edges = sample.edges["e_ratio"]
    ref_counts = folded_histogram(sample.ref.e_tot / 1000.0, edges)  # E_inc = 1 GeV
    gen_counts = folded_histogram(sample.gen.e_tot / 1000.0, edges)
    assert_pair(main, unit(ref_counts), unit(gen_counts), edges)
    assert_ratio_panel(ratio, unit(ref_counts), unit(gen_counts), edges, ref_counts=ref_counts)
    assert main.get_title() == f"deposited / incident energy, S={sample.separation['e_ratio']:.3g}"
    assert_title_s(main, separation_power(ref_counts, gen_counts))
    assert main.get_ylabel() == "fraction of showers"
    assert ratio.get_xlabel() == E_RATIO_LABEL
    assert legends(fig) == [["Geant4", "generated"]]

    # per-layer families: up to 9 layers from the first to the last, evenly spaced
    for family in families:
        fig = figures[family]
        layers = layers_of(family, sample.edges)
        pairs = ratio_pairs(fig)
        shown = []
        for main, _ in pairs:
            match = re.match(r"layer (\d+), S=", main.get_title())
            assert match, main.get_title()
            shown.append(int(match.group(1)))
        assert len(pairs) == min(9, len(layers))
        assert (shown[0], shown[-1]) == (layers[0], layers[-1])
        gaps = np.diff([layers.index(layer) for layer in shown])
        assert gaps.min() >= 1
        assert gaps.max() - gaps.min() <= 1
        assert fig.get_suptitle() == f"{FAMILY_LABELS[family]}: Geant4 vs generated"
        assert legends(fig) == [["Geant4", "generated"]]  # one legend per figure
        for layer, (main, ratio) in zip(shown, pairs, strict=True):
            name = f"{family}_{layer}"
            edges = sample.edges[name]
            ref_counts = folded_histogram(ref_named[name], edges)
            gen_counts = folded_histogram(gen_named[name], edges)
            assert_pair(main, unit(ref_counts), unit(gen_counts), edges)
            assert_ratio_panel(
                ratio, unit(ref_counts), unit(gen_counts), edges, ref_counts=ref_counts
            )
            assert main.get_title() == f"layer {layer}, S={sample.separation[name]:.3g}"
            assert_title_s(main, separation_power(ref_counts, gen_counts))
            assert ratio.get_xlabel() == FAMILY_LABELS[family]
            assert main.get_xscale() == ("log" if name in log_x else "linear")


def test_feature_histograms_skip_missing_families(sample: Sample) -> None:
    edges = {k: v for k, v in sample.edges.items() if k.startswith(("e_layer", "e_ratio"))}
    figures = plots.feature_histogram_figures(sample.ref, sample.gen, edges, sample.separation)
    assert [name for name, _ in figures] == ["e_ratio", "e_layer"]


# ----------------------------------------------------------------------------------------------
# Separation powers


def test_separation_summary(sample: Sample) -> None:
    separation = dict(sample.separation)
    separation["e_layer_0"] = 0.0  # identical histograms: drawn at the floor of the log axis
    separation.update(voxel_spectrum=0.01, profile_z=0.0, profile_r=3e-4)
    baseline = {name: value / 10.0 for name, value in separation.items()}
    scalars = {  # in the order of `separation`, by their tick labels
        E_RATIO_LABEL: separation["e_ratio"],
        "voxel energies": 0.01,
        "longitudinal profile": 0.0,
        "radial profile": 3e-4,
    }
    families = [f for f in FAMILY_LABELS if any(n.startswith(f"{f}_") for n in separation)]

    for base in (baseline, None):
        fig = plots.separation_summary_figure(separation, base)
        axes = visible_axes(fig)
        assert len(axes) == len(families) + 1  # one per family, one for the scalars
        assert fig.get_suptitle().startswith("Separation power, generated vs Geant4")
        for ax, family in zip(axes[: len(families)], families, strict=True):
            assert ax.get_title() == FAMILY_LABELS[family].split(" [")[0]
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("layer", "separation power S")
            assert ax.get_yscale() == "log"
            lines = {line.get_label(): line for line in ax.lines}
            assert set(lines) == (
                {"generated vs Geant4", "Geant4 vs Geant4"} if base else {"generated vs Geant4"}
            )
            layers = layers_of(family, separation)
            values = np.array([separation[f"{family}_{layer}"] for layer in layers])
            expected = {"generated vs Geant4": values, "Geant4 vs Geant4": values / 10.0}
            for label, line in lines.items():
                np.testing.assert_array_equal(line.get_xdata(), layers)
                np.testing.assert_allclose(line.get_ydata(), np.maximum(expected[label], S_FLOOR))
        assert legend_labels(axes[0]) == (
            ["generated vs Geant4", "Geant4 vs Geant4"] if base else ["generated vs Geant4"]
        )

        bars = axes[len(families)]
        assert bars.get_title() == "whole-shower distributions"
        assert bars.get_xlabel() == "separation power S"
        assert bars.get_xscale() == "log"
        ticks = zip(bars.get_yticklabels(), bars.get_yticks(), strict=True)
        rows = {label.get_text(): y for label, y in ticks}
        assert list(rows) == list(scalars)
        # per row: the bar's length, the printed value and the baseline marker
        widths = {p.get_y() + p.get_height() / 2: p.get_width() for p in bars.patches}
        printed = {t.get_position()[1]: t.get_text() for t in bars.texts}
        markers = [line for line in bars.lines if line.get_label() == "Geant4 vs Geant4"]
        for label, value in scalars.items():
            assert widths[rows[label]] == pytest.approx(max(value, S_FLOOR)), label
            assert printed[rows[label]] == f"S={value:.3g}"
        assert len(widths) == len(printed) == len(scalars)
        if base:
            (marker,) = markers
            drawn = dict(zip(marker.get_ydata(), marker.get_xdata(), strict=True))
            for label, value in scalars.items():
                assert drawn[rows[label]] == pytest.approx(max(value / 10.0, S_FLOOR)), label
            assert sorted(legend_labels(bars)) == ["Geant4 vs Geant4", "generated vs Geant4"]
        else:
            assert markers == []
            assert bars.get_legend() is None


def test_separation_summary_hides_unused_cells() -> None:
    separation = {f"e_layer_{i}": 0.1 for i in range(3)} | {"e_ratio": 0.2}
    separation |= {f"ec_r_{i}": 0.1 for i in range(3)} | {f"sparsity_{i}": 0.1 for i in range(3)}
    fig = plots.separation_summary_figure(separation, None)
    assert len(fig.axes) == 6  # 4 panels on a 2 x 3 grid
    assert [ax.get_title() for ax in visible_axes(fig)] == [
        "energy in layer",
        "radial centre of energy",
        "sparsity (fraction of empty voxels)",
        "whole-shower distributions",
    ]


# ----------------------------------------------------------------------------------------------
# Voxel spectrum and profiles


def test_voxel_spectrum(sample: Sample) -> None:
    ref_voxels = sample.ref_showers.ravel()
    gen_voxels = sample.gen_showers.ravel()
    edges = metrics.histogram_edges(ref_voxels, bins=30, log=True)
    ref_counts = folded_histogram(ref_voxels[ref_voxels > 0], edges)
    gen_counts = folded_histogram(gen_voxels[gen_voxels > 0], edges)
    fig = plots.voxel_spectrum_figure(ref_counts, gen_counts, edges, 0.0123)
    ((main, ratio),) = ratio_pairs(fig)
    assert_pair(main, unit(ref_counts), unit(gen_counts), edges)
    assert_ratio_panel(ratio, unit(ref_counts), unit(gen_counts), edges, ref_counts=ref_counts)
    assert main.get_title() == "voxel energy spectrum, S=0.0123"
    assert (main.get_xscale(), main.get_yscale()) == ("log", "log")
    positive = np.concatenate([unit(ref_counts), unit(gen_counts)])
    positive = positive[positive > 0]
    low, high = main.get_ylim()
    assert high == pytest.approx(2.0 * positive.max())
    assert low <= positive.min()  # every non-empty bin is above the floor
    assert main.get_ylabel() == "fraction of voxels"
    assert ratio.get_xlabel() == "voxel energy [MeV]"
    assert legends(fig) == [["Geant4", "generated"]]


def expected_profiles(showers: np.ndarray, binning: Binning) -> tuple[np.ndarray, np.ndarray]:
    """Mean energy per read-out layer (L,) and per r bin (n_r,) of the layers sharing the
    first read-out layer's r edges."""
    first = binning.layers[binning.readout_layers[0]].r_edges
    same_r = [i for i in binning.readout_layers if binning.layers[i].r_edges == first]
    radial = sum(radial_energies(showers, binning, i) for i in same_r)
    return layer_energies(showers, binning).mean(axis=0), np.mean(radial, axis=0)


def test_profiles(sample: Sample) -> None:
    binning = sample.binning
    ref_z, ref_r = expected_profiles(sample.ref_showers, binning)
    gen_z, gen_r = expected_profiles(sample.gen_showers, binning)
    fig = plots.profiles_figure(sample.ref, sample.gen, title="a title")
    (main_z, ratio_z), (main_r, ratio_r) = ratio_pairs(fig)
    assert fig.get_suptitle() == "a title"

    layers = binning.readout_layers
    if binning.is_regular:  # contiguous layers sit at their ids
        edges_z = np.arange(layers[0], layers[-1] + 2) - 0.5
    else:  # dataset 1 skips layers: one slot per read-out layer, labelled with its id
        edges_z = np.arange(len(layers) + 1) - 0.5
        fig.draw_without_rendering()  # tick labels are set when drawn
        assert [t.get_text() for t in ratio_z.get_xticklabels()] == [str(i) for i in layers]
    assert_pair(main_z, ref_z, gen_z, edges_z)
    assert_ratio_panel(ratio_z, ref_z, gen_z, edges_z)
    assert_title_s(main_z, separation_power(ref_z, gen_z))
    assert main_z.get_title().startswith("longitudinal, S=")
    assert main_z.get_yscale() == "log"
    assert (ratio_z.get_xlabel(), main_z.get_ylabel()) == ("layer", "mean energy per layer [MeV]")

    edges_r = np.asarray(binning.layers[layers[0]].r_edges)
    assert_pair(main_r, ref_r, gen_r, edges_r)
    assert_ratio_panel(ratio_r, ref_r, gen_r, edges_r)
    assert_title_s(main_r, separation_power(ref_r, gen_r))
    assert main_r.get_title().startswith("radial, S=")
    # dataset 1's radial edges span decades (5 to 600 mm): symlog keeps the inner bins visible
    assert main_r.get_xscale() == ("linear" if binning.is_regular else "symlog")
    assert main_r.get_xlim() == (edges_r[0], edges_r[-1])
    assert ratio_r.get_xlabel() == "r [mm]"
    assert main_r.get_ylabel() == "mean energy per radial bin [MeV]"
    assert legends(fig) == [["Geant4", "generated"]]


def test_profiles_per_condition(sample: Sample) -> None:
    half = np.arange(len(sample.ref)) < len(sample.ref) // 2
    groups = [
        ("low", sample.ref.select(half), sample.gen.select(half)),
        ("high", sample.ref.select(~half), sample.gen),
    ]
    fig = plots.profiles_per_condition_figure(groups)
    axes = fig.axes
    assert len(axes) == 4  # one row per group, no ratio panels
    assert fig.get_suptitle() == "Mean profiles per condition bin: Geant4 vs generated"
    showers = [
        (sample.ref_showers[half], sample.gen_showers[half]),
        (sample.ref_showers[~half], sample.gen_showers),
    ]
    for row, (label, (ref_showers, gen_showers)) in enumerate(
        zip(["low", "high"], showers, strict=True)
    ):
        ref_z, ref_r = expected_profiles(ref_showers, sample.binning)
        gen_z, gen_r = expected_profiles(gen_showers, sample.binning)
        main_z, main_r = axes[2 * row], axes[2 * row + 1]
        assert main_z.get_title().startswith(f"{label}: longitudinal, S=")
        assert main_r.get_title().startswith(f"{label}: radial, S=")
        assert stairs(main_z)["Geant4"].get_data().values == pytest.approx(ref_z)
        assert stairs(main_z)["generated"].get_data().values == pytest.approx(gen_z)
        assert stairs(main_r)["Geant4"].get_data().values == pytest.approx(ref_r)
        assert stairs(main_r)["generated"].get_data().values == pytest.approx(gen_r)
        assert (main_z.get_xlabel(), main_r.get_xlabel()) == ("layer", "r [mm]")
    assert legends(fig) == [["Geant4", "generated"]]


# ----------------------------------------------------------------------------------------------
# Whole showers


def mesh_values(ax: Axes) -> np.ndarray:
    """The colour values of the one image of ``ax``, masked cells as NaN, (n_r, n_layers)."""
    (mesh,) = ax.collections
    return np.ma.filled(np.ma.masked_invalid(mesh.get_array()).astype(np.float64), np.nan)


def positive_or_nan(grid: np.ndarray) -> np.ndarray:
    return np.where(grid > 0, grid, np.nan)


def test_average_shower(sample: Sample) -> None:
    binning = sample.binning
    ref_mean, gen_mean = sample.ref_showers.mean(axis=0), sample.gen_showers.mean(axis=0)
    fig = showerplots.average_shower_figure(ref_mean, gen_mean, binning)
    if binning.is_regular:
        ref_grid, gen_grid = rz_grid(ref_mean, binning), rz_grid(gen_mean, binning)  # (L, n_r)
        by_title = {ax.get_title().split(",")[0]: ax for ax in visible_axes(fig)}
        assert list(by_title) == [
            "Geant4: mean energy",
            "generated: mean energy",
            "ratio generated / Geant4 (clipped to [0.5",
            "mean energy per layer",
        ]
        ref_ax, gen_ax, ratio_ax, layer_ax = by_title.values()
        for ax, grid in ((ref_ax, ref_grid), (gen_ax, gen_grid)):
            np.testing.assert_allclose(mesh_values(ax), positive_or_nan(grid.T), rtol=1e-12)
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("layer", "r [mm]")
        # one colour scale for both samples, 6 decades deep
        norm = ref_ax.collections[0].norm
        assert gen_ax.collections[0].norm is norm
        assert norm.vmax == pytest.approx(max(ref_grid.max(), gen_grid.max()))
        assert norm.vmin == pytest.approx(max(ref_grid[ref_grid > 0].min(), norm.vmax * 1e-6))
        ratio = np.clip(ratio_or_nan(gen_grid, ref_grid), 0.5, 2.0)
        np.testing.assert_allclose(mesh_values(ratio_ax), ratio.T, rtol=1e-12)
        # a log colour scale from 0.5 to 2: a factor 2 up and down look equally strong
        norm = ratio_ax.collections[0].norm
        assert (type(norm).__name__, norm.vmin, norm.vmax) == ("LogNorm", 0.5, 2.0)
        assert_pair(
            layer_ax,
            ref_grid.sum(axis=1),
            gen_grid.sum(axis=1),
            np.arange(binning.n_layers + 1) - 0.5,
        )
        assert_title_s(layer_ax, separation_power(ref_grid.sum(axis=1), gen_grid.sum(axis=1)))
        colour_bars = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert colour_bars == ["mean energy [MeV]", "mean energy [MeV]", "generated / Geant4"]
        assert fig.get_suptitle() == "Average shower"
    else:
        axes = visible_axes(fig)
        assert len(axes) == len(binning.readout_layers)
        for ax, layer in zip(axes, binning.readout_layers, strict=True):
            ref_r = radial_energies(ref_mean[None], binning, layer)[0]
            gen_r = radial_energies(gen_mean[None], binning, layer)[0]
            assert ax.get_title().startswith(f"layer {layer}, S=")
            assert_pair(ax, ref_r, gen_r, np.asarray(binning.layers[layer].r_edges))
            assert_title_s(ax, separation_power(ref_r, gen_r))
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("r [mm]", "mean energy [MeV]")
        assert fig.get_suptitle().startswith("Average shower: mean energy per radial bin")
    assert legends(fig) == [["Geant4", "generated"]]


def test_average_shower_ratio_is_clipped_and_blank_without_geant4() -> None:
    binning = Binning.regular(3, 2, 2, 1.0)  # voxel = (layer * 2 + alpha) * 2 + r
    ref = np.ones(binning.n_voxels)
    ref[[9, 11]] = 0.0  # layer 2, r bin 1, both alpha bins: no Geant4 energy
    gen = ref * np.repeat([4.0, 0.25, 1.5], 4)  # per layer: x4, x1/4, x1.5
    gen[[9, 11]] = 1.0
    fig = showerplots.average_shower_figure(ref, gen, binning)
    (ratio_ax,) = (ax for ax in fig.axes if ax.get_title().startswith("ratio"))
    expected = np.array([[2.0, 2.0], [0.5, 0.5], [1.5, np.nan]])  # (layer, r), clipped
    np.testing.assert_allclose(mesh_values(ratio_ax), expected.T)
    assert ratio_ax.get_facecolor() == pytest.approx((0.8, 0.8, 0.8, 1.0))  # grey: no Geant4


def test_average_shower_rejects_wrong_length(sample: Sample) -> None:
    with pytest.raises(DataError):
        showerplots.average_shower_figure(np.ones(3), np.ones(3), sample.binning)


def energy_in_title(title: str) -> float:
    """MeV from a panel title ending in ``= 1.23 GeV`` or ``= 456 MeV``."""
    match = re.search(r"= ([0-9.e+-]+) (GeV|MeV)$", title)
    assert match, title
    return float(match.group(1)) * (1000.0 if match.group(2) == "GeV" else 1.0)


def test_showers(sample: Sample) -> None:
    binning = sample.binning
    showers = np.concatenate([sample.ref_showers[:3], sample.gen_showers[:3]])
    showers[-1] = 0.0  # an empty shower must not break the log colour scale
    titles = [f"Geant4 {i}" for i in range(3)] + [f"generated {i}" for i in range(3)]
    fig = showerplots.showers_figure(showers, binning, titles, suptitle="x")
    assert fig.get_suptitle() == "x"
    axes = visible_axes(fig)
    assert len(axes) == 6
    for ax, shower, title in zip(axes, showers, titles, strict=True):
        assert ax.get_title().startswith(f"{title}\n")
        assert energy_in_title(ax.get_title()) == pytest.approx(shower.sum(), rel=5e-3, abs=1e-9)
    assert texts(fig).count("empty shower") == 1
    assert "empty shower" in [t.get_text() for t in axes[-1].texts]
    for ax, shower in zip(axes[:-1], showers[:-1], strict=True):
        if binning.is_regular:  # energy per (layer, r) on its own log colour scale
            grid = rz_grid(shower, binning)
            np.testing.assert_allclose(mesh_values(ax), positive_or_nan(grid.T), rtol=1e-12)
            assert ax.collections[0].norm.vmax == pytest.approx(grid.max())
        else:  # bars of the non-empty r bins, layer after layer
            expected = np.concatenate(
                [radial_energies(shower[None], binning, i)[0] for i in binning.readout_layers]
            )
            heights = [p.get_height() for p in ax.patches]
            np.testing.assert_allclose(heights, expected[expected > 0], rtol=1e-12)
            labels = [t.get_text() for t in ax.get_xticklabels()]
            assert labels == [f"L{i}" for i in binning.readout_layers]
            assert ax.get_yscale() == "log"


def test_showers_rejects_too_many(sample: Sample) -> None:
    showers = sample.ref_showers[:9]
    with pytest.raises(DataError):
        showerplots.showers_figure(showers, sample.binning, ["a"] * 9)


def test_anomaly_scores() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(-0.45, 0.03, 500)
    gen = np.concatenate([rng.normal(-0.45, 0.03, 450), rng.normal(-0.6, 0.02, 50)])
    fig = showerplots.anomaly_scores_figure(ref, np.concatenate([gen, [np.nan]]))
    (ax,) = fig.axes
    both = np.concatenate([ref, gen])
    edges = np.linspace(both.min(), both.max(), 61)
    assert_pair(ax, unit(folded_histogram(ref, edges)), unit(folded_histogram(gen, edges)), edges)
    cut = np.quantile(ref, 0.01)
    (line,) = (line for line in ax.lines if line.get_label() == "Geant4 1 % quantile")
    np.testing.assert_allclose(line.get_xdata(), [cut, cut])
    below = np.mean(gen < cut)
    assert below >= 0.1  # the 50 outliers at -0.6, 5 sigma below Geant4
    (note,) = texts(fig)
    assert note.startswith(f"{below:.1%} of generated showers below")
    assert ax.get_title() == "Isolation-Forest normality score"
    assert ax.get_ylabel() == "fraction of showers"
    assert legend_labels(ax) == ["Geant4", "generated", "Geant4 1 % quantile"]


# ----------------------------------------------------------------------------------------------
# Missing data


def test_empty_and_nan_inputs(sample: Sample) -> None:
    """Empty samples and all-NaN features give 'no data' panels, not exceptions."""
    ref = sample.ref
    empty = ref.select(np.zeros(len(ref), dtype=bool))
    edges = {k: v for k, v in sample.edges.items() if k.startswith(("e_ratio", "ec_eta"))}
    figures = dict(plots.feature_histogram_figures(ref, empty, edges, {}))
    assert list(figures) == ["e_ratio", "ec_eta"]
    assert figures["e_ratio"].axes[0].get_title() == "deposited / incident energy, S=n/a"
    binning = sample.binning
    zeros = np.zeros(binning.n_voxels)
    empty_figures = [
        *figures.values(),
        plots.profiles_figure(ref, empty),
        plots.profiles_per_condition_figure([]),
        plots.separation_summary_figure({}, None),
        plots.voxel_spectrum_figure(np.zeros(10), np.zeros(10), np.logspace(-2, 2, 11), 0.0),
        showerplots.anomaly_scores_figure(np.full(5, np.nan), np.zeros(0)),
        showerplots.average_shower_figure(zeros, zeros, binning),
        showerplots.showers_figure(np.zeros((0, binning.n_voxels)), binning, []),
    ]
    for fig in empty_figures:
        assert step_patches(fig) == []
        notes = texts(fig)
        assert notes
        assert set(notes) <= {"no data", "no condition bins", "no separation powers", "no showers"}
        # each note sits in a visible panel; a ratio panel without data is hidden
        assert all(ax.get_visible() for ax in fig.axes if ax.texts)
        assert all(not ax.get_visible() for ax in fig.axes if not ax.texts and not ax.patches)


# ----------------------------------------------------------------------------------------------
# Writing the PNGs


def test_plot_functions_write_their_figures(tmp_path: Path) -> None:
    """Each ``plot_*`` function writes the figure of its ``*_figure`` function (same pixels)."""
    sample = make_sample("dataset-1")
    binning = sample.binning
    edges = {k: v for k, v in sample.edges.items() if k.startswith(("e_ratio", "ec_eta"))}
    paths = plots.plot_feature_histograms(
        sample.ref, sample.gen, edges, sample.separation, tmp_path / "new" / "dir"
    )
    figures = plots.feature_histogram_figures(sample.ref, sample.gen, edges, sample.separation)
    assert [path.name for path in paths] == ["e_ratio.png", "ec_eta.png"]
    for path, (_, fig) in zip(paths, figures, strict=True):
        assert png_size(path) == pixel_size(fig)

    mean_ref, mean_gen = sample.ref_showers.mean(axis=0), sample.gen_showers.mean(axis=0)
    counts = np.arange(1.0, 11.0)
    voxel_edges = np.logspace(-2, 2, 11)
    showers, titles = sample.ref_showers[:5], ["a"] * 5
    separation = {k: v for k, v in sample.separation.items() if k.startswith(("e_", "ec_r"))}
    cases = [
        (
            plots.plot_separation_summary(separation, None, tmp_path / "s.png"),
            plots.separation_summary_figure(separation, None),
        ),
        (
            plots.plot_voxel_spectrum(counts, counts, voxel_edges, 0.0, tmp_path / "v.png"),
            plots.voxel_spectrum_figure(counts, counts, voxel_edges, 0.0),
        ),
        (
            plots.plot_profiles(sample.ref, sample.gen, tmp_path / "p.png"),
            plots.profiles_figure(sample.ref, sample.gen),
        ),
        (
            plots.plot_profiles_per_condition(
                [("a", sample.ref, sample.gen)] * 3, tmp_path / "c.png"
            ),
            plots.profiles_per_condition_figure([("a", sample.ref, sample.gen)] * 3),
        ),
        (
            showerplots.plot_average_shower(mean_ref, mean_gen, binning, tmp_path / "a.png"),
            showerplots.average_shower_figure(mean_ref, mean_gen, binning),
        ),
        (
            showerplots.plot_showers(showers, binning, titles, tmp_path / "sh.png"),
            showerplots.showers_figure(showers, binning, titles),
        ),
        (
            showerplots.plot_anomaly_scores(counts, counts, tmp_path / "iso.png"),
            showerplots.anomaly_scores_figure(counts, counts),
        ),
    ]
    for path, fig in cases:
        assert png_size(path) == pixel_size(fig)
    assert len({pixel_size(fig) for _, fig in cases}) > 1  # the sizes tell the figures apart


def test_unwritable_plot_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    fig = plots.separation_summary_figure({}, None)
    with pytest.raises(OutputError, match="cannot write plot"):
        plots.save_figure(fig, tmp_path / "file" / "plot.png")


def test_import_does_not_load_pyplot() -> None:
    code = "import caloforge.evaluate.plots, sys; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
