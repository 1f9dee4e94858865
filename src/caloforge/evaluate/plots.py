"""Comparison plots of generated showers against a Geant4 reference, CaloChallenge style.

Each ``*_figure`` function draws one figure (one per feature family for
:func:`feature_histogram_figures`) and returns it, so that its content can be inspected; the
matching ``plot_*`` function writes it as a PNG to the path it is given and returns the path(s)
written. Geant4 is the filled light histogram, the generated sample the step line, and each
panel prints its separation power S (eq. 15 of arXiv:2009.03796, :func:`caloforge.evaluate.
metrics.separation_power`). A panel without data shows a note instead of raising, so that one
empty feature does not cost the whole report.

matplotlib is imported only when a plot is drawn. The figures are plain
:class:`matplotlib.figure.Figure` objects outside pyplot's registry: nothing needs closing, no
display or backend choice is involved (PNGs are written by Agg), and importing the library does
not pay for pyplot.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from caloforge.errors import OutputError
from caloforge.evaluate.features import HighLevelFeatures
from caloforge.evaluate.metrics import histogram, separation_power

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure
    from matplotlib.gridspec import SubplotSpec
    from matplotlib.typing import RcKeyType

_DPI = 100  # ~30 report PNGs stay a few MB
_RC: dict[RcKeyType, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "legend.fontsize": 7,
    "legend.frameon": False,
}
_REF_FILL = "#b9d3ea"  # Geant4: filled, light
_GEN_COLOUR = "#c0392b"  # generated: step line
_BAND_COLOUR = "0.85"  # Geant4 statistical uncertainty in ratio panels
_RATIO_LIMITS = (0.5, 1.5)
_MAX_LAYER_PANELS = 9
_MAX_SHOWERS = 8
_S_FLOOR = 1e-5  # S = 0 cannot sit on a log axis; smaller values are drawn here

# Per-layer feature families of HighLevelFeatures.named(), in report order, with axis labels.
_FAMILIES: dict[str, str] = {
    "e_layer": "energy in layer [MeV]",
    "ec_eta": r"centre of energy in $\eta$ [mm]",
    "ec_phi": r"centre of energy in $\phi$ [mm]",
    "width_eta": r"width in $\eta$ [mm]",
    "width_phi": r"width in $\phi$ [mm]",
    "ec_r": "radial centre of energy [mm]",
    "width_r": "radial width [mm]",
    "sparsity": "sparsity (fraction of empty voxels)",
}
_SCALAR_LABELS: dict[str, str] = {
    "e_ratio": r"$E_\mathrm{dep} / E_\mathrm{inc}$",
    "voxel_spectrum": "voxel energies",
    "profile_z": "longitudinal profile",
    "profile_r": "radial profile",
}

# ----------------------------------------------------------------------------------------------
# Figure plumbing


@contextmanager
def _figure(figsize: tuple[float, float]) -> Iterator[Figure]:
    """A new figure, to be drawn inside the block: its artists take the report's font sizes
    from the rc settings when they are made (:func:`save_figure` sets them again for the
    tick labels, made when the figure is drawn)."""
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(_RC):
        yield Figure(figsize=figsize, layout="constrained")


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG (its directory created if missing) and return ``path``.

    Raises:
        OutputError: if the file cannot be written.
    """
    import matplotlib as mpl

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with mpl.rc_context(_RC):
            fig.savefig(path, dpi=_DPI)
    except OSError as exc:
        raise OutputError(f"cannot write plot {path}: {exc.strerror or exc}") from None
    return path


def _no_data(ax: Axes, what: str = "no data") -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(ax: Axes, loc: Literal["best", "upper left", "upper right"]) -> None:
    """A legend, unless the panel drew nothing labelled (a 'no data' panel)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=loc)


def _fmt_s(value: float | None) -> str:
    return "S=n/a" if value is None or not math.isfinite(value) else f"S={value:.3g}"


def _fmt_energy(mev: float) -> str:
    return f"{mev / 1000.0:.3g} GeV" if abs(mev) >= 1000.0 else f"{mev:.3g} MeV"


def _split_name(name: str) -> tuple[str, int] | None:
    """``"ec_eta_12"`` -> ``("ec_eta", 12)``; None for a scalar name such as ``"profile_z"``."""
    family, _, tail = name.rpartition("_")
    return (family, int(tail)) if family and tail.isdigit() else None


def _group_by_family(names: Collection[str]) -> dict[str, list[int]]:
    """Per-layer names grouped as family -> sorted layers, known families first."""
    groups: dict[str, list[int]] = {}
    for name in names:
        parsed = _split_name(name)
        if parsed is not None:
            groups.setdefault(parsed[0], []).append(parsed[1])
    order = [f for f in _FAMILIES if f in groups] + sorted(set(groups) - set(_FAMILIES))
    return {family: sorted(groups[family]) for family in order}


def _evenly_spaced(items: Sequence[int], k: int) -> list[int]:
    """Up to ``k`` items spread from the first to the last."""
    if len(items) <= k:
        return list(items)
    picks = np.unique(np.round(np.linspace(0, len(items) - 1, k)).astype(int))
    return [items[i] for i in picks]


def _has_data(values: np.ndarray) -> bool:
    return bool(np.isfinite(np.asarray(values, dtype=np.float64)).any())


def _unit_sum(counts: np.ndarray) -> np.ndarray | None:
    """``counts`` normalised to unit sum, or None if there is nothing to normalise."""
    counts = np.nan_to_num(np.asarray(counts, dtype=np.float64), nan=0.0)
    total = counts.sum()
    return counts / total if total > 0 else None


def _ratio_axes(fig: Figure, spec: SubplotSpec) -> tuple[Axes, Axes]:
    """A main panel and a ratio panel under it, sharing x, in the grid cell ``spec``."""
    sub = spec.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.0)
    main = fig.add_subplot(sub[0])
    ratio = fig.add_subplot(sub[1], sharex=main)
    main.tick_params(which="both", labelbottom=False)
    return main, ratio


def _draw_pair(ax: Axes, ref: np.ndarray, gen: np.ndarray, edges: np.ndarray) -> None:
    ax.stairs(ref, edges, fill=True, color=_REF_FILL, label="Geant4")
    # baseline=None: no vertical drop at the ends, so the step line never hides the fill
    ax.stairs(gen, edges, baseline=None, color=_GEN_COLOUR, linewidth=1.2, label="generated")


def _draw_ratio(
    ax: Axes,
    ref: np.ndarray,
    gen: np.ndarray,
    edges: np.ndarray,
    *,
    ref_counts: np.ndarray | None = None,
) -> None:
    """generated / Geant4 per bin; with ``ref_counts``, the Geant4 Poisson band around 1."""
    if ref_counts is not None:
        rel = np.divide(
            1.0, np.sqrt(ref_counts), out=np.full(len(ref_counts), np.nan), where=ref_counts > 0
        )
        ax.stairs(1.0 + rel, edges, baseline=1.0 - rel, fill=True, color=_BAND_COLOUR)
    ax.axhline(1.0, color="0.5", linewidth=0.8)
    ratio = np.divide(gen, ref, out=np.full(len(ref), np.nan), where=ref > 0)
    ax.stairs(ratio, edges, baseline=None, color=_GEN_COLOUR, linewidth=1.0)
    ax.set_ylim(*_RATIO_LIMITS)
    ax.set_ylabel("gen. / Geant4")


def _log_y_floor(ax: Axes, *arrays: np.ndarray, decades: float = 8.0) -> None:
    """Log y axis from just under the smallest positive value, at most ``decades`` deep.

    The depth limit keeps a near-empty outer bin (1e-30 MeV) from squashing the rest.
    """
    ax.set_yscale("log")
    values = np.concatenate([np.ravel(a) for a in arrays])
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size:
        top = 2.0 * float(positive.max())
        ax.set_ylim(max(0.5 * float(positive.min()), top * 10.0**-decades), top)


def _plain_log_ticks(axis: Axis, lo: float, hi: float) -> None:
    """Plain-number labels (``300``, ``0.05``) on a log axis spanning under two decades.

    matplotlib labels the minor ticks of such an axis in scientific notation, which
    overlaps in small panels; here the minor ticks at 2 and 5 (and 3 on a short axis) are
    labelled.
    """
    from matplotlib.ticker import FuncFormatter

    if not (lo > 0 and hi / lo < 100):
        return
    labelled = (2, 3, 5) if hi / lo < 3 else (2, 5)

    def minor(value: float, _: int) -> str:
        coefficient = round(value / 10.0 ** math.floor(math.log10(value) + 1e-9))
        return f"{value:g}" if coefficient in labelled else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _set_r_scale(ax: Axes, edges: np.ndarray) -> None:
    """Symlog x for radial edges spanning decades (CaloChallenge dataset 1), linear otherwise.

    Linear up to the first edge past 0 keeps the innermost bins, where most energy sits,
    as visible as the wide outer ones.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if len(edges) > 2 and edges[0] == 0 and edges[-1] / edges[1] > 20:
        ax.set_xscale("symlog", linthresh=float(edges[1]), linscale=0.5)
        # 0 and the decades past the linear part; a tick inside it would crowd the 0
        first, last = math.ceil(math.log10(edges[1])), math.floor(math.log10(edges[-1]))
        ticks = [0.0] + [10.0**k for k in range(first, last + 1)]
        ax.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
    ax.set_xlim(float(edges[0]), float(edges[-1]))


def _layer_edges(ax: Axes, layers: Sequence[int]) -> np.ndarray:
    """Bin edges on which to draw per-layer values.

    Contiguous layer ids are drawn at their ids; otherwise (dataset 1 skips unread layers)
    each read-out layer gets one slot, labelled with its id.
    """
    ids = np.asarray(layers, dtype=np.int64)
    if ids.size and np.array_equal(ids, np.arange(ids[0], ids[0] + ids.size)):
        return np.arange(ids[0], ids[-1] + 2) - 0.5
    ax.set_xticks(np.arange(ids.size), [str(i) for i in ids])
    return np.arange(ids.size + 1) - 0.5


# ----------------------------------------------------------------------------------------------
# Feature histograms and separation powers


def _histogram_panel(
    main: Axes,
    ratio: Axes,
    ref_values: np.ndarray,
    gen_values: np.ndarray,
    edges: np.ndarray,
    *,
    log_x: bool,
    xlabel: str,
    title: str,
) -> None:
    """Unit-normalised histograms of one feature with their ratio panel."""
    edges = np.asarray(edges, dtype=np.float64)
    ref_counts = histogram(ref_values, edges)
    gen_counts = histogram(gen_values, edges)
    ref, gen = _unit_sum(ref_counts), _unit_sum(gen_counts)
    main.set_title(title)
    if ref is None or gen is None or not np.isfinite(edges).all():
        _no_data(main)
        ratio.set_visible(False)
        return
    _draw_pair(main, ref, gen, edges)
    _draw_ratio(ratio, ref, gen, edges, ref_counts=ref_counts)
    if log_x and edges[0] > 0:
        main.set_xscale("log")
        _plain_log_ticks(main.xaxis, float(edges[0]), float(edges[-1]))
    main.set_ylabel("fraction of showers")
    ratio.set_xlabel(xlabel)


def feature_histogram_figures(
    ref: HighLevelFeatures,
    gen: HighLevelFeatures,
    edges: Mapping[str, np.ndarray],
    separation: Mapping[str, float],
    *,
    log_x: Collection[str] = (),
) -> Iterator[tuple[str, Figure]]:
    """Histograms of the high-level features, Geant4 against generated.

    Draws ``e_ratio`` and, per per-layer family with entries in ``edges`` (``e_layer``,
    ``ec_eta``, ...), one figure with up to 9 evenly spaced layers, each panel titled
    ``layer L, S=...`` over a generated/Geant4 ratio panel (grey: Geant4 Poisson error).
    The histograms are normalised to unit sum.

    Args:
        ref, gen: features of the Geant4 and generated showers.
        edges: bin edges per feature name of :meth:`HighLevelFeatures.named`, shape (B + 1,).
        separation: separation power per feature name.
        log_x: names drawn on a log x axis (the energies).

    Yields:
        (name, figure): ``"e_ratio"`` first, then the families; one figure at a time, so that
        a caller that saves each one keeps only one in memory.
    """
    ref_named, gen_named = ref.named(), gen.named()
    if "e_ratio" in edges:
        with _figure((4.5, 4.2)) as fig:
            main, ratio = _ratio_axes(fig, fig.add_gridspec(1, 1)[0])
            _histogram_panel(
                main,
                ratio,
                ref_named.get("e_ratio", np.zeros(0)),
                gen_named.get("e_ratio", np.zeros(0)),
                edges["e_ratio"],
                log_x="e_ratio" in log_x,
                xlabel=_SCALAR_LABELS["e_ratio"],
                title=f"deposited / incident energy, {_fmt_s(separation.get('e_ratio'))}",
            )
            _legend(main, "upper left")
        yield "e_ratio", fig

    for family, layers in _group_by_family(edges).items():
        names = {layer: f"{family}_{layer}" for layer in layers}
        usable = [
            layer
            for layer, name in names.items()
            if _has_data(ref_named.get(name, np.zeros(0)))
            or _has_data(gen_named.get(name, np.zeros(0)))
        ]
        shown = _evenly_spaced(usable, _MAX_LAYER_PANELS)
        if not shown:
            continue
        ncols = min(3, len(shown))
        nrows = math.ceil(len(shown) / ncols)
        with _figure((3.6 * ncols, 3.1 * nrows + 0.3)) as fig:
            grid = fig.add_gridspec(nrows, ncols)
            first_drawn: Axes | None = None
            for i, layer in enumerate(shown):
                name = names[layer]
                main, ratio = _ratio_axes(fig, grid[i // ncols, i % ncols])
                _histogram_panel(
                    main,
                    ratio,
                    ref_named.get(name, np.zeros(0)),
                    gen_named.get(name, np.zeros(0)),
                    edges[name],
                    log_x=name in log_x,
                    xlabel=_FAMILIES.get(family, family),
                    title=f"layer {layer}, {_fmt_s(separation.get(name))}",
                )
                if first_drawn is None and main.get_legend_handles_labels()[0]:
                    first_drawn = main
            if first_drawn is not None:  # one legend per figure, on the first panel with data
                _legend(first_drawn, "upper left")
            fig.suptitle(f"{_FAMILIES.get(family, family)}: Geant4 vs generated")
        yield family, fig


def plot_feature_histograms(
    ref: HighLevelFeatures,
    gen: HighLevelFeatures,
    edges: Mapping[str, np.ndarray],
    separation: Mapping[str, float],
    out_dir: Path,
    *,
    log_x: Collection[str] = (),
) -> list[Path]:
    """Write the figures of :func:`feature_histogram_figures` as ``out_dir/<name>.png``.

    Args:
        ref, gen, edges, separation, log_x: as for :func:`feature_histogram_figures`.
        out_dir: directory of the PNGs (created if missing).

    Returns:
        The PNGs written, ``e_ratio.png`` first.
    """
    out_dir = Path(out_dir)
    return [
        save_figure(fig, out_dir / f"{name}.png")
        for name, fig in feature_histogram_figures(ref, gen, edges, separation, log_x=log_x)
    ]


def separation_summary_figure(
    separation: Mapping[str, float], baseline: Mapping[str, float] | None
) -> Figure:
    """Separation power per layer for every feature family, and the scalar ones as bars.

    The baseline (Geant4 against an independent Geant4 sample) shows the statistical floor:
    a generated value near it is as good as the sample sizes can tell. Values below 1e-5
    (including 0) are drawn at 1e-5 on the log axes.

    Args:
        separation: separation power per feature name; ``<family>_<layer>`` names are
            per-layer, any other name (``e_ratio``, ``voxel_spectrum``, ...) is a scalar.
        baseline: the same names for Geant4 vs Geant4, or None.

    Returns:
        The figure: one panel per family (in :data:`_FAMILIES` order), then the scalars' panel.
    """
    separation = {name: float(s) for name, s in separation.items() if math.isfinite(s)}
    baseline = baseline or {}
    families = _group_by_family(separation)
    scalars = [name for name in separation if _split_name(name) is None]
    n_panels = len(families) + (1 if scalars else 0)
    ncols = min(3, max(n_panels, 1))
    nrows = max(math.ceil(n_panels / ncols), 1)
    with _figure((3.6 * ncols, 2.6 * nrows + 0.3)) as fig:
        from matplotlib.ticker import MaxNLocator

        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        if n_panels == 0:
            _no_data(axes[0], "no separation powers")
        for ax, (family, layers) in zip(axes, families.items(), strict=False):
            values = np.array([separation[f"{family}_{layer}"] for layer in layers], dtype=float)
            ax.plot(
                layers,
                np.clip(values, _S_FLOOR, None),
                "o-",
                color=_GEN_COLOUR,
                markersize=2.5,
                linewidth=1.0,
                label="generated vs Geant4",
            )
            base = np.array([baseline.get(f"{family}_{layer}", np.nan) for layer in layers])
            if _has_data(base):
                ax.plot(
                    layers,
                    np.clip(base, _S_FLOOR, None),
                    "--",
                    color="0.5",
                    linewidth=1.0,
                    label="Geant4 vs Geant4",
                )
            ax.set_yscale("log")
            ax.set_title(_FAMILIES.get(family, family).split(" [")[0])  # S has no unit
            ax.set_xlabel("layer")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            drawn = np.clip(np.concatenate([values, base]), _S_FLOOR, None)
            drawn = drawn[np.isfinite(drawn)]
            _plain_log_ticks(ax.yaxis, float(drawn.min()), float(drawn.max()))
            ax.set_ylabel("separation power S")
        if families:
            _legend(axes[0], "best")
        if scalars:
            ax = axes[len(families)]
            values = np.clip([separation[name] for name in scalars], _S_FLOOR, None)
            rows = np.arange(len(scalars))
            ax.barh(rows, values, color=_GEN_COLOUR, alpha=0.8, label="generated vs Geant4")
            base = np.array([baseline.get(name, np.nan) for name in scalars], dtype=float)
            if _has_data(base):
                ax.plot(
                    np.clip(base, _S_FLOOR, None),
                    rows,
                    "|",
                    color="0.3",
                    markersize=12,
                    label="Geant4 vs Geant4",
                )
                ax.set_ylim(-0.6, len(scalars) + 0.8)  # headroom for the legend
                _legend(ax, "upper right")
            for row, name, value in zip(rows, scalars, values, strict=True):
                ax.text(value * 1.3, row, _fmt_s(separation[name]), va="center", fontsize=7)
            ax.set_yticks(rows, [_SCALAR_LABELS.get(name, name) for name in scalars])
            ax.set_xscale("log")
            top = float(np.nanmax(np.concatenate([values, base])))
            ax.set_xlim(_S_FLOOR, min(2.0, top * 50.0))  # room for the printed values
            ax.set_xlabel("separation power S")
            ax.set_title("whole-shower distributions")
        for ax in axes[n_panels:]:
            if n_panels:
                ax.set_visible(False)
        fig.suptitle("Separation power, generated vs Geant4 (0 = identical, 1 = disjoint)")
    return fig


def plot_separation_summary(
    separation: Mapping[str, float], baseline: Mapping[str, float] | None, path: Path
) -> Path:
    """Write :func:`separation_summary_figure` to the PNG ``path`` and return ``path``."""
    return save_figure(separation_summary_figure(separation, baseline), path)


def voxel_spectrum_figure(
    ref_counts: np.ndarray, gen_counts: np.ndarray, edges: np.ndarray, separation: float
) -> Figure:
    """Distribution of voxel energies, unit-normalised, log-log, with a ratio panel.

    Args:
        ref_counts, gen_counts: voxel counts per energy bin, shape (B,).
        edges: the energy bin edges in MeV, shape (B + 1,), positive for the log axis.
        separation: separation power of the two histograms.

    Returns:
        The figure: the histograms' panel over the ratio panel.
    """
    edges = np.asarray(edges, dtype=np.float64)
    ref_counts = np.asarray(ref_counts, dtype=np.float64)
    ref, gen = _unit_sum(ref_counts), _unit_sum(gen_counts)
    with _figure((5.0, 4.4)) as fig:
        main, ratio = _ratio_axes(fig, fig.add_gridspec(1, 1)[0])
        main.set_title(f"voxel energy spectrum, {_fmt_s(separation)}")
        if ref is None or gen is None or len(ref) != len(edges) - 1 or len(gen) != len(ref):
            _no_data(main)
            ratio.set_visible(False)
        else:
            _draw_pair(main, ref, gen, edges)
            _draw_ratio(ratio, ref, gen, edges, ref_counts=np.nan_to_num(ref_counts))
            if edges[0] > 0:
                main.set_xscale("log")
            _log_y_floor(main, ref, gen)
            main.set_ylabel("fraction of voxels")
            ratio.set_xlabel("voxel energy [MeV]")
            _legend(main, "best")
    return fig


def plot_voxel_spectrum(
    ref_counts: np.ndarray,
    gen_counts: np.ndarray,
    edges: np.ndarray,
    separation: float,
    path: Path,
) -> Path:
    """Write :func:`voxel_spectrum_figure` to the PNG ``path`` and return ``path``."""
    return save_figure(voxel_spectrum_figure(ref_counts, gen_counts, edges, separation), path)


# ----------------------------------------------------------------------------------------------
# Profiles


def _profile_panel(
    main: Axes,
    ratio: Axes | None,
    ref: np.ndarray,
    gen: np.ndarray,
    edges: np.ndarray,
    *,
    title: str,
) -> bool:
    """Two mean profiles on ``edges``, log y, with S in the title; False if there is no data."""
    ref = np.asarray(ref, dtype=np.float64)
    gen = np.asarray(gen, dtype=np.float64)
    if not (ref.size and _has_data(ref) and _has_data(gen) and ref.shape == gen.shape):
        main.set_title(title)
        _no_data(main)
        if ratio is not None:
            ratio.set_visible(False)
        return False
    main.set_title(f"{title}, {_fmt_s(separation_power(np.nan_to_num(ref), np.nan_to_num(gen)))}")
    _draw_pair(main, ref, gen, edges)
    _log_y_floor(main, ref, gen)
    if ratio is not None:
        _draw_ratio(ratio, ref, gen, edges)
    return True


def _draw_profiles(
    axes_z: tuple[Axes, Axes | None],
    axes_r: tuple[Axes, Axes | None],
    ref: HighLevelFeatures,
    gen: HighLevelFeatures,
    *,
    label: str = "",
) -> None:
    """Longitudinal and radial mean profiles into (main, ratio-or-None) axes pairs."""
    prefix = f"{label}: " if label else ""
    empty = len(ref) == 0 or len(gen) == 0
    main_z, ratio_z = axes_z
    edges_z = _layer_edges(main_z, ref.layers)
    nothing = np.zeros(0)
    ref_z, gen_z = (nothing, nothing) if empty else (ref.profile_z, gen.profile_z)
    if _profile_panel(main_z, ratio_z, ref_z, gen_z, edges_z, title=f"{prefix}longitudinal"):
        main_z.set_ylabel("mean energy per layer [MeV]")
        (ratio_z or main_z).set_xlabel("layer")
    main_r, ratio_r = axes_r
    edges_r = np.asarray(ref.r_edges, dtype=np.float64)
    ref_r, gen_r = (nothing, nothing) if empty else (ref.profile_r, gen.profile_r)
    if _profile_panel(main_r, ratio_r, ref_r, gen_r, edges_r, title=f"{prefix}radial"):
        _set_r_scale(main_r, edges_r)
        main_r.set_ylabel("mean energy per radial bin [MeV]")
        (ratio_r or main_r).set_xlabel("r [mm]")


def profiles_figure(ref: HighLevelFeatures, gen: HighLevelFeatures, *, title: str = "") -> Figure:
    """Mean longitudinal (per read-out layer) and radial profiles, with ratio panels.

    Args:
        ref, gen: features of the Geant4 and generated showers.
        title: figure title (e.g. the dataset and condition range).

    Returns:
        The figure: longitudinal and radial panels, each over its ratio panel.
    """
    with _figure((9.0, 4.2)) as fig:
        grid = fig.add_gridspec(1, 2)
        axes_z = _ratio_axes(fig, grid[0])
        axes_r = _ratio_axes(fig, grid[1])
        _draw_profiles(axes_z, axes_r, ref, gen)
        _legend(axes_z[0], "best")
        if title:
            fig.suptitle(title)
    return fig


def plot_profiles(
    ref: HighLevelFeatures, gen: HighLevelFeatures, path: Path, *, title: str = ""
) -> Path:
    """Write :func:`profiles_figure` to the PNG ``path`` and return ``path``."""
    return save_figure(profiles_figure(ref, gen, title=title), path)


def profiles_per_condition_figure(
    groups: Sequence[tuple[str, HighLevelFeatures, HighLevelFeatures]],
) -> Figure:
    """Longitudinal and radial profiles, one row per condition bin (e.g. incident energy).

    Args:
        groups: (label, Geant4 features, generated features) per condition bin.

    Returns:
        The figure: a longitudinal and a radial panel per group, without ratio panels.
    """
    nrows = max(len(groups), 1)
    with _figure((9.0, 2.5 * nrows + 0.4)) as fig:
        axes = fig.subplots(nrows, 2, squeeze=False)
        if not groups:
            _no_data(axes[0, 0], "no condition bins")
            axes[0, 1].set_visible(False)
        for row, (label, ref, gen) in enumerate(groups):
            _draw_profiles((axes[row, 0], None), (axes[row, 1], None), ref, gen, label=label)
        if groups:
            _legend(axes[0, 0], "best")
            fig.suptitle("Mean profiles per condition bin: Geant4 vs generated")
    return fig


def plot_profiles_per_condition(
    groups: Sequence[tuple[str, HighLevelFeatures, HighLevelFeatures]], path: Path
) -> Path:
    """Write :func:`profiles_per_condition_figure` to the PNG ``path`` and return ``path``."""
    return save_figure(profiles_per_condition_figure(groups), path)
