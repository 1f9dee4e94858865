"""Energy apart from shape: the transforms round-trip and the threshold keeps layer energies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from caloforge.data.factorized import (
    CODE_SCALE,
    FractionTransform,
    LayerTransform,
    _bounded_fit,
    conserve_threshold,
    layer_energies,
    rescale_layers,
)
from caloforge.errors import SpecError

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


def _two_detectors(n: int = 4000, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer energies of two sampling calorimeters (responses 3 % and 17 %) whose resolution
    improves as 1/sqrt(E): the response is two narrow peaks far apart at high energy."""
    rng = np.random.default_rng(seed)
    energies = 10.0 ** rng.uniform(3, 5, n)
    slots = rng.integers(0, 2, n)
    response = np.where(slots == 0, 0.03, 0.17)
    total = energies * response * (1 + 0.2 / np.sqrt(energies / 1e3) * rng.standard_normal(n))
    shares = rng.dirichlet(np.ones(MESH[0]) * 2.0, n)
    return total[:, None] * shares, energies, slots


def test_conditional_code_has_unit_spread_per_detector_and_energy() -> None:
    """The response's code spreads ~1 in each detector at each energy; the global one ~0.05."""
    layers, energies, slots = _two_detectors()
    glob = LayerTransform.fit(layers, energies, groups=slots)
    cond = LayerTransform.fit(layers, energies, groups=slots, conditional=True)
    assert cond.conditional
    assert not glob.conditional
    assert (cond.mean, cond.std, cond.log_mean) == (glob.mean, glob.std, glob.log_mean)
    high = energies > 3e4
    for slot in (0, 1):
        rows = high & (slots == slot)
        g = glob.encode(layers[rows], energies[rows], groups=slots[rows])[:, 0]
        c = cond.encode(layers[rows], energies[rows], groups=slots[rows])[:, 0]
        assert float(g.std()) < 0.15
        assert 0.7 < float(c.std()) < 1.3
        assert abs(float(c.mean())) < 0.3
    code = cond.encode(layers, energies, seed=1, groups=slots)
    np.testing.assert_allclose(cond.decode(code, energies, slots), layers, rtol=2e-4, atol=1e-6)
    # decoded with another slot's statistics, a code means another response
    other = cond.decode(code, energies, 1 - slots)
    assert not np.allclose(other.sum(1), layers.sum(1), rtol=0.05)
    again = LayerTransform.from_dict(cond.to_dict())
    assert again == cond


def test_conditional_code_polynomials_stay_within_their_bins_over_the_whole_range() -> None:
    # bins covering t in [0.2, 1] only (a layer defined only at high energy), a spread that
    # falls steeply: the quadratic through them would dive far below every bin at t = -1
    centre = np.linspace(0.2, 1.0, 9)
    log_std = -3 * (centre - 0.6) ** 2 + 0.5 * centre
    mean = 0.3 * centre
    means, spreads = _bounded_fit(centre, mean, log_std, np.ones(9))
    grid = np.linspace(-1, 1, 101)
    assert np.polyval(np.polyfit(centre, log_std, 2), -1.0) < log_std.min() - 3  # the dive
    assert (np.polyval(spreads, grid) >= log_std.min() - np.log(2) - 1e-9).all()
    assert (np.polyval(spreads, grid) <= log_std.max() + np.log(2) + 1e-9).all()
    assert len(means) == len(spreads) == 3
    # a well-behaved quadratic over the whole range is kept as it is
    centre = np.linspace(-1, 1, 9)
    log_std = 0.2 * centre**2 - 0.3 * centre
    means, spreads = _bounded_fit(centre, 0.3 * centre, log_std, np.ones(9))
    np.testing.assert_allclose(spreads, [0.2, -0.3, 0.0], atol=1e-9)
    np.testing.assert_allclose(means, [0.0, 0.3, 0.0], atol=1e-9)


def test_conditional_code_spare_slot_uses_global_statistics() -> None:
    layers, energies, slots = _two_detectors(n=500)
    cond = LayerTransform.fit(layers, energies, groups=slots, conditional=True)
    glob = replace(cond, code_fit=(), code_range=())  # the global statistics, on the same scale
    assert not glob.conditional
    assert glob.total_scale == cond.total_scale == CODE_SCALE
    code = glob.encode(layers, energies, seed=2, groups=slots)
    np.testing.assert_allclose(cond.decode(code, energies, 2), glob.decode(code, energies), rtol=1e-6)  # fmt: skip
    # energies beyond the training range use the polynomials at its ends
    far = cond.decode(code[:2], np.array([1.0, 1e9]), 0)
    assert np.isfinite(far).all()


def test_a_homogeneous_detector_gets_its_own_slot_statistics_in_a_sampling_code() -> None:
    """Adapting to a detector of response ~1 (the sampling ones' global scale is ~0.3): its
    slot is fitted, its code round-trips and spreads ~1, and the known slots keep theirs."""
    layers, energies, slots = _two_detectors()
    cond = LayerTransform.fit(layers, energies, groups=slots, conditional=True)
    assert cond.scale < 0.5  # the shape model's conditions keep the training scale
    rng = np.random.default_rng(8)
    new_e = 10.0 ** rng.uniform(3, 5, 2000)
    total = new_e * 0.95 * (1 + 0.02 / np.sqrt(new_e / 1e3) * rng.standard_normal(2000))
    new_layers = total[:, None] * rng.dirichlet(np.ones(MESH[0]) * 2.0, 2000)
    adapted = cond.with_slot_codes(new_layers, new_e, np.full(2000, 2))
    assert adapted.code_fit[:2] == cond.code_fit
    assert len(adapted.code_fit) == 3
    code = adapted.encode(new_layers, new_e, groups=np.full(2000, 2))
    assert 0.7 < float(code[new_e > 3e4, 0].std()) < 1.3
    np.testing.assert_allclose(adapted.decode(code, new_e, 2), new_layers, rtol=2e-4, atol=1e-6)


def test_conditional_code_refused_when_malformed() -> None:
    layers, energies, slots = _two_detectors(n=300)
    data = LayerTransform.fit(layers, energies, groups=slots, conditional=True).to_dict()
    data["code_fit"] = [row[:1] for row in data["code_fit"]]
    with pytest.raises(SpecError, match="code_fit"):
        LayerTransform.from_dict(data)
    with pytest.raises(SpecError, match="occupancy"):
        LayerTransform.fit(layers, energies, occupancy=False, conditional=True)


def test_layer_transform_is_bounded() -> None:
    """Any network output decodes to non-negative layers summing to at most scale * E_inc."""
    showers, energies = _showers()
    transform = LayerTransform.fit(layer_energies(showers, MESH), energies)
    wild = np.random.default_rng(1).normal(0, 50, (50, MESH[0]))
    layers = transform.inverse(wild, energies)
    assert (layers >= 0).all()
    assert (layers.sum(axis=1) <= transform.scale * energies * (1 + 1e-9)).all()


def _sparse_layers(n: int = 400, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Layer energies with empty layers anywhere: first, in between, at the end, all."""
    rng = np.random.default_rng(seed)
    energies = 10.0 ** rng.uniform(3, 5, n)
    layers = rng.gamma(2.0, 1.0, (n, MESH[0])) * energies[:, None] * 1e-3
    layers[rng.random((n, MESH[0])) < 0.3] = 0.0
    layers[:5, 2:] = 0.0  # ends early
    layers[5:8] = 0.0
    layers[5:8, 3] = energies[5:8] * 0.01  # one layer only
    return layers, energies


def test_occupancy_code_round_trips_with_empty_layers() -> None:
    layers, energies = _sparse_layers()
    transform = LayerTransform.fit(layers, energies)
    assert transform.occupancy
    assert transform.width == 2 * MESH[0]
    code = transform.encode(layers, energies, seed=3)
    assert code.shape == (len(layers), 2 * MESH[0])
    np.testing.assert_array_equal(code[:, MESH[0] :] > 0, layers > 0)  # the occupancy bits
    defined = LayerTransform.defined(layers)
    assert abs(float(code[:, : MESH[0]][defined].mean())) < 0.1  # standardised where defined
    decoded = transform.decode(code, energies)
    np.testing.assert_array_equal(decoded > 1e-9, layers > 0)  # empty layers come out 0
    np.testing.assert_allclose(decoded, layers, rtol=2e-4, atol=1e-6)
    # the filler is noise the decoder ignores
    np.testing.assert_allclose(transform.decode(transform.encode(layers, energies, seed=4), energies), decoded)  # fmt: skip
    assert LayerTransform.from_dict(transform.to_dict()) == transform
    classic = LayerTransform.fit(layers, energies, occupancy=False)
    assert classic.width == MESH[0]
    np.testing.assert_array_equal(classic.encode(layers, energies), classic.forward(layers, energies))  # fmt: skip


def test_an_undefined_code_value_borrows_a_defined_one_of_its_group_and_energy() -> None:
    """Where a layer's logit is undefined, the code holds that dimension's value from a shower
    of the same group and nearly the same incident energy: the value is then distributed alike
    whatever the bit (no mixture with a foreign filler)."""
    rng = np.random.default_rng(5)
    n, z = 4000, MESH[0]
    energies = np.exp(rng.uniform(np.log(1e3), np.log(1e5), n))
    groups = np.arange(n) % 2
    layers = np.zeros((n, z))
    layers[:, 0] = np.where(groups == 0, 0.01, 0.02) * energies  # differs between the groups
    layers[:, 1:] = energies[:, None] * 0.02
    layers[rng.random(n) < 0.5, 0] = 0.0  # half the first layers empty
    transform = LayerTransform.fit(layers, energies)
    code = transform.encode(layers, energies, seed=1, groups=groups)
    empty = layers[:, 0] == 0
    for g in (0, 1):
        held = code[(groups == g) & ~empty, 1]
        borrowed = code[(groups == g) & empty, 1]
        assert np.ptp(held) < 1e-3  # one value per group: u_1 is fixed
        np.testing.assert_allclose(borrowed, held[0], atol=1e-3)
    assert abs(code[(groups == 0) & ~empty, 1][0] - code[(groups == 1) & ~empty, 1][0]) > 0.5
    # donors are near in energy: u_0 (always defined) is untouched, and a dimension that
    # varies with energy borrows from the same energy
    np.testing.assert_array_equal(code[:, 0], transform.encode(layers, energies, seed=2)[:, 0])
    layers[:, 0] = np.where(layers[:, 0] > 0, 1e-4 * energies**1.5, 0.0)
    transform = LayerTransform.fit(layers, energies)
    code = transform.encode(layers, energies, seed=1)
    nearest = np.argsort(np.abs(np.log(energies[~empty])[None, :] - np.log(energies[empty])[:, None]), axis=1)[:, 0]  # fmt: skip
    gap = np.abs(code[empty, 1] - code[~empty, 1][nearest])
    assert np.quantile(gap, 0.99) < 0.05 * np.ptp(code[~empty, 1])


def test_occupancy_code_decodes_any_output_to_the_total() -> None:
    """Whatever the network outputs, the layers are >= 0, sum to the decoded total, and a
    shower with no occupancy bit set still holds its energy (in the layer of the largest)."""
    layers, energies = _sparse_layers()
    transform = LayerTransform.fit(layers, energies)
    wild = np.random.default_rng(1).normal(0, 5, (len(layers), 2 * MESH[0]))
    wild[:10, MESH[0] :] = -np.abs(wild[:10, MESH[0] :]) - 0.1  # no layer occupied
    decoded = transform.decode(wild, energies)
    assert (decoded >= 0).all()
    x0 = wild[:, 0] * transform.code_std[0] + transform.code_mean[0]
    total = (1 / (1 + np.exp(-x0)) - transform.alpha) / (1 - 2 * transform.alpha)
    np.testing.assert_allclose(decoded.sum(axis=1), np.clip(total, 0, 1) * transform.scale * energies, rtol=1e-9)  # fmt: skip
    some = np.flatnonzero(total[:10] > 0)  # (a shower whose total came out 0 holds nothing)
    assert len(some) > 5
    assert ((decoded[some] > 0).sum(axis=1) == 1).all()
    best = wild[some, MESH[0] :].argmax(axis=1)
    assert (decoded[some, best] > 0).all()


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


def test_fraction_code_round_trips_with_an_occupancy_channel() -> None:
    showers, energies = _showers()
    layers = layer_energies(showers, MESH)
    v = int(np.prod(MESH))
    transform = FractionTransform.fit(showers, MESH)
    assert transform.occupancy
    assert transform.channels == 2
    code = transform.encode(showers)
    assert code.shape == (len(showers), 2 * v)
    assert code.dtype == np.float32
    np.testing.assert_array_equal(code[:, v:] > 0, showers > 0)  # the occupancy bits
    held = code[:, :v][showers > 0]
    assert abs(float(held.mean())) < 0.1
    assert abs(float(held.std()) - 1) < 0.2
    assert (code[:, :v][showers == 0] == 0).all()
    back = transform.decode(code, layers)
    np.testing.assert_array_equal(back > 0, showers > 0)  # empty voxels come out exactly 0
    np.testing.assert_allclose(back, showers, rtol=1e-4, atol=1e-5)
    # whatever the network says, each layer holds exactly the energy asked for, even with no
    # bit set (then in its voxel of largest bit)
    wild = np.random.default_rng(2).normal(0, 30, code.shape)
    wild[:4, v:] = -np.abs(wild[:4, v:]) - 1
    out = transform.decode(wild, layers)
    np.testing.assert_allclose(layer_energies(out, MESH), layers, rtol=1e-9)
    by_layer = out[:4].reshape(4, MESH[0], -1)
    assert ((by_layer > 0).sum(axis=2) == (layers[:4] > 0)).all()  # one voxel per layer
    assert FractionTransform.from_dict(transform.to_dict()) == transform
    # in training, an empty voxel's value is that voxel's value in another shower of the same
    # group that holds energy there; the decoder ignores it
    groups = np.arange(len(showers)) % 2
    borrowed = transform.encode(showers, energies, seed=1, groups=groups)
    np.testing.assert_array_equal(borrowed[:, v:], code[:, v:])
    np.testing.assert_array_equal(borrowed[:, :v][showers > 0], code[:, :v][showers > 0])
    for j in np.flatnonzero(((showers == 0).any(axis=0)) & ((showers > 0).sum(axis=0) > 1))[:50]:
        for g in (0, 1):
            mine = groups == g
            held = code[mine & (showers[:, j] > 0), j]
            if len(held):
                assert np.isin(borrowed[mine & (showers[:, j] == 0), j], held).all()
    np.testing.assert_allclose(transform.decode(borrowed, layers), back)
    classic = FractionTransform.fit(showers, MESH, occupancy=False)
    assert classic.channels == 1
    np.testing.assert_array_equal(classic.encode(showers), classic.forward(showers))


def test_drawn_sums_measure_how_far_the_drawn_shares_are_from_their_layer() -> None:
    showers, _ = _showers()
    layers = layer_energies(showers, MESH)
    v = int(np.prod(MESH))
    transform = FractionTransform.fit(showers, MESH)
    held = layers > 0
    sums = transform.drawn_sums(transform.encode(showers), layers)  # Geant4's own shares
    np.testing.assert_allclose(sums[held], 1.0, rtol=1e-4)
    assert (sums[~held] == 0).all()
    # a code drawing two voxels of every layer with 0.3 each: sums 0.6, and decode gives each
    # voxel half its layer
    n, per_layer = len(showers), v // MESH[0]
    f = np.zeros((n, MESH[0], per_layer))
    f[:, :, :2] = 0.3
    p = transform.alpha + (1 - 2 * transform.alpha) * f.reshape(n, v)
    logits = (np.log(p / (1 - p)) - np.asarray(transform.code_mean)) / np.asarray(
        transform.code_std
    )
    code = np.concatenate([logits, np.where(f.reshape(n, v) > 0, 1.0, -1.0)], axis=1)
    np.testing.assert_allclose(transform.drawn_sums(code, layers), 0.6, rtol=1e-6)
    out = transform.decode(code, layers).reshape(n, MESH[0], per_layer)
    np.testing.assert_allclose(out[:, :, 0], layers / 2, rtol=1e-9)
    np.testing.assert_allclose(out[:, :, 1], layers / 2, rtol=1e-9)
    with pytest.raises(SpecError):
        FractionTransform.fit(showers, MESH, occupancy=False).drawn_sums(code[:, :v], layers)


def test_log_energy_code_round_trips_and_shares_the_layer_by_the_energies_drawn() -> None:
    showers, energies = _showers()
    layers = layer_energies(showers, MESH)
    v = int(np.prod(MESH))
    transform = FractionTransform.fit(showers, MESH, values="log-energy")
    assert transform.values == "log-energy"
    assert FractionTransform.from_dict(transform.to_dict()) == transform
    code = transform.encode(showers, energies, seed=1)
    np.testing.assert_array_equal(code[:, v:] > 0, showers > 0)
    held = code[:, :v][showers > 0]
    assert abs(float(held.mean())) < 0.1
    assert abs(float(held.std()) - 1) < 0.2
    x = code[:, :v] * np.asarray(transform.code_std) + np.asarray(transform.code_mean)
    np.testing.assert_allclose(np.exp(x)[showers > 0], showers[showers > 0], rtol=1e-4)
    back = transform.decode(code, layers)
    np.testing.assert_array_equal(back > 0, showers > 0)
    np.testing.assert_allclose(back, showers, rtol=1e-4, atol=1e-5)
    held_layers = layers > 0
    np.testing.assert_allclose(transform.drawn_sums(code, layers)[held_layers], 1.0, rtol=1e-4)
    # energies drawn twice too large: the sums say 2, decode gives the same shares
    doubled = code.copy()
    doubled[:, :v] = np.where(showers > 0, (x + np.log(2) - np.asarray(transform.code_mean)) / np.asarray(transform.code_std), code[:, :v])  # fmt: skip
    np.testing.assert_allclose(transform.drawn_sums(doubled, layers)[held_layers], 2.0, rtol=1e-4)
    np.testing.assert_allclose(transform.decode(doubled, layers), back, rtol=1e-5)  # float32 code
    # whatever the network says (values far out of range too), each layer holds its energy
    wild = np.random.default_rng(2).normal(0, 300, code.shape)
    out = transform.decode(wild, layers)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(layer_energies(out, MESH), layers, rtol=1e-9)
    # the classic fractions stay the default; a log-energy code needs occupancy bits
    assert FractionTransform.fit(showers, MESH).values == "fraction"
    with pytest.raises(SpecError, match="need occupancy bits"):
        FractionTransform.fit(showers, MESH, occupancy=False, values="log-energy")
    with pytest.raises(SpecError, match="unknown voxel values"):
        FractionTransform.from_dict({**transform.to_dict(), "values": "energy"})


def test_fraction_by_layer_code_follows_the_layer_energy_and_round_trips() -> None:
    """Fractions that go as 1 / E_layer (a halo of fixed hit energies): the code's line in the
    log layer energy takes that slope, and its values have about unit spread."""
    rng = np.random.default_rng(4)
    n, (z, a, r) = 400, MESH
    layers = 10 ** rng.uniform(0.5, 3, (n, z))  # 3 to 1000 MeV
    hits = rng.lognormal(np.log(0.3), 0.5, (n, z, a, r - 1))  # outer hits, ~0.3 MeV
    hits *= rng.random((n, z, a, r - 1)) < 0.5
    core = np.clip(layers - hits.sum(axis=(2, 3)), 0.1, None)[..., None] / a * np.ones((n, z, a))
    showers = np.concatenate([core[..., None], hits], axis=3).reshape(n, -1)
    energies = 10 ** rng.uniform(3, 5, n)
    v = showers.shape[1]
    transform = FractionTransform.fit(showers, MESH, values="fraction-by-layer")
    assert transform.values == "fraction-by-layer"
    assert FractionTransform.from_dict(transform.to_dict()) == transform
    slope = np.asarray(transform.code_slope).reshape(z, a, r)
    np.testing.assert_allclose(slope[:, :, 1:], -1.0, atol=0.1)  # hits: f ~ 1 / E_layer
    assert (np.abs(slope[:, :, 0]) < 0.5).all()  # the core: a share of the layer
    code = transform.encode(showers, energies, seed=1)
    np.testing.assert_array_equal(code[:, v:] > 0, showers > 0)
    held = code[:, :v][showers > 0]
    assert abs(float(held.mean())) < 0.1
    assert abs(float(held.std()) - 1) < 0.2
    # the code's unit is the spread of a hit's energy (0.5 in log), not that of the layer
    # energies, which a global standardisation of the same logits adds to it
    spread = np.asarray(transform.code_std).reshape(z, a, r)[:, :, 1:]
    np.testing.assert_allclose(spread, 0.5, atol=0.1)
    plain = np.asarray(FractionTransform.fit(showers, MESH).code_std).reshape(z, a, r)[:, :, 1:]
    assert (plain > 2.5 * spread).all()
    back = transform.decode(code, layer_energies(showers, MESH))
    np.testing.assert_allclose(back, showers, rtol=1e-4, atol=1e-6)
    sums = transform.drawn_sums(code, layer_energies(showers, MESH))
    np.testing.assert_allclose(sums, 1.0, rtol=1e-4)
    wild = np.random.default_rng(2).normal(0, 300, code.shape)
    out = transform.decode(wild, layers)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(layer_energies(out, MESH), layers, rtol=1e-9)
    with pytest.raises(SpecError, match="need occupancy bits"):
        FractionTransform.fit(showers, MESH, occupancy=False, values="fraction-by-layer")
    with pytest.raises(SpecError, match="code_slope"):
        FractionTransform.from_dict({**transform.to_dict(), "code_slope": [0.0]})


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


def test_rescaled_layers_borrow_a_shape_for_a_layer_that_was_empty() -> None:
    showers, energies = _showers()
    showers[10:20, : 2 * 12] = 0.0  # the first two layers empty in ten showers
    layers = layer_energies(showers, MESH)
    new = np.random.default_rng(5).uniform(1.0, 100.0, layers.shape)  # energy in every layer
    kept = rescale_layers(showers, MESH, new)  # without energies an empty layer stays empty
    assert (layer_energies(kept, MESH)[10:20, :2] == 0).all()
    out = rescale_layers(showers, MESH, new, energies)
    np.testing.assert_allclose(layer_energies(out, MESH), new, rtol=1e-5)
    # the borrowed shape is that of the shower of nearest incident energy with the layer
    i = 10
    others = np.flatnonzero(layers[:, 0] > 0)
    donor = others[np.argmin(np.abs(energies[others] - energies[i]))]
    f = FractionTransform.fit(showers, MESH, occupancy=False)
    np.testing.assert_allclose(f.fractions(out)[i, :12], f.fractions(showers)[donor, :12], atol=1e-6)  # fmt: skip


def test_a_rarely_occupied_voxel_is_standardised_by_the_pooled_spread() -> None:
    """A voxel that held energy in two training showers, with the same fraction, does not
    standardise a third shower's fraction there to thousands (the validation loss of a study
    run was 81 for that)."""
    showers, _ = _showers()
    rare = 11  # the last voxel of the first layer (12 voxels per layer)
    showers[:3, :rare] += 1.0  # the first layer holds energy in the first showers
    showers[:, rare] = 0.0
    showers[:2, rare] = showers[:2, :rare].sum(axis=1) * 0.01
    transform = FractionTransform.fit(showers, MESH)
    other = showers[2:3].copy()
    other[0, rare] = other[0, :rare].sum() * 0.5
    assert abs(float(transform.encode(other)[0, rare])) < 20


def test_the_shape_model_sees_the_log_layer_energies_beside_the_logits() -> None:
    layers, energies = _sparse_layers()
    transform = LayerTransform.fit(layers, energies)
    z = MESH[0]
    assert transform.cond_width == 2 * z
    cond = transform.conditions(layers, energies)
    assert cond.shape == (len(layers), 2 * z)
    assert cond.dtype == np.float32
    np.testing.assert_array_equal(cond[:, :z], transform.forward(layers, energies))
    logs = cond[:, z:]
    np.testing.assert_allclose(logs.mean(axis=0), 0.0, atol=1e-5)  # standardised per layer
    np.testing.assert_allclose(logs.std(axis=0), 1.0, rtol=1e-4)
    # monotonic in each layer's energy, and an empty layer sits below every held one
    col = layers[:, 2]
    order = np.argsort(col)
    assert (np.diff(logs[order, 2]) >= 0).all()
    assert logs[col == 0, 2].max() < logs[col > 0, 2].min()
    assert LayerTransform.from_dict(transform.to_dict()) == transform
    # models trained before the logs: the logits alone, and their records load as they were
    old = LayerTransform.fit(layers, energies, logs=False)
    assert old.cond_width == z
    np.testing.assert_array_equal(old.conditions(layers, energies), old.forward(layers, energies))
    record = old.to_dict()
    assert "log_mean" not in record
    assert LayerTransform.from_dict(record) == old
    with pytest.raises(SpecError, match="log_mean and log_std"):
        LayerTransform.from_dict({**transform.to_dict(), "log_std": [1.0]})
