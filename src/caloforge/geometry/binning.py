"""Cylindrical voxel binnings: regular meshes and the CaloChallenge XML layers.

A binning is a stack of layers along the shower axis z. Each layer is cut into ``n_r`` rings
(edges in mm, free per layer) and ``n_alpha`` equal angular sectors spanning [-pi, pi). A layer
whose radial edges are just ``(0,)`` is not read out and has no voxels; it keeps its place so
that layer indices equal the CaloChallenge layer ids.

Voxels are numbered as in the CaloChallenge files: layers in id order, then alpha, then r
fastest; for a regular binning ``index = ((z * n_alpha) + alpha) * n_r + r``.

The voxel coordinates follow the CaloChallenge evaluation code (``code/XMLHandler.py`` of
``CaloChallenge/homepage``): alpha edges are ``n_alpha + 1`` equally spaced values from -pi to
pi, a voxel sits at its (r, alpha) bin centre, and ``eta = r cos(alpha)``,
``phi = r sin(alpha)`` in mm. A layer with one alpha bin therefore has alpha = 0, eta = r and
phi = 0 for every voxel.
"""

from __future__ import annotations

import itertools
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from caloforge.errors import DataError, SpecError

# CaloChallenge dataset -> (packaged XML file, particle name of its <Bin> element).
_CALOCHALLENGE_XML: dict[str, tuple[str, str]] = {
    "1-photons": ("binning_dataset_1_photons.xml", "photon"),
    "1-pions": ("binning_dataset_1_pions.xml", "pion"),
    "2": ("binning_dataset_2.xml", "electron"),
    "3": ("binning_dataset_3.xml", "electron"),
}

CALOCHALLENGE_DATASETS: tuple[str, ...] = tuple(_CALOCHALLENGE_XML)
"""Names accepted by :func:`calochallenge_binning`."""


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class LayerBinning:
    """The (r, alpha) segmentation of one layer.

    Attributes:
        r_edges: radial bin edges in mm, strictly increasing, shape (n_r + 1,); ``(0,)`` (or
            any fewer than two edges) marks a layer that is not read out.
        n_alpha: number of equal angular bins spanning [-pi, pi), at least 1.
    """

    r_edges: tuple[float, ...]
    n_alpha: int

    def __post_init__(self) -> None:
        try:
            edges = tuple(float(edge) for edge in self.r_edges)
        except (TypeError, ValueError):
            raise DataError(f"radial edges must be numbers, got {self.r_edges!r}") from None
        object.__setattr__(self, "r_edges", edges)
        n_alpha = self.n_alpha
        if isinstance(n_alpha, bool) or not isinstance(n_alpha, (int, np.integer)) or n_alpha < 1:
            raise DataError(f"the number of alpha bins must be an integer >= 1, got {n_alpha!r}")
        object.__setattr__(self, "n_alpha", int(n_alpha))
        increasing = all(lo < hi for lo, hi in itertools.pairwise(edges))
        if len(edges) >= 2 and not (increasing and edges[0] >= 0 and math.isfinite(edges[-1])):
            raise DataError(
                f"radial edges must be finite, >= 0 and strictly increasing, got {edges}"
            )

    @property
    def is_read_out(self) -> bool:
        """Whether the layer has any voxels."""
        return len(self.r_edges) >= 2

    @property
    def n_r(self) -> int:
        """Number of radial bins (0 for a layer that is not read out)."""
        return len(self.r_edges) - 1 if self.is_read_out else 0

    @property
    def n_voxels(self) -> int:
        """Number of voxels, ``n_r * n_alpha`` (0 for a layer that is not read out)."""
        return self.n_r * self.n_alpha

    @property
    def r_centres(self) -> np.ndarray:
        """Radial bin centres in mm, shape (n_r,)."""
        if not self.is_read_out:
            return np.zeros(0)
        edges = np.asarray(self.r_edges)
        return edges[:-1] + 0.5 * np.diff(edges)

    @property
    def alpha_edges(self) -> np.ndarray:
        """Angular bin edges in rad, from -pi to pi, shape (n_alpha + 1,)."""
        return np.linspace(-np.pi, np.pi, self.n_alpha + 1)

    @property
    def alpha_centres(self) -> np.ndarray:
        """Angular bin centres in rad, ``-pi + (i + 0.5) 2 pi / n_alpha``, shape (n_alpha,)."""
        edges = self.alpha_edges
        return edges[:-1] + 0.5 * np.diff(edges)


@dataclass(frozen=True)
class Binning:
    """A stack of layers and the flat voxel order of a shower vector.

    Attributes:
        layers: one :class:`LayerBinning` per layer, in layer-id order (not-read-out layers
            included, so that layer index == CaloChallenge layer id).
        name: a label used in messages (e.g. ``"calochallenge-2"``).
    """

    layers: tuple[LayerBinning, ...]
    name: str = ""

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not all(isinstance(layer, LayerBinning) for layer in layers):
            raise DataError("every layer of a binning must be a LayerBinning")
        if not any(layer.is_read_out for layer in layers):
            raise DataError(f"binning {self.name!r} has no read-out layer")
        object.__setattr__(self, "layers", layers)

    @classmethod
    def regular(
        cls, n_layers: int, n_alpha: int, n_r: int, dr: float, *, name: str = ""
    ) -> Binning:
        """A binning whose layers all share ``r_edges = arange(n_r + 1) * dr``.

        The edges are rounded to 1e-12 mm so that they equal edges written in decimal (the
        dataset-2 XML's ``13.95`` rather than ``3 * 4.65 = 13.950000000000001``).

        Args:
            n_layers: number of layers (z bins), >= 1.
            n_alpha: number of angular bins per layer, >= 1.
            n_r: number of radial bins per layer, >= 1.
            dr: radial bin width in mm, > 0.
            name: label of the binning.

        Returns:
            The binning, with ``n_layers * n_alpha * n_r`` voxels.
        """
        if n_layers < 1 or n_r < 1 or not (math.isfinite(dr) and dr > 0):
            raise DataError(
                f"a regular binning needs n_layers >= 1, n_r >= 1 and dr > 0, "
                f"got n_layers={n_layers}, n_r={n_r}, dr={dr}"
            )
        layer = LayerBinning(tuple(round(i * dr, 12) for i in range(n_r + 1)), n_alpha)
        return cls((layer,) * n_layers, name=name)

    @property
    def n_layers(self) -> int:
        """Number of layers, read out or not."""
        return len(self.layers)

    @property
    def n_voxels(self) -> int:
        """Length V of the flat voxel vector."""
        return sum(layer.n_voxels for layer in self.layers)

    @cached_property
    def layer_slices(self) -> tuple[slice, ...]:
        """For each layer, its slice of the flat voxel vector (empty if not read out)."""
        bounds = np.cumsum([0] + [layer.n_voxels for layer in self.layers]).tolist()
        return tuple(slice(lo, hi) for lo, hi in itertools.pairwise(bounds))

    @property
    def readout_layers(self) -> tuple[int, ...]:
        """Indices of the layers that have voxels (CaloChallenge's "relevant layers")."""
        return tuple(i for i, layer in enumerate(self.layers) if layer.is_read_out)

    @property
    def alpha_binned_layers(self) -> tuple[int, ...]:
        """Indices of the read-out layers with more than one alpha bin.

        Only these get eta/phi centres and widths in the CaloChallenge features.
        """
        return tuple(i for i in self.readout_layers if self.layers[i].n_alpha > 1)

    @cached_property
    def voxel_layer(self) -> np.ndarray:
        """Layer index of every voxel, int64, shape (V,)."""
        counts = [layer.n_voxels for layer in self.layers]
        return _readonly(np.repeat(np.arange(self.n_layers, dtype=np.int64), counts))

    @cached_property
    def voxel_r(self) -> np.ndarray:
        """Radial bin centre of every voxel in mm, shape (V,)."""
        parts = [np.tile(layer.r_centres, layer.n_alpha) for layer in self.layers]
        return _readonly(np.concatenate(parts))

    @cached_property
    def voxel_alpha(self) -> np.ndarray:
        """Angular bin centre of every voxel in rad, in [-pi, pi), shape (V,)."""
        parts = [np.repeat(layer.alpha_centres, layer.n_r) for layer in self.layers]
        return _readonly(np.concatenate(parts))

    @cached_property
    def voxel_eta(self) -> np.ndarray:
        """``r cos(alpha)`` at every voxel centre in mm, shape (V,)."""
        return _readonly(self.voxel_r * np.cos(self.voxel_alpha))

    @cached_property
    def voxel_phi(self) -> np.ndarray:
        """``r sin(alpha)`` at every voxel centre in mm, shape (V,)."""
        return _readonly(self.voxel_r * np.sin(self.voxel_alpha))

    @property
    def is_regular(self) -> bool:
        """Whether every layer is read out with the same (r, alpha) segmentation."""
        first = self.layers[0]
        return first.is_read_out and all(layer == first for layer in self.layers)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """``(n_layers, n_alpha, n_r)`` of a regular binning."""
        if not self.is_regular:
            raise DataError(
                f"binning {self.name!r} is irregular (its layers differ), so it has no "
                "(layer, alpha, r) grid shape"
            )
        first = self.layers[0]
        return (self.n_layers, first.n_alpha, first.n_r)

    def reshape(self, showers: np.ndarray) -> np.ndarray:
        """Views flat showers as a (layer, alpha, r) grid.

        Args:
            showers: voxel energies, shape (N, V) (any leading shape works).

        Returns:
            The same data with shape (N, n_layers, n_alpha, n_r).

        Raises:
            DataError: if the binning is irregular or the last axis is not V long.
        """
        grid_shape = self.grid_shape
        showers = np.asarray(showers)
        if showers.ndim < 1 or showers.shape[-1] != self.n_voxels:
            raise DataError(f"showers have shape {showers.shape}, expected (N, {self.n_voxels})")
        return showers.reshape(*showers.shape[:-1], *grid_shape)

    def flatten(self, grid: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`reshape`: (N, n_layers, n_alpha, n_r) -> (N, V)."""
        grid_shape = self.grid_shape
        grid = np.asarray(grid)
        if grid.shape[-3:] != grid_shape:
            raise DataError(
                f"grid has shape {grid.shape}, expected (N, {', '.join(map(str, grid_shape))})"
            )
        return grid.reshape(*grid.shape[:-3], self.n_voxels)


def _parse_binning_xml(data: bytes, *, source: str, particle: str | None, name: str) -> Binning:
    """Parses CaloChallenge binning XML text; ``source`` names it in error messages."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(f"{source} is not a valid XML file ({exc})") from None
    bins = [element for element in root if element.tag == "Bin"]
    if not bins:
        raise DataError(f"{source} has no <Bin> element; it is not a CaloChallenge binning file")
    found = [element.get("name", "") for element in bins]
    if particle is None:
        if len(bins) > 1:
            raise DataError(
                f"{source} holds binnings for several particles ({', '.join(found)}); "
                "choose one with particle="
            )
        chosen = bins[0]
    else:
        matches = [element for element in bins if element.get("name") == particle]
        if not matches:
            raise DataError(
                f"{source} has no binning for particle {particle!r} (found: {', '.join(found)})"
            )
        chosen = matches[0]

    layers = []
    for position, element in enumerate(e for e in chosen if e.tag == "Layer"):
        attrs = {key: element.get(key) for key in ("id", "r_edges", "n_bin_alpha")}
        missing = [key for key, value in attrs.items() if value is None]
        if missing:
            raise DataError(
                f"{source}: layer at position {position} lacks the attribute(s) {', '.join(missing)}"
            )
        try:
            layer_id = int(str(attrs["id"]))
            r_edges = tuple(float(s) for s in str(attrs["r_edges"]).split(","))
            n_alpha = int(str(attrs["n_bin_alpha"]))
        except ValueError:
            raise DataError(
                f"{source}: layer at position {position} has a non-numeric id, r_edges or "
                f"n_bin_alpha ({attrs})"
            ) from None
        if layer_id != position:
            raise DataError(
                f"{source}: layer ids must run 0, 1, 2, ... in order, but the layer at position "
                f"{position} has id {layer_id}"
            )
        try:
            layers.append(LayerBinning(r_edges, n_alpha))
        except DataError as exc:
            raise DataError(f"{source}: layer {layer_id}: {exc}") from None
    if not layers:
        raise DataError(f"{source} has no <Layer> elements")
    try:
        return Binning(tuple(layers), name=name)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None


def read_binning_xml(path: str | os.PathLike[str], *, particle: str | None = None) -> Binning:
    """Reads a CaloChallenge binning XML file.

    The file holds ``<Bins>`` with one ``<Bin pid=... name=...>`` per particle, each with one
    ``<Layer id=... r_edges="0,5,10,..." n_bin_alpha=...>`` per layer, ids 0, 1, 2, ...

    Args:
        path: the XML file.
        particle: the ``name`` of the ``<Bin>`` to read (e.g. ``"photon"``); may be omitted
            when the file holds a single one.

    Returns:
        The binning, named after the file's stem.

    Raises:
        DataError: if the file is missing, unreadable or not a valid binning.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"binning file {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"cannot read binning file {path}: {exc.strerror or exc}") from None
    return _parse_binning_xml(data, source=str(path), particle=particle, name=path.stem)


@cache
def calochallenge_binning(dataset: str) -> Binning:
    """The binning of a CaloChallenge dataset, read from the XML files shipped in the package.

    Args:
        dataset: one of ``"1-photons"``, ``"1-pions"``, ``"2"``, ``"3"``.

    Returns:
        The binning (368, 533, 6480 or 40500 voxels), named ``"calochallenge-<dataset>"``.

    Raises:
        SpecError: if the dataset name is unknown.
    """
    try:
        filename, particle = _CALOCHALLENGE_XML[dataset]
    except KeyError:
        raise SpecError(
            f"unknown CaloChallenge dataset {dataset!r}; expected one of "
            f"{', '.join(CALOCHALLENGE_DATASETS)}"
        ) from None
    data = (resources.files("caloforge.geometry") / "calochallenge" / filename).read_bytes()
    return _parse_binning_xml(
        data, source=f"packaged {filename}", particle=particle, name=f"calochallenge-{dataset}"
    )
