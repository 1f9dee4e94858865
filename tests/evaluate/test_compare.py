"""The in-memory entry point: ``compare`` on two shower sets gives what ``evaluate`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caloforge.config import ClassifierConfig, EvaluationConfig
from caloforge.data.readers import read_showers
from caloforge.errors import DataError
from caloforge.evaluate import HEADLINE, Comparison, compare, evaluate
from caloforge.geometry.mesh import MeshSpec

SMALL = MeshSpec(n_z=6, n_phi=4, n_r=3)
CONFIG = EvaluationConfig(classifier=ClassifierConfig(epochs=2, repeats=1), plots=False)


def _file(make, path: Path, seed: int, width: float = 1.5) -> Path:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    n = 200
    energies = 10.0 ** rng.uniform(3.0, 5.0, n)
    z = np.arange(SMALL.n_z)[:, None, None]
    r = np.arange(SMALL.n_r)[None, None, :]
    shape = np.exp(-0.5 * ((z - 2.0) / width) ** 2 - r) * np.ones((1, SMALL.n_phi, 1))
    shape = (shape / shape.sum()).reshape(-1)
    showers = rng.gamma(5.0, shape / 5.0, size=(n, SMALL.n_voxels)) * 0.03 * energies[:, None]
    return make(path, mesh=SMALL, energies=energies, showers=showers, seed=seed)


def test_compare_in_memory_equals_the_file_evaluation(make_caloforge_file, tmp_path: Path) -> None:
    ref_path = _file(make_caloforge_file, tmp_path / "ref.h5", seed=1)
    gen_path = _file(make_caloforge_file, tmp_path / "gen.h5", seed=2, width=2.5)
    written = evaluate(ref_path, gen_path, tmp_path / "report", CONFIG, progress=None)
    before = sorted(p.name for p in tmp_path.iterdir())

    result = compare(read_showers(ref_path), read_showers(gen_path), CONFIG)

    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert isinstance(result, Comparison)
    assert (result.n_reference, result.n_generated) == (200, 200)
    on_disk = json.loads((tmp_path / "report" / "metrics.json").read_text())
    for metric in HEADLINE:
        ours, theirs = result.headline(metric), written.headline(metric)
        assert ours is not None
        assert theirs is not None
        assert ours.value == pytest.approx(on_disk[metric.key]["value"], rel=1e-9)
        assert ours == theirs
    assert result.separation_power == pytest.approx(on_disk["separation_power"])
    assert result.baseline is not None
    assert result.baseline.fpd == written.baseline.fpd  # type: ignore[union-attr]
    # a wider longitudinal profile is seen: far above the Geant4 baseline
    assert result.separation_power["profile_z"] > 10 * result.baseline.separation_power["profile_z"]


def test_compare_writes_a_report_only_when_asked(make_caloforge_file, tmp_path: Path) -> None:
    ref = read_showers(_file(make_caloforge_file, tmp_path / "ref.h5", seed=1))
    result = compare(ref, ref, CONFIG, out_dir=tmp_path / "r")
    assert (tmp_path / "r" / "metrics.json").exists()
    assert (tmp_path / "r" / "index.html").exists()
    assert max(result.separation_power.values()) == 0.0  # identical samples


def test_compare_refuses_what_evaluate_refuses(make_caloforge_file, tmp_path: Path) -> None:
    ref = read_showers(_file(make_caloforge_file, tmp_path / "ref.h5", seed=1))
    bad = read_showers(_file(make_caloforge_file, tmp_path / "gen.h5", seed=2))
    bad.showers[3, 0] = np.nan
    with pytest.raises(DataError, match="<generated>: 1 showers with NaN"):
        compare(ref, bad, CONFIG)


def test_the_headline_is_defined_once_and_shown_everywhere(
    make_caloforge_file, tmp_path: Path
) -> None:
    ref = read_showers(_file(make_caloforge_file, tmp_path / "ref.h5", seed=1))
    gen = read_showers(_file(make_caloforge_file, tmp_path / "gen.h5", seed=2))
    result = compare(ref, gen, CONFIG, out_dir=tmp_path / "r")
    html = (tmp_path / "r" / "index.html").read_text()
    table, markdown = result.table(), result.markdown()
    assert result.fpd is not None
    fpd_shown = result.fpd.format(1e3)  # FPD is displayed x 10^3
    for metric in HEADLINE:
        assert metric.label in table
        assert metric.label in markdown
        assert metric.label in html
    assert fpd_shown in table
    assert fpd_shown in markdown
    assert result.fpd.format(1e3, plus_minus="&plusmn;") in html


def test_the_verdict_follows_the_worse_auc() -> None:
    def result(low: float | None, high: float) -> Comparison:
        entry = {"n_reference": 10, "n_generated": 10, "separation_power": {"e_ratio": 0.0}}
        entry["separation_power_summary"] = {"mean": 0.0}
        entry["auc_high"] = {"value": high, "error": 0.01}
        if low is not None:
            entry["auc_low"] = {"value": low, "error": 0.01}
        return Comparison.from_metrics(entry)

    assert result(0.55, 0.58).verdict() == "GOOD"
    assert result(0.55, 0.7).verdict() == "FAIR"
    assert result(0.9, 0.58).verdict() == "POOR"
    assert result(None, 0.58).verdict() == "POOR"  # no low-level AUC: not shown to be good
