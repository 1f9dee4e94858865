"""Tests of caloforge.evaluate.plots: every plot writes a PNG and leaves no figure open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caloforge.errors import DataError
from caloforge.evaluate import metrics, plots, showerplots
from caloforge.evaluate.features import HighLevelFeatures, compute_features
from caloforge.geometry.binning import Binning, calochallenge_binning

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOG_FAMILIES = ("e_layer",)


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


@pytest.fixture(autouse=True)
def _no_open_figures():
    yield
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


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
    "dataset-1": calochallenge_binning("1-photons"),
}


@pytest.fixture(params=list(BINNINGS), scope="module")
def sample(request) -> dict:
    binning = BINNINGS[request.param]
    n = 60
    energies = np.full(n, 1000.0)
    ref_showers = synthetic_showers(binning, n, seed=1)
    gen_showers = synthetic_showers(binning, n, seed=2, scale=1.1)
    ref = compute_features(ref_showers, energies, binning, threshold_mev=0.0)
    gen = compute_features(gen_showers, energies, binning, threshold_mev=0.0)
    edges, separation = {}, {}
    gen_named = gen.named()
    for name, values in ref.named().items():
        log = name.startswith(LOG_FAMILIES)
        edges[name] = metrics.histogram_edges(values, bins=20, log=log)
        separation[name] = metrics.separation_power(
            metrics.histogram(values, edges[name]), metrics.histogram(gen_named[name], edges[name])
        )
    return {
        "binning": binning,
        "ref_showers": ref_showers,
        "gen_showers": gen_showers,
        "ref": ref,
        "gen": gen,
        "edges": edges,
        "separation": separation,
    }


def test_feature_histograms(sample, tmp_path):
    edges = sample["edges"]
    if sample["binning"].is_regular:  # 45 layers: three families keep the test quick
        edges = {k: v for k, v in edges.items() if k.startswith(("e_ratio", "e_layer", "ec_eta"))}
        expected = {"e_ratio.png", "e_layer.png", "ec_eta.png"}
    else:
        expected = {"e_ratio.png", "e_layer.png", "ec_r.png", "width_r.png", "sparsity.png"}
        expected |= {f"{f}.png" for f in ("ec_eta", "ec_phi", "width_eta", "width_phi")}
    log_x = [name for name in edges if name.startswith(LOG_FAMILIES)]
    paths = plots.plot_feature_histograms(
        sample["ref"], sample["gen"], edges, sample["separation"], tmp_path, log_x=log_x
    )
    assert {path.name for path in paths} == expected
    assert paths[0].name == "e_ratio.png"
    for path in paths:
        assert_png(path)


def test_feature_histograms_skip_missing_families(sample, tmp_path):
    edges = {k: v for k, v in sample["edges"].items() if k.startswith(("e_layer", "e_ratio"))}
    paths = plots.plot_feature_histograms(
        sample["ref"], sample["gen"], edges, sample["separation"], tmp_path
    )
    assert [path.name for path in paths] == ["e_ratio.png", "e_layer.png"]


def test_separation_summary(sample, tmp_path):
    separation = dict(sample["separation"])
    separation.update(voxel_spectrum=0.01, profile_z=0.0, profile_r=3e-4)
    baseline = {name: value / 10.0 for name, value in separation.items()}
    for base in (baseline, None):
        path = plots.plot_separation_summary(separation, base, tmp_path / f"s_{base is None}.png")
        assert_png(path)


def test_voxel_spectrum(sample, tmp_path):
    ref_voxels = sample["ref_showers"].ravel()
    edges = metrics.histogram_edges(ref_voxels, bins=30, log=True)
    ref_counts = metrics.histogram(ref_voxels[ref_voxels > 0], edges)
    gen_voxels = sample["gen_showers"].ravel()
    gen_counts = metrics.histogram(gen_voxels[gen_voxels > 0], edges)
    s = metrics.separation_power(ref_counts, gen_counts)
    assert_png(plots.plot_voxel_spectrum(ref_counts, gen_counts, edges, s, tmp_path / "v.png"))


def test_profiles(sample, tmp_path):
    ref, gen = sample["ref"], sample["gen"]
    assert_png(plots.plot_profiles(ref, gen, tmp_path / "p.png", title="test"))
    half = np.arange(len(ref)) < len(ref) // 2
    groups = [("low", ref.select(half), gen.select(half)), ("high", ref.select(~half), gen)]
    assert_png(plots.plot_profiles_per_condition(groups, tmp_path / "pc.png"))


def test_average_shower(sample, tmp_path):
    path = showerplots.plot_average_shower(
        sample["ref_showers"].mean(axis=0),
        sample["gen_showers"].mean(axis=0),
        sample["binning"],
        tmp_path / "avg.png",
    )
    assert_png(path)


def test_average_shower_rejects_wrong_length(sample, tmp_path):
    with pytest.raises(DataError):
        showerplots.plot_average_shower(
            np.ones(3), np.ones(3), sample["binning"], tmp_path / "a.png"
        )


def test_showers(sample, tmp_path):
    showers = np.concatenate([sample["ref_showers"][:3], sample["gen_showers"][:3]])
    showers[-1] = 0.0  # an empty shower must not break the log colour scale
    titles = [f"Geant4 {i}" for i in range(3)] + [f"generated {i}" for i in range(3)]
    path = showerplots.plot_showers(
        showers, sample["binning"], titles, tmp_path / "sh.png", suptitle="x"
    )
    assert_png(path)


def test_showers_rejects_too_many(sample, tmp_path):
    showers = sample["ref_showers"][:9]
    with pytest.raises(DataError):
        showerplots.plot_showers(showers, sample["binning"], ["a"] * 9, tmp_path / "sh.png")


def test_anomaly_scores(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.normal(-0.45, 0.03, 500)
    gen = np.concatenate([rng.normal(-0.45, 0.03, 450), rng.normal(-0.6, 0.02, 50)])
    assert_png(showerplots.plot_anomaly_scores(ref, gen, tmp_path / "iso.png"))


def test_empty_and_nan_inputs(sample, tmp_path):
    """Empty samples and all-NaN features give 'no data' panels, not exceptions."""
    ref: HighLevelFeatures = sample["ref"]
    empty = ref.select(np.zeros(len(ref), dtype=bool))
    edges = {k: v for k, v in sample["edges"].items() if k.startswith(("e_ratio", "ec_eta"))}
    paths = plots.plot_feature_histograms(ref, empty, edges, {}, tmp_path / "features")
    assert [path.name for path in paths] == ["e_ratio.png", "ec_eta.png"]
    for path in paths:
        assert_png(path)
    assert_png(plots.plot_profiles(ref, empty, tmp_path / "p.png"))
    assert_png(plots.plot_profiles_per_condition([], tmp_path / "pc.png"))
    assert_png(plots.plot_separation_summary({}, None, tmp_path / "s.png"))
    nan = np.full(5, np.nan)
    assert_png(showerplots.plot_anomaly_scores(nan, np.zeros(0), tmp_path / "iso.png"))
    edges = np.logspace(-2, 2, 11)
    assert_png(
        plots.plot_voxel_spectrum(np.zeros(10), np.zeros(10), edges, 0.0, tmp_path / "v.png")
    )
    binning = sample["binning"]
    zeros = np.zeros(binning.n_voxels)
    assert_png(showerplots.plot_average_shower(zeros, zeros, binning, tmp_path / "avg.png"))
    assert_png(
        showerplots.plot_showers(np.zeros((0, binning.n_voxels)), binning, [], tmp_path / "s0.png")
    )


def test_import_does_not_load_pyplot():
    code = "import caloforge.evaluate.plots, sys; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
