"""Tests of caloforge.evaluate.features against the CaloChallenge high-level feature definitions."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from importlib import resources

import numpy as np
import pytest

from caloforge.errors import DataError
from caloforge.evaluate.features import HighLevelFeatures, apply_threshold, compute_features
from caloforge.geometry.binning import Binning, calochallenge_binning

S = 1.0 / math.sqrt(2.0)  # |cos| = |sin| of every alpha centre of a 4-sector layer

# dataset -> (packaged XML, <Bin name>, voxel threshold in MeV used by the CaloChallenge)
DATASETS = {
    "1-photons": ("binning_dataset_1_photons.xml", "photon", 1.0),
    "1-pions": ("binning_dataset_1_pions.xml", "pion", 1.0),
    "2": ("binning_dataset_2.xml", "electron", 0.5e-3 / 0.033),
}


# ----------------------------------------------------------------------------------------------
# A hand-built shower on 2 layers x 4 alpha x 2 r, dr = 10 mm
#
# r centres 5 and 15 mm; alpha centres -3pi/4, -pi/4, pi/4, 3pi/4, so
# (cos, sin) = (-S, -S), (S, -S), (S, S), (-S, S). Voxel index = (layer * 4 + alpha) * 2 + r.

THRESHOLD = 0.5


def _tiny_binning() -> Binning:
    return Binning.regular(2, 4, 2, 10.0)


def _voxel(layer: int, alpha: int, r: int) -> int:
    return (layer * 4 + alpha) * 2 + r


def _tiny_shower() -> np.ndarray:
    shower = np.zeros((1, 16))
    shower[0, _voxel(0, 2, 0)] = 3.0  # eta = 5 S, phi = 5 S, r = 5
    shower[0, _voxel(0, 1, 1)] = 1.0  # eta = 15 S, phi = -15 S, r = 15
    shower[0, _voxel(0, 3, 0)] = 0.2  # below the threshold: dropped
    shower[0, _voxel(0, 0, 0)] = -2.0  # negative: dropped
    shower[0, _voxel(1, 0, 0)] = 2.0  # eta = -5 S, phi = -5 S, r = 5
    shower[0, _voxel(1, 0, 1)] = 0.5  # equal to the threshold: kept; eta = phi = -15 S
    shower[0, _voxel(1, 3, 1)] = 0.5  # equal to the threshold: kept; eta = -15 S, phi = 15 S
    return shower


def test_hand_built_shower():
    features = compute_features(_tiny_shower(), np.array([10.0]), _tiny_binning(), THRESHOLD)

    assert features.layers == (0, 1)
    assert features.alpha_layers == (0, 1)
    np.testing.assert_allclose(features.e_inc, [10.0])
    np.testing.assert_allclose(features.e_tot, [7.0])  # 3 + 1 + 2 + 0.5 + 0.5
    np.testing.assert_allclose(features.e_ratio, [0.7])
    np.testing.assert_allclose(features.e_layer, [[4.0, 3.0]])

    # layer 0: eta 5S (E 3), 15S (E 1) -> <eta> = 30S/4, <eta^2> = (3*12.5 + 112.5)/4 = 37.5
    # layer 1: eta -5S (2), -15S (0.5), -15S (0.5) -> <eta> = -25S/3, <eta^2> = 137.5/3
    np.testing.assert_allclose(features.ec_eta, [[7.5 * S, -25.0 * S / 3.0]], atol=1e-12)
    np.testing.assert_allclose(
        features.width_eta, [[math.sqrt(37.5 - 28.125), 10.0 / 3.0]], atol=1e-12
    )
    # layer 0: phi 5S (3), -15S (1) -> 0, <phi^2> = 37.5
    # layer 1: phi -5S (2), -15S (0.5), 15S (0.5) -> -10S/3, <phi^2> = 137.5/3
    np.testing.assert_allclose(features.ec_phi, [[0.0, -10.0 * S / 3.0]], atol=1e-12)
    np.testing.assert_allclose(
        features.width_phi, [[math.sqrt(37.5), math.sqrt(362.5) / 3.0]], atol=1e-12
    )
    # layer 0: r 5 (3), 15 (1) -> 7.5, <r^2> = 75; layer 1: r 5 (2), 15 (1) -> 25/3, 275/3
    np.testing.assert_allclose(features.ec_r, [[7.5, 25.0 / 3.0]], atol=1e-12)
    np.testing.assert_allclose(
        features.width_r, [[math.sqrt(18.75), math.sqrt(200.0) / 3.0]], atol=1e-12
    )
    # 2 of 8 voxels left in layer 0, 3 of 8 in layer 1
    np.testing.assert_allclose(features.sparsity, [[0.75, 0.625]])
    # radial bins summed over alpha and layers: r0 = 3 + 2, r1 = 1 + 0.5 + 0.5
    np.testing.assert_allclose(features.e_r, [[5.0, 2.0]])
    np.testing.assert_allclose(features.r_edges, [0.0, 10.0, 20.0])
    np.testing.assert_allclose(features.profile_z, [4.0, 3.0])
    np.testing.assert_allclose(features.profile_r, [5.0, 2.0])
    assert len(features) == 1


def test_empty_layer_has_zero_centres_and_widths():
    shower = np.zeros((1, 16))
    shower[0, _voxel(1, 2, 1)] = 4.0
    features = compute_features(shower, np.array([10.0]), _tiny_binning(), 0.0)
    for values in (features.ec_eta, features.ec_phi, features.width_eta, features.width_phi):
        assert np.isfinite(values).all()
        assert values[0, 0] == 0.0
    assert features.ec_r[0, 0] == 0.0
    assert features.width_r[0, 0] == 0.0
    assert features.sparsity[0, 0] == 1.0
    # one voxel: its own position, zero width
    np.testing.assert_allclose(features.ec_r[0, 1], 15.0)
    np.testing.assert_allclose(features.width_r[0, 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(features.ec_eta[0, 1], 15.0 * S)


# ----------------------------------------------------------------------------------------------
# Threshold


def test_apply_threshold_keeps_equal_drops_below_and_negative():
    showers = np.array([[-1.0, 0.0, 0.25, 0.5, 0.75, 7.0]], dtype=np.float32)
    out = apply_threshold(showers, 0.5)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.0, 0.0, 0.0, 0.5, 0.75, 7.0]])
    assert showers[0, 0] == -1.0  # the input is not modified
    np.testing.assert_array_equal(apply_threshold(showers, 0.0), [[0, 0, 0.25, 0.5, 0.75, 7]])


def test_threshold_applies_before_every_feature():
    binning = _tiny_binning()
    rng = np.random.default_rng(3)
    clean = np.where(rng.random((50, 16)) < 0.4, rng.uniform(0.5, 5.0, (50, 16)), 0.0)
    noise = np.where(
        (clean == 0) & (rng.random((50, 16)) < 0.7), rng.uniform(-1.0, 0.499, (50, 16)), 0.0
    )
    energies = rng.uniform(10.0, 100.0, 50)
    reference = compute_features(clean, energies, binning, THRESHOLD)
    noisy = compute_features(clean + noise, energies, binning, THRESHOLD)
    for name, values in reference.named().items():
        np.testing.assert_array_equal(noisy.named()[name], values, err_msg=name)
    np.testing.assert_array_equal(noisy.e_tot, reference.e_tot)
    np.testing.assert_array_equal(noisy.e_r, reference.e_r)
    # sparsity counts the zeroed voxels: the fraction of voxels below the threshold
    below = (clean + noise < THRESHOLD).reshape(50, 2, 8).mean(axis=2)
    np.testing.assert_allclose(noisy.sparsity, below)
    # without the threshold the noise would change the features
    assert not np.allclose(
        compute_features(clean + noise, energies, binning, -2.0).e_tot, clean.sum(1)
    )


# ----------------------------------------------------------------------------------------------
# An independent reference, written from the CaloChallenge definitions and the XML itself


def _xml_layers(dataset: str) -> list[tuple[list[float], int]]:
    """(r edges, n_alpha) of every layer, read straight from the packaged XML."""
    filename, particle, _ = DATASETS[dataset]
    text = (resources.files("caloforge.geometry") / "calochallenge" / filename).read_bytes()
    root = ET.fromstring(text)
    (chosen,) = [b for b in root if b.tag == "Bin" and b.get("name") == particle]
    return [
        ([float(s) for s in layer.get("r_edges").split(",")], int(layer.get("n_bin_alpha")))
        for layer in chosen
        if layer.tag == "Layer"
    ]


def _reference_features(
    showers: np.ndarray, e_inc: np.ndarray, layers: list[tuple[list[float], int]], threshold: float
) -> dict[str, np.ndarray]:
    """CaloChallenge features with explicit loops over voxels; keys as HighLevelFeatures.named."""
    data = np.array(showers, dtype=np.float64)
    data[data < threshold] = 0.0
    n = len(data)
    out: dict[str, list[float]] = {"e_ratio": [], "e_tot": [], "e_r": []}
    offset = 0
    geometry = []  # (layer id, slice, r, eta, phi, n_alpha, n_r)
    for layer_id, (edges, n_alpha) in enumerate(layers):
        if len(edges) < 2:
            continue  # not read out
        n_r = len(edges) - 1
        r, eta, phi = [], [], []
        for i_alpha in range(n_alpha):  # alpha outer, r fastest
            alpha = -math.pi + (i_alpha + 0.5) * 2.0 * math.pi / n_alpha
            for i_r in range(n_r):
                r_mid = 0.5 * (edges[i_r] + edges[i_r + 1])
                r.append(r_mid)
                eta.append(r_mid * math.cos(alpha))
                phi.append(r_mid * math.sin(alpha))
        size = n_alpha * n_r
        geometry.append(
            (layer_id, slice(offset, offset + size), *map(np.array, (r, eta, phi)), n_alpha, n_r)
        )
        offset += size
    assert offset == data.shape[1]

    def centre_width(x: np.ndarray, energy: np.ndarray) -> tuple[float, float]:
        total = energy.sum()
        mean = float((x * energy).sum() / (total + 1e-16))
        mean_sq = float((x * x * energy).sum() / (total + 1e-16))
        return mean, math.sqrt(max(mean_sq - mean * mean, 0.0))

    first_edges = layers[geometry[0][0]][0]
    for shower, energy in zip(data, e_inc, strict=True):
        out["e_tot"].append(shower.sum())
        out["e_ratio"].append(shower.sum() / energy)
        e_r = np.zeros(len(first_edges) - 1)
        for layer_id, cut, r, eta, phi, n_alpha, n_r in geometry:
            block = shower[cut]
            out.setdefault(f"e_layer_{layer_id}", []).append(block.sum())
            out.setdefault(f"sparsity_{layer_id}", []).append(1.0 - np.mean(block > 0))
            ec, width = centre_width(r, block)
            out.setdefault(f"ec_r_{layer_id}", []).append(ec)
            out.setdefault(f"width_r_{layer_id}", []).append(width)
            if n_alpha > 1:
                for name, x in (("eta", eta), ("phi", phi)):
                    ec, width = centre_width(x, block)
                    out.setdefault(f"ec_{name}_{layer_id}", []).append(ec)
                    out.setdefault(f"width_{name}_{layer_id}", []).append(width)
            if layers[layer_id][0] == first_edges:
                e_r += block.reshape(n_alpha, n_r).sum(axis=0)
        out["e_r"].append(e_r)
    result = {key: np.array(values) for key, values in out.items()}
    assert all(len(values) == n for values in result.values())
    return result


def _random_showers(n_voxels: int, threshold: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse showers with sub-threshold and negative noise, voxels at the threshold, and one
    shower with an empty first layer."""
    rng = np.random.default_rng(seed)
    n = 12
    showers = rng.exponential(50.0 * threshold, (n, n_voxels)) * (rng.random((n, n_voxels)) < 0.3)
    noise = rng.uniform(-threshold, threshold, (n, n_voxels)) * (rng.random((n, n_voxels)) < 0.2)
    showers = np.where(showers == 0, noise, showers)
    showers[rng.random((n, n_voxels)) < 0.02] = threshold
    showers[0, :8] = 0.0
    energies = 10.0 ** rng.uniform(3.0, 5.0, n)
    return showers, energies


def _layer_columns(names: dict[str, np.ndarray], family: str, layers: tuple[int, ...]):
    return np.stack([names[f"{family}_{layer}"] for layer in layers], axis=1)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_matches_reference_implementation(dataset):
    _, _, threshold = DATASETS[dataset]
    binning = calochallenge_binning(dataset)
    layers = _xml_layers(dataset)
    showers, energies = _random_showers(binning.n_voxels, threshold, seed=len(dataset))
    features = compute_features(showers, energies, binning, threshold)
    ref = _reference_features(showers, energies, layers, threshold)

    named = features.named()
    expected_keys = set(ref) - {"e_tot", "e_r"}
    assert set(named) == expected_keys
    for name, values in named.items():
        # widths of one-voxel layers are sqrt of a rounding error: compare in absolute terms
        np.testing.assert_allclose(values, ref[name], rtol=1e-10, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(features.e_tot, ref["e_tot"], rtol=1e-12)
    np.testing.assert_allclose(features.e_r, ref["e_r"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(features.profile_r, ref["e_r"].mean(axis=0), rtol=1e-12)

    # the layout of the classifier and distance inputs
    L, La = features.layers, features.alpha_layers
    expected = np.concatenate(
        [
            np.log10(energies)[:, None],
            np.log10(_layer_columns(ref, "e_layer", L) + 1e-8),
            _layer_columns(ref, "ec_eta", La) / 100.0,
            _layer_columns(ref, "ec_phi", La) / 100.0,
            _layer_columns(ref, "width_eta", La) / 100.0,
            _layer_columns(ref, "width_phi", La) / 100.0,
            np.log10(ref["e_tot"] + 1e-8)[:, None],
            _layer_columns(ref, "sparsity", L),
            _layer_columns(ref, "ec_r", L) / 100.0,
            _layer_columns(ref, "width_r", L) / 100.0,
        ],
        axis=1,
    )
    inputs = features.classifier_inputs()
    assert inputs.shape == (len(energies), 2 + 4 * len(L) + 4 * len(La))
    np.testing.assert_allclose(inputs, expected, rtol=1e-10, atol=1e-7)
    np.testing.assert_array_equal(features.distance_inputs(), inputs[:, 1:])


@pytest.mark.parametrize(
    ("dataset", "layers", "alpha_layers"),
    [
        ("1-photons", (0, 1, 2, 3, 12), (1, 2)),
        ("1-pions", (0, 1, 2, 3, 12, 13, 14), (1, 2, 12, 13)),
        ("2", tuple(range(45)), tuple(range(45))),
    ],
)
def test_layers_from_the_xml(dataset, layers, alpha_layers):
    binning = calochallenge_binning(dataset)
    xml = _xml_layers(dataset)
    assert layers == tuple(i for i, (edges, _) in enumerate(xml) if len(edges) > 1)
    assert alpha_layers == tuple(i for i in layers if xml[i][1] > 1)
    showers, energies = _random_showers(binning.n_voxels, 1.0, seed=1)
    features = compute_features(showers, energies, binning, 1.0)
    assert features.layers == layers
    assert features.alpha_layers == alpha_layers
    assert features.e_layer.shape == (len(energies), len(layers))
    assert features.ec_eta.shape == (len(energies), len(alpha_layers))


def test_named_keys_dataset_1_photons():
    binning = calochallenge_binning("1-photons")
    showers, energies = _random_showers(binning.n_voxels, 1.0, seed=2)
    named = compute_features(showers, energies, binning, 1.0).named()
    expected = {"e_ratio"}
    for family in ("e_layer", "ec_r", "width_r", "sparsity"):
        expected |= {f"{family}_{layer}" for layer in (0, 1, 2, 3, 12)}
    for family in ("ec_eta", "ec_phi", "width_eta", "width_phi"):
        expected |= {f"{family}_{layer}" for layer in (1, 2)}
    assert set(named) == expected
    assert all(values.shape == (len(energies),) for values in named.values())


# ----------------------------------------------------------------------------------------------
# select and profiles


def _assert_features_equal(a: HighLevelFeatures, b: HighLevelFeatures) -> None:
    assert a.layers == b.layers
    assert a.alpha_layers == b.alpha_layers
    for field in (
        "e_inc", "e_tot", "e_layer", "ec_eta", "ec_phi", "width_eta", "width_phi",
        "ec_r", "width_r", "sparsity", "e_r", "r_edges",
    ):  # fmt: skip
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


@pytest.mark.parametrize("dataset", ["1-pions", "2"])
def test_select_equals_features_of_the_subset(dataset):
    binning = calochallenge_binning(dataset)
    showers, energies = _random_showers(binning.n_voxels, 1.0, seed=4)
    features = compute_features(showers, energies, binning, 1.0)
    mask = np.zeros(len(energies), dtype=bool)
    mask[[1, 4, 5, 9]] = True
    subset = compute_features(showers[mask], energies[mask], binning, 1.0)
    _assert_features_equal(features.select(mask), subset)
    _assert_features_equal(features.select(np.flatnonzero(mask)), subset)
    assert len(features.select(mask)) == 4


def test_profiles_are_means_over_showers():
    binning = calochallenge_binning("2")
    showers, energies = _random_showers(binning.n_voxels, 1.0, seed=5)
    features = compute_features(showers, energies, binning, 0.0)
    grid = binning.reshape(apply_threshold(showers, 0.0))  # (N, z, alpha, r)
    np.testing.assert_allclose(features.profile_z, grid.sum(axis=(2, 3)).mean(axis=0))
    np.testing.assert_allclose(features.profile_r, grid.sum(axis=(1, 2)).mean(axis=0))
    np.testing.assert_allclose(features.e_r.sum(axis=1), features.e_tot)
    np.testing.assert_allclose(features.r_edges, np.arange(10) * 4.65)


# ----------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("shape", "n_energies"),
    [((3, 15), 3), ((3, 17), 3), ((4, 16), 3), ((16,), 1), ((3, 2, 8), 3)],
)
def test_wrong_shapes_raise(shape, n_energies):
    with pytest.raises(DataError, match="expected"):
        compute_features(np.ones(shape), np.ones(n_energies), _tiny_binning(), 0.0)
