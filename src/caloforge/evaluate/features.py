"""High-level shower features, as the CaloChallenge evaluation defines them.

Definitions follow ``code/HighLevelFeatures.py`` and ``code/evaluate.py`` of
``CaloChallenge/homepage`` (arXiv:2410.21611), on any :class:`~caloforge.geometry.binning.Binning`:

* ``E_tot`` = sum of all voxels; ``E_layer`` per read-out layer; ``E_tot / E_inc``;
* per read-out layer binned in alpha: centre of energy in eta and phi,
  ``<x> = sum(x E) / (sum(E) + 1e-16)``, and width ``sqrt(max(<x^2> - <x>^2, 0))``, with each
  voxel at ``eta = r cos(alpha)``, ``phi = r sin(alpha)`` of its (r, alpha) bin centre (mm);
* per read-out layer: radial centre and width from the r bin centres, same formulas;
* per read-out layer: sparsity ``1 - mean(voxel > 0)`` after the threshold.

The voxel threshold is applied first: voxels below it (negative ones included) are set to 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caloforge.errors import DataError
from caloforge.geometry.binning import Binning

_EPS = 1e-16  # CaloChallenge's guard against empty layers in centres and widths


def apply_threshold(showers: np.ndarray, threshold_mev: float) -> np.ndarray:
    """A float64 copy of ``showers`` (N, V) with every voxel below ``threshold_mev`` set to 0."""
    out = np.array(showers, dtype=np.float64)
    out[out < threshold_mev] = 0.0
    return out


def _centre_width(
    position: np.ndarray, energy: np.ndarray, total: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Energy-weighted mean and width of ``position`` (n_vox,) over ``energy`` (N, n_vox)."""
    mean = energy @ position / (total + _EPS)  # (N,)
    mean_sq = energy @ (position * position) / (total + _EPS)  # (N,)
    return mean, np.sqrt(np.clip(mean_sq - mean**2, 0.0, None))


@dataclass(frozen=True)
class HighLevelFeatures:
    """The high-level features of N showers.

    Attributes:
        e_inc: incident energies in MeV, shape (N,).
        e_tot: total deposited energy, shape (N,).
        layers: indices of the read-out layers (L of them).
        alpha_layers: indices of the read-out layers with more than one alpha bin (La).
        e_layer: energy per read-out layer, shape (N, L).
        ec_eta, ec_phi: centres of energy in eta and phi in mm, shape (N, La).
        width_eta, width_phi: their widths in mm, shape (N, La).
        ec_r, width_r: radial centre and width in mm, shape (N, L).
        sparsity: fraction of voxels that are 0 after the threshold, shape (N, L).
        e_r: energy per radial bin of the binning's first read-out layer, summed over alpha
            and over every read-out layer with the same radial edges, shape (N, n_r).
        r_edges: radial edges of ``e_r`` in mm, shape (n_r + 1,).
    """

    e_inc: np.ndarray
    e_tot: np.ndarray
    layers: tuple[int, ...]
    alpha_layers: tuple[int, ...]
    e_layer: np.ndarray
    ec_eta: np.ndarray
    ec_phi: np.ndarray
    width_eta: np.ndarray
    width_phi: np.ndarray
    ec_r: np.ndarray
    width_r: np.ndarray
    sparsity: np.ndarray
    e_r: np.ndarray
    r_edges: np.ndarray

    def __len__(self) -> int:
        return len(self.e_inc)

    @property
    def e_ratio(self) -> np.ndarray:
        """``E_tot / E_inc``, shape (N,)."""
        return self.e_tot / self.e_inc

    @property
    def profile_z(self) -> np.ndarray:
        """Longitudinal profile: mean energy per read-out layer, shape (L,)."""
        return self.e_layer.mean(axis=0)

    @property
    def profile_r(self) -> np.ndarray:
        """Radial profile: mean energy per radial bin, shape (n_r,)."""
        return self.e_r.mean(axis=0)

    def select(self, mask: np.ndarray) -> HighLevelFeatures:
        """The features of the showers selected by ``mask`` (boolean (N,) or indices)."""
        return HighLevelFeatures(
            e_inc=self.e_inc[mask],
            e_tot=self.e_tot[mask],
            layers=self.layers,
            alpha_layers=self.alpha_layers,
            e_layer=self.e_layer[mask],
            ec_eta=self.ec_eta[mask],
            ec_phi=self.ec_phi[mask],
            width_eta=self.width_eta[mask],
            width_phi=self.width_phi[mask],
            ec_r=self.ec_r[mask],
            width_r=self.width_r[mask],
            sparsity=self.sparsity[mask],
            e_r=self.e_r[mask],
            r_edges=self.r_edges,
        )

    def named(self) -> dict[str, np.ndarray]:
        """Every scalar feature as name -> (N,) array, the histogrammed ones.

        Names: ``e_ratio``, ``e_layer_<l>``, ``ec_eta_<l>``, ``ec_phi_<l>``, ``width_eta_<l>``,
        ``width_phi_<l>``, ``ec_r_<l>``, ``width_r_<l>``, ``sparsity_<l>`` with ``l`` the layer
        index.
        """
        out = {"e_ratio": self.e_ratio}
        per_layer = {
            "e_layer": (self.e_layer, self.layers),
            "ec_eta": (self.ec_eta, self.alpha_layers),
            "ec_phi": (self.ec_phi, self.alpha_layers),
            "width_eta": (self.width_eta, self.alpha_layers),
            "width_phi": (self.width_phi, self.alpha_layers),
            "ec_r": (self.ec_r, self.layers),
            "width_r": (self.width_r, self.layers),
            "sparsity": (self.sparsity, self.layers),
        }
        for name, (values, layer_ids) in per_layer.items():
            for column, layer in enumerate(layer_ids):
                out[f"{name}_{layer}"] = values[:, column]
        return out

    def classifier_inputs(self) -> np.ndarray:
        """The CaloChallenge high-level classifier vector, shape (N, 2 + 4 L + 4 La).

        ``[log10 E_inc, log10(E_layer + 1e-8), ec_eta/100, ec_phi/100, width_eta/100,
        width_phi/100, log10(E_tot + 1e-8), sparsity, ec_r/100, width_r/100]``.
        """
        return np.concatenate(
            [
                np.log10(self.e_inc)[:, None],
                np.log10(self.e_layer + 1e-8),
                self.ec_eta / 100.0,
                self.ec_phi / 100.0,
                self.width_eta / 100.0,
                self.width_phi / 100.0,
                np.log10(self.e_tot + 1e-8)[:, None],
                self.sparsity,
                self.ec_r / 100.0,
                self.width_r / 100.0,
            ],
            axis=1,
        )

    def distance_inputs(self) -> np.ndarray:
        """The FPD/KPD feature vector: :meth:`classifier_inputs` without the E_inc column."""
        return self.classifier_inputs()[:, 1:]


def _radial_energies(binning: Binning, showers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy per r bin (N, n_r), over the layers sharing the first read-out layer's r edges."""
    first = binning.layers[binning.readout_layers[0]]
    total = np.zeros((len(showers), first.n_r))
    for index in binning.readout_layers:
        layer = binning.layers[index]
        if layer.r_edges == first.r_edges:
            block = showers[:, binning.layer_slices[index]]  # (N, n_alpha * n_r)
            total += block.reshape(len(showers), layer.n_alpha, first.n_r).sum(axis=1)
    return total, np.asarray(first.r_edges)


def compute_features(
    showers: np.ndarray, energies: np.ndarray, binning: Binning, threshold_mev: float
) -> HighLevelFeatures:
    """High-level features of showers after the voxel threshold.

    Args:
        showers: voxel energies in MeV, shape (N, V), in the binning's voxel order.
        energies: incident energies in MeV, shape (N,), > 0.
        binning: the voxel geometry.
        threshold_mev: voxels below this are set to 0 first (0 keeps every positive voxel).

    Returns:
        The features, float64.

    Raises:
        DataError: for mismatched shapes.
    """
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    if showers.ndim != 2 or showers.shape != (len(energies), binning.n_voxels):
        raise DataError(
            f"showers have shape {showers.shape}, expected ({len(energies)}, {binning.n_voxels})"
        )
    data = apply_threshold(showers, threshold_mev)  # (N, V)
    n = len(data)
    layers = binning.readout_layers
    alpha_layers = binning.alpha_binned_layers
    e_layer = np.empty((n, len(layers)))
    ec_r, width_r, sparsity = (np.empty((n, len(layers))) for _ in range(3))
    ec_eta, ec_phi, width_eta, width_phi = (np.empty((n, len(alpha_layers))) for _ in range(4))
    column_a = 0
    for column, index in enumerate(layers):
        cut = binning.layer_slices[index]
        block = data[:, cut]  # (N, n_vox_layer)
        total = block.sum(axis=1)  # (N,)
        e_layer[:, column] = total
        sparsity[:, column] = 1.0 - (block > 0).mean(axis=1)
        ec_r[:, column], width_r[:, column] = _centre_width(binning.voxel_r[cut], block, total)
        if index in alpha_layers:
            ec_eta[:, column_a], width_eta[:, column_a] = _centre_width(
                binning.voxel_eta[cut], block, total
            )
            ec_phi[:, column_a], width_phi[:, column_a] = _centre_width(
                binning.voxel_phi[cut], block, total
            )
            column_a += 1
    e_r, r_edges = _radial_energies(binning, data)
    return HighLevelFeatures(
        e_inc=energies,
        e_tot=data.sum(axis=1),
        layers=layers,
        alpha_layers=alpha_layers,
        e_layer=e_layer,
        ec_eta=ec_eta,
        ec_phi=ec_phi,
        width_eta=width_eta,
        width_phi=width_phi,
        ec_r=ec_r,
        width_r=width_r,
        sparsity=sparsity,
        e_r=e_r,
        r_edges=r_edges,
    )


LOG_FEATURES = ("e_layer",)
"""Feature families histogrammed on log-spaced bins from the threshold."""


@dataclass(frozen=True)
class Side:
    """What the metrics need of one sample: features, thresholded voxels, energies."""

    features: HighLevelFeatures
    voxels: np.ndarray  # (N, V) after threshold, float32 to save memory

    def select(self, mask: np.ndarray) -> Side:
        return Side(self.features.select(mask), self.voxels[mask])

    def __len__(self) -> int:
        return len(self.voxels)
