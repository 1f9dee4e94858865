"""Energy apart from shape: the transforms round-trip and the threshold keeps layer energies."""

from __future__ import annotations

import numpy as np
import pytest

from caloforge.data.factorized import (
    FractionTransform,
    LayerTransform,
    conserve_threshold,
    layer_energies,
    rescale_layers,
)

MESH = (6, 4, 3)


def _showers(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    energies = 10.0 ** rng.uniform(3, 5, n)
    showers = rng.gamma(0.3, 1.0, (n, int(np.prod(MESH)))) * energies[:, None] * 1e-3
    showers[showers < 1e-2] = 0.0  # sparse, as after a threshold
    showers[:3, -12:] = 0.0  # the last layer empty in a few showers
    return showers, energies


def test_layer_transform_round_trips() -> None:
    showers, energies = _showers()
    layers = layer_energies(showers, MESH)
    transform = LayerTransform.fit(layers, energies)
    x = transform.forward(layers, energies)
    assert x.shape == (50, MESH[0])
    assert abs(float(x.mean())) < 0.1  # standardised
    np.testing.assert_allclose(transform.inverse(x, energies), layers, rtol=2e-4, atol=1e-6)
    again = LayerTransform.from_dict(transform.to_dict())
    assert again == transform


def test_layer_transform_is_bounded() -> None:
    """Any network output decodes to non-negative layers summing to at most scale * E_inc."""
    showers, energies = _showers()
    transform = LayerTransform.fit(layer_energies(showers, MESH), energies)
    wild = np.random.default_rng(1).normal(0, 50, (50, MESH[0]))
    layers = transform.inverse(wild, energies)
    assert (layers >= 0).all()
    assert (layers.sum(axis=1) <= transform.scale * energies * (1 + 1e-9)).all()


def test_fraction_transform_round_trips_and_keeps_layer_energies() -> None:
    showers, _ = _showers()
    layers = layer_energies(showers, MESH)
    transform = FractionTransform.fit(showers, MESH)
    y = transform.forward(showers)
    back = transform.inverse(y, layers)
    np.testing.assert_allclose(back, showers, rtol=1e-4, atol=1e-5)
    # whatever the network says, each layer holds exactly the energy asked for
    wild = np.random.default_rng(2).normal(0, 30, y.shape)
    np.testing.assert_allclose(layer_energies(transform.inverse(wild, layers), MESH), layers, rtol=1e-9)  # fmt: skip
    assert FractionTransform.from_dict(transform.to_dict()) == transform


def test_threshold_keeps_layer_energy() -> None:
    showers, _ = _showers()
    threshold = 0.5
    layers = layer_energies(showers, MESH)
    out = conserve_threshold(showers, MESH, threshold)
    assert ((out == 0) | (out >= threshold * (1 - 1e-6))).all()
    kept = layers >= threshold  # a layer below the threshold is read out as empty
    np.testing.assert_allclose(layer_energies(out, MESH)[kept], layers[kept], rtol=1e-5)
    assert (layer_energies(out, MESH)[~kept] == 0).all()


def test_threshold_of_a_spread_layer_goes_to_its_largest_voxel() -> None:
    shower = np.zeros((1, int(np.prod(MESH))))
    shower[0, :12] = [0.1] * 11 + [0.2]  # layer 0: 1.3 MeV, no voxel above 0.5
    out = conserve_threshold(shower, MESH, 0.5)
    assert out[0, 11] == pytest.approx(1.3)
    assert out[0, :11].sum() == 0


def test_rescaled_layers_keep_shapes_and_take_the_new_energies() -> None:
    showers, _ = _showers()
    layers = layer_energies(showers, MESH)
    new = layers * np.random.default_rng(3).uniform(0.5, 2.0, layers.shape)
    out = rescale_layers(showers, MESH, new)
    np.testing.assert_allclose(layer_energies(out, MESH), new, rtol=1e-5)
    f = FractionTransform.fit(showers, MESH)
    np.testing.assert_allclose(f.fractions(out), f.fractions(showers), atol=1e-6)
