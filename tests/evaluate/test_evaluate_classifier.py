"""Tests of caloforge.evaluate.classifier: the CaloChallenge classifier test on small samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caloforge.errors import DataError
from caloforge.evaluate.classifier import ClassifierConfig, classifier_test

SMALL = ClassifierConfig(hidden=32, epochs=8, repeats=2)


def _gaussians(shift: float, seed: int = 0, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.normal(size=(n, 5)) + shift


def test_identical_distributions_cannot_be_told_apart():
    result = classifier_test(*_gaussians(0.0), SMALL, seed=0)
    assert result.auc == pytest.approx(0.5, abs=0.1)
    assert all(abs(auc - 0.5) < 0.15 for auc in result.aucs)
    # JSD ~ 0; the isotonic calibration fitted on 240 test showers overfits a little, and a
    # wrong clipped 1e-6 probability costs much, so small samples give slightly negative values
    assert -0.2 < result.jsd < 0.05
    assert result.n_per_class == 600
    assert len(result.aucs) == len(result.jsds) == len(result.best_epochs) == SMALL.repeats
    assert all(1 <= epoch <= SMALL.epochs for epoch in result.best_epochs)


def test_separated_samples_are_told_apart():
    result = classifier_test(*_gaussians(3.0), SMALL, seed=0)
    assert result.auc > 0.95
    assert result.jsd > 0.5


def test_same_seed_same_result():
    reference, generated = _gaussians(0.3, seed=1)
    first = classifier_test(reference, generated, SMALL, seed=5)
    second = classifier_test(reference, generated, SMALL, seed=5)
    assert first == second
    other = classifier_test(reference, generated, SMALL, seed=6)
    assert other.aucs != first.aucs


def test_uses_the_smaller_sample_size():
    reference, generated = _gaussians(0.0, n=700)
    config = ClassifierConfig(hidden=16, epochs=2, repeats=1)
    assert classifier_test(reference, generated[:600], config).n_per_class == 600
    assert classifier_test(reference[:550], generated, config).n_per_class == 550


@pytest.mark.parametrize(("shift", "stops_early"), [(0.0, False), (8.0, True)])
def test_progress_counts_every_epoch(shift, stops_early, monkeypatch):
    totals: list[int] = []
    calls = []

    def progress(total: int):
        totals.append(total)
        return lambda: calls.append(1)

    # one shuffle per trained epoch: tells whether a training stopped on a perfect test accuracy
    shuffles = []
    randperm = torch.randperm
    monkeypatch.setattr(torch, "randperm", lambda *a, **k: shuffles.append(1) or randperm(*a, **k))

    config = ClassifierConfig(hidden=32, epochs=10, repeats=3)
    classifier_test(*_gaussians(shift), config, seed=0, progress=progress)
    assert totals == [30]
    assert len(calls) == 30
    assert (len(shuffles) < 30) == stops_early


def test_bad_input_raises():
    reference, generated = _gaussians(0.0, n=50)
    with pytest.raises(DataError, match="equal d"):
        classifier_test(reference, generated[:, :4], SMALL)
    with pytest.raises(DataError, match="equal d"):
        classifier_test(reference[:, 0], generated[:, 0], SMALL)
    bad = generated.copy()
    bad[7, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        classifier_test(reference, bad, SMALL)
    bad[7, 2] = np.inf
    with pytest.raises(DataError, match="NaN or inf"):
        classifier_test(bad, generated, SMALL)
    with pytest.raises(DataError, match="at least 10"):
        classifier_test(reference[:9], generated, SMALL)
    with pytest.raises(DataError, match="at least 10"):
        classifier_test(reference, generated[:9], SMALL)
