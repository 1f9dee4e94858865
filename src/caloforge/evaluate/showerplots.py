"""Drawings of whole showers: the average shower of each sample, individual showers, and the
anomaly scores that pick which generated showers to draw.

Same conventions as :mod:`caloforge.evaluate.plots`: a ``*_figure`` function returns one
figure, its ``plot_*`` function writes it as one PNG, Geant4 against the generated sample,
matplotlib imported only when drawing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from caloforge.errors import DataError
from caloforge.evaluate.metrics import histogram, separation_power
from caloforge.evaluate.plots import (
    _MAX_SHOWERS,
    _draw_pair,
    _figure,
    _fmt_energy,
    _fmt_s,
    _legend,
    _log_y_floor,
    _no_data,
    _set_r_scale,
    save_figure,
)
from caloforge.geometry.binning import Binning

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import QuadMesh
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure


def _check_showers(showers: np.ndarray, binning: Binning, what: str) -> np.ndarray:
    showers = np.asarray(showers, dtype=np.float64)
    if showers.shape[-1:] != (binning.n_voxels,):
        raise DataError(f"{what} has shape {showers.shape}, expected (..., {binning.n_voxels})")
    return showers


def _rz_grid(showers: np.ndarray, binning: Binning) -> np.ndarray:
    """Energy summed over alpha on a regular binning: (..., V) -> (..., n_layers, n_r)."""
    return binning.reshape(showers).sum(axis=-2)


def _radial_per_layer(shower: np.ndarray, binning: Binning, layer: int) -> np.ndarray:
    """Energy per r bin of one layer, summed over alpha: (V,) -> (n_r,)."""
    spec = binning.layers[layer]
    return shower[binning.layer_slices[layer]].reshape(spec.n_alpha, spec.n_r).sum(axis=0)


def _rz_image(
    ax: Axes, grid: np.ndarray, binning: Binning, norm: Normalize, *, cmap: str = "viridis"
) -> QuadMesh:
    """Draw a (n_layers, n_r) energy grid with layers on x and r in mm on y; <= 0 is blank."""
    n_layers, _, _ = binning.grid_shape
    x = np.arange(n_layers + 1) - 0.5
    y = np.asarray(binning.layers[0].r_edges)
    mesh = ax.pcolormesh(x, y, np.ma.masked_less_equal(grid.T, 0.0), norm=norm, cmap=cmap)
    ax.set_xlabel("layer")
    ax.set_ylabel("r [mm]")
    return mesh


def _log_norm(*arrays: np.ndarray, decades: float) -> LogNorm | None:
    """A LogNorm over the positive values, at most ``decades`` deep; None if none is positive."""
    from matplotlib.colors import LogNorm

    values = np.concatenate([np.ravel(a) for a in arrays])
    positive = values[np.isfinite(values) & (values > 0)]
    if not positive.size:
        return None
    vmax = float(positive.max())
    return LogNorm(vmin=max(float(positive.min()), vmax * 10.0**-decades), vmax=vmax)


def average_shower_figure(ref_mean: np.ndarray, gen_mean: np.ndarray, binning: Binning) -> Figure:
    """The average shower of each sample, as r-z images or per-layer radial profiles.

    Regular binning: Geant4 and generated mean energy per (layer, r) summed over alpha (log
    colour), their ratio (generated / Geant4, clipped to [0.5, 2], grey where Geant4 is 0),
    and the mean energy per layer. Irregular binning: one panel per read-out layer with the
    mean energy per r bin summed over alpha.

    Args:
        ref_mean, gen_mean: average showers in MeV, shape (V,).
        binning: their binning.

    Returns:
        The figure: 2 x 2 panels (regular), or one panel per read-out layer (irregular).

    Raises:
        DataError: if the showers do not have V voxels.
    """
    ref_mean = _check_showers(ref_mean, binning, "the Geant4 average shower").reshape(-1)
    gen_mean = _check_showers(gen_mean, binning, "the generated average shower").reshape(-1)
    if binning.is_regular:
        return _average_regular(ref_mean, gen_mean, binning)
    return _average_irregular(ref_mean, gen_mean, binning)


def plot_average_shower(
    ref_mean: np.ndarray, gen_mean: np.ndarray, binning: Binning, path: Path
) -> Path:
    """Write :func:`average_shower_figure` to the PNG ``path`` and return ``path``.

    Raises:
        DataError: if the showers do not have V voxels.
    """
    return save_figure(average_shower_figure(ref_mean, gen_mean, binning), path)


def _average_regular(ref: np.ndarray, gen: np.ndarray, binning: Binning) -> Figure:
    from matplotlib.colors import LogNorm

    ref_grid, gen_grid = _rz_grid(ref, binning), _rz_grid(gen, binning)  # (n_layers, n_r)
    with _figure((10.0, 7.0)) as fig:
        axes = fig.subplots(2, 2).ravel()
        norm = _log_norm(ref_grid, gen_grid, decades=6)
        if norm is None:
            for ax in axes:
                _no_data(ax)
            return fig
        for ax, grid, name in ((axes[0], ref_grid, "Geant4"), (axes[1], gen_grid, "generated")):
            mesh = _rz_image(ax, grid, binning, norm)
            fig.colorbar(mesh, ax=ax, label="mean energy [MeV]")
            ax.set_title(f"{name}: mean energy, summed over alpha")
        ratio = np.divide(
            gen_grid, ref_grid, out=np.full(ref_grid.shape, np.nan), where=ref_grid > 0
        )
        axes[2].set_facecolor("0.8")  # cells where Geant4 deposits nothing
        # log norm: a factor 2 too high and too low get opposite colours of equal strength
        mesh = _rz_image(
            axes[2], np.clip(ratio, 0.5, 2.0), binning, LogNorm(0.5, 2.0), cmap="RdBu_r"
        )
        bar = fig.colorbar(mesh, ax=axes[2], label="generated / Geant4")
        bar.set_ticks([0.5, 0.7, 1.0, 1.4, 2.0], labels=["0.5", "0.7", "1", "1.4", "2"])
        bar.minorticks_off()
        axes[2].set_title("ratio generated / Geant4 (clipped to [0.5, 2])")
        per_layer_ref, per_layer_gen = ref_grid.sum(axis=1), gen_grid.sum(axis=1)
        edges = np.arange(len(per_layer_ref) + 1) - 0.5
        axes[3].set_title(
            f"mean energy per layer, {_fmt_s(separation_power(per_layer_ref, per_layer_gen))}"
        )
        _draw_pair(axes[3], per_layer_ref, per_layer_gen, edges)
        _log_y_floor(axes[3], per_layer_ref, per_layer_gen)
        axes[3].set_xlabel("layer")
        axes[3].set_ylabel("mean energy [MeV]")
        _legend(axes[3], "best")
        fig.suptitle("Average shower")
    return fig


def _average_irregular(ref: np.ndarray, gen: np.ndarray, binning: Binning) -> Figure:
    layers = binning.readout_layers
    ncols = min(4, len(layers))
    nrows = math.ceil(len(layers) / ncols)
    with _figure((3.2 * ncols, 2.6 * nrows + 0.4)) as fig:
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, layer in zip(axes, layers, strict=False):
            edges = np.asarray(binning.layers[layer].r_edges)
            ref_r = _radial_per_layer(ref, binning, layer)
            gen_r = _radial_per_layer(gen, binning, layer)
            if not (ref_r.sum() > 0 or gen_r.sum() > 0):
                ax.set_title(f"layer {layer}")
                _no_data(ax)
                continue
            ax.set_title(f"layer {layer}, {_fmt_s(separation_power(ref_r, gen_r))}")
            _draw_pair(ax, ref_r, gen_r, edges)
            _log_y_floor(ax, ref_r, gen_r)
            _set_r_scale(ax, edges)
            ax.set_xlabel("r [mm]")
            ax.set_ylabel("mean energy [MeV]")
        _legend(axes[0], "best")
        for ax in axes[len(layers) :]:
            ax.set_visible(False)
        fig.suptitle("Average shower: mean energy per radial bin, summed over alpha")
    return fig


def showers_figure(
    showers: np.ndarray, binning: Binning, titles: Sequence[str], *, suptitle: str = ""
) -> Figure:
    """Individual showers side by side, each with its own log colour scale.

    Regular binning: energy per (layer, r) summed over alpha. Irregular binning: energy per
    r bin summed over alpha, the read-out layers one after another, one colour per layer.

    Args:
        showers: voxel energies in MeV, shape (k, V), k <= 8.
        binning: their binning.
        titles: one title per shower (k of them); the deposited energy is appended.
        suptitle: figure title.

    Returns:
        The figure: one panel per shower, up to 4 per row.

    Raises:
        DataError: for a wrong shape, more than 8 showers or a title count other than k.
    """
    showers = _check_showers(showers, binning, "showers")
    if showers.ndim != 2 or len(showers) > _MAX_SHOWERS or len(titles) != len(showers):
        raise DataError(
            f"plot_showers takes (k, V) showers with k <= {_MAX_SHOWERS} and k titles, got "
            f"shape {showers.shape} and {len(titles)} titles"
        )
    k = len(showers)
    ncols = min(4, max(k, 1))
    nrows = max(math.ceil(k / ncols), 1)
    with _figure((3.4 * ncols, 2.8 * nrows + 0.4)) as fig:
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        if k == 0:
            _no_data(axes[0], "no showers")
        for ax, shower, title in zip(axes, showers, titles, strict=False):
            ax.set_title(f"{title}\n$E_\\mathrm{{dep}}$ = {_fmt_energy(np.nansum(shower))}")
            if binning.is_regular:
                grid = _rz_grid(shower, binning)  # (n_layers, n_r)
                norm = _log_norm(grid, decades=4)
                if norm is None:
                    _no_data(ax, "empty shower")
                    continue
                mesh = _rz_image(ax, grid, binning, norm)
                fig.colorbar(mesh, ax=ax, label="energy [MeV]")
            else:
                _shower_bars(ax, shower, binning)
        for ax in axes[max(k, 1) :]:
            ax.set_visible(False)
        if suptitle:
            fig.suptitle(suptitle)
    return fig


def plot_showers(
    showers: np.ndarray,
    binning: Binning,
    titles: Sequence[str],
    path: Path,
    *,
    suptitle: str = "",
) -> Path:
    """Write :func:`showers_figure` to the PNG ``path`` and return ``path``.

    Raises:
        DataError: for a wrong shape, more than 8 showers or a title count other than k.
    """
    return save_figure(showers_figure(showers, binning, titles, suptitle=suptitle), path)


def _shower_bars(ax: Axes, shower: np.ndarray, binning: Binning) -> None:
    """Energy per r bin of every read-out layer as bars, layers one after another."""
    if not (shower > 0).any():
        _no_data(ax, "empty shower")
        return
    start = 0
    ticks, labels, drawn = [], [], []
    for i, layer in enumerate(binning.readout_layers):
        energy = _radial_per_layer(shower, binning, layer)
        drawn.append(energy)
        x = start + np.arange(len(energy))
        shown = energy > 0  # a log axis has no room for empty bins
        ax.bar(x[shown], energy[shown], width=0.9, color=f"C{i % 10}")
        ticks.append(start + 0.5 * (len(energy) - 1))
        labels.append(f"L{layer}")
        start += len(energy) + 1  # one empty slot between layers
    _log_y_floor(ax, *drawn, decades=6.0)
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("read-out layer (r bins inside, inner to outer)")
    ax.set_ylabel("energy [MeV]")


# ----------------------------------------------------------------------------------------------
# Anomaly scores


def anomaly_scores_figure(ref_scores: np.ndarray, gen_scores: np.ndarray) -> Figure:
    """Isolation-Forest normality scores of Geant4 and generated showers.

    Higher is more normal (sklearn's ``score_samples``). The note gives the fraction of
    generated showers below the Geant4 1 % quantile: about 1 % if the generated sample has no
    more outliers than Geant4.

    Args:
        ref_scores, gen_scores: scores, shape (N_ref,) and (N_gen,); NaNs are dropped.

    Returns:
        The figure: one panel, the two histograms normalised to unit sum.
    """
    ref = np.asarray(ref_scores, dtype=np.float64).reshape(-1)
    gen = np.asarray(gen_scores, dtype=np.float64).reshape(-1)
    ref, gen = ref[np.isfinite(ref)], gen[np.isfinite(gen)]
    with _figure((5.0, 3.6)) as fig:
        ax = fig.subplots()
        ax.set_title("Isolation-Forest normality score")
        if not (ref.size and gen.size):
            _no_data(ax)
            return fig
        both = np.concatenate([ref, gen])
        lo, hi = float(both.min()), float(both.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 61)
        ref_h, gen_h = histogram(ref, edges), histogram(gen, edges)
        ref_h, gen_h = ref_h / ref_h.sum(), gen_h / gen_h.sum()  # both samples are non-empty
        _draw_pair(ax, ref_h, gen_h, edges)
        _log_y_floor(ax, ref_h, gen_h)
        cut = float(np.quantile(ref, 0.01))
        below = float(np.mean(gen < cut))
        ax.axvline(cut, color="0.3", linestyle=":", linewidth=1.0, label="Geant4 1 % quantile")
        ax.text(
            0.02,
            0.97,
            f"{below:.1%} of generated showers below\nthe Geant4 1 % quantile (1 % expected)",
            transform=ax.transAxes,
            va="top",
            bbox={"facecolor": "white", "edgecolor": "0.7", "alpha": 0.9},
        )
        ax.set_xlabel("normality score (higher = more typical of Geant4)")
        ax.set_ylabel("fraction of showers")
        _legend(ax, "best")
    return fig


def plot_anomaly_scores(ref_scores: np.ndarray, gen_scores: np.ndarray, path: Path) -> Path:
    """Write :func:`anomaly_scores_figure` to the PNG ``path`` and return ``path``."""
    return save_figure(anomaly_scores_figure(ref_scores, gen_scores), path)
