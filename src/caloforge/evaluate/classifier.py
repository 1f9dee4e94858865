"""The CaloChallenge classifier test: can a neural network tell generated showers from Geant4?

Protocol of ``code/evaluate.py`` of ``CaloChallenge/homepage`` (arXiv:2410.21611):

1. take the same number of showers from each sample and split each 60/20/20 into train, test
   and validation sets;
2. train an MLP (LeakyReLU, one logit, BCE with logits, Adam lr 2e-4, batch 1000) for a fixed
   number of epochs, keeping the epoch with the best test accuracy;
3. fit an isotonic regression (clipped to [1e-6, 1 - 1e-6]) of the labels on the test-set
   probabilities, apply it to the validation set, and report there the ROC AUC and
   ``JSD = (ln 2 - BCE) / ln 2``.

An AUC of 0.5 and a JSD of 0 mean the classifier cannot tell the samples apart; the whole
procedure is repeated with different seeds and the mean and standard deviation reported. The
published network (hidden layers of 2048 units, 50 epochs, float64, 10 trainings) is
:data:`caloforge.config.PUBLISHED_CLASSIFIER`; the default is a smaller network that gives the same protocol on a CPU.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from torch import nn

from caloforge.config import ClassifierConfig
from caloforge.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierResult:
    """AUC and JSD over the repeats (mean and standard deviation).

    Attributes:
        auc, auc_error: ROC AUC on the validation sets after calibration.
        jsd, jsd_error: ``(ln 2 - BCE) / ln 2`` on the validation sets after calibration.
        aucs, jsds: the value of each repeat.
        best_epochs: the epoch kept in each repeat (1-based).
        n_per_class: showers used from each sample.
    """

    auc: float
    auc_error: float
    jsd: float
    jsd_error: float
    aucs: tuple[float, ...]
    jsds: tuple[float, ...]
    best_epochs: tuple[int, ...]
    n_per_class: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "auc": {"value": self.auc, "error": self.auc_error},
            "jsd": {"value": self.jsd, "error": self.jsd_error},
            "aucs": list(self.aucs),
            "jsds": list(self.jsds),
            "best_epochs": list(self.best_epochs),
            "n_per_class": self.n_per_class,
        }


def _mlp(n_inputs: int, config: ClassifierConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_inputs
    for _ in range(config.hidden_layers):
        layers += [nn.Linear(width, config.hidden), nn.LeakyReLU()]
        width = config.hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def _split(n: int, fractions: tuple[float, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """A random partition of range(n) into parts of the given fractions (CaloChallenge's)."""
    counts = (n * np.asarray(fractions)).astype(int)
    return np.split(rng.permutation(n), np.cumsum(counts)[:-1])[: len(fractions)]


def _logits(model: nn.Module, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).reshape(-1) for i in range(0, len(x), batch)])


def _train_once(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    config: ClassifierConfig,
    generator: torch.Generator,
    on_epoch: Callable[[], None] | None,
) -> tuple[nn.Module, int]:
    """Train, keeping the state of the epoch with the best test accuracy."""
    model = _mlp(x_train.shape[1], config).to(x_train.dtype)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    # A batch of 1000 would leave a small training set (a condition bin) a few steps per epoch.
    batch = max(16, min(config.batch_size, len(x_train) // 10))
    best_accuracy, best_epoch, best_state = -math.inf, 0, copy.deepcopy(model.state_dict())
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order), batch):
            index = order[i : i + batch]
            loss = loss_fn(model(x_train[index]).reshape(-1), y_train[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        accuracy = float(((_logits(model, x_test) > 0) == (y_test > 0.5)).double().mean())
        if accuracy > best_accuracy:
            best_accuracy, best_epoch = accuracy, epoch
            best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch()
        if accuracy == 1.0:  # perfect separation: nothing left to learn (CaloChallenge stops too)
            for _ in range(config.epochs - epoch if on_epoch is not None else 0):
                on_epoch()  # type: ignore[misc]
            break
    model.load_state_dict(best_state)
    model.eval()
    return model, best_epoch


def _calibrated_scores(
    model: nn.Module, x_test: torch.Tensor, y_test: np.ndarray, x_val: torch.Tensor
) -> np.ndarray:
    """Validation probabilities after an isotonic calibration fitted on the test set."""
    p_test = torch.sigmoid(_logits(model, x_test)).double().numpy()
    p_val = torch.sigmoid(_logits(model, x_val)).double().numpy()
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1.0 - 1e-6)
    return np.asarray(iso.fit(p_test, y_test).predict(p_val))


def _jsd(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-12, 1.0 - 1e-12)
    bce = -np.mean(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p))
    return float((math.log(2.0) - bce) / math.log(2.0))


def classifier_test(
    reference: np.ndarray,
    generated: np.ndarray,
    config: ClassifierConfig | None = None,
    *,
    seed: int = 0,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> ClassifierResult:
    """Train classifiers to separate two samples; CaloChallenge protocol.

    Args:
        reference: classifier inputs of the reference sample (label 1), shape (N_ref, d).
        generated: classifier inputs of the generated sample (label 0), shape (N_gen, d).
        config: network and training; default :class:`ClassifierConfig`.
        seed: seed of the subsampling, splits, initialisations and batches; repeat ``k`` uses
            ``seed + k``.
        progress: called once with the total number of epochs; returns a callback called
            after each epoch (a progress bar's ``update``).

    Returns:
        Mean and standard deviation over ``config.repeats`` trainings.

    Raises:
        DataError: for samples of different widths, non-finite inputs, or too few showers
            (fewer than 10 per sample).
    """
    config = config or ClassifierConfig()
    if reference.ndim != 2 or generated.ndim != 2 or reference.shape[1] != generated.shape[1]:
        raise DataError(
            f"classifier inputs must be (N, d) with equal d, got {reference.shape} and "
            f"{generated.shape}"
        )
    if not (np.isfinite(reference).all() and np.isfinite(generated).all()):
        raise DataError("classifier inputs contain NaN or inf")
    n = min(len(reference), len(generated))
    if n < 10:
        raise DataError(f"the classifier test needs at least 10 showers per sample, got {n}")
    if config.repeats < 1 or config.epochs < 1:
        raise DataError("the classifier needs at least one repeat and one epoch")
    dtype = torch.float64 if config.float64 else torch.float32
    on_epoch = progress(config.repeats * config.epochs) if progress else None

    aucs, jsds, epochs = [], [], []
    for repeat in range(config.repeats):
        rng = np.random.default_rng(seed + repeat)
        generator = torch.Generator().manual_seed(seed + repeat)
        parts_ref = _split(n, config.split, rng)
        parts_gen = _split(n, config.split, rng)
        rows_ref = rng.choice(len(reference), n, replace=False)
        rows_gen = rng.choice(len(generated), n, replace=False)
        sets = []
        for part_ref, part_gen in zip(parts_ref, parts_gen, strict=True):
            x = np.concatenate([reference[rows_ref[part_ref]], generated[rows_gen[part_gen]]])
            y = np.concatenate([np.ones(len(part_ref)), np.zeros(len(part_gen))])
            sets.append((torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)))
        (x_train, y_train), (x_test, y_test), (x_val, y_val) = sets
        with torch.random.fork_rng():  # seeded initialisation without touching the caller's RNG
            torch.manual_seed(seed + repeat)
            model, best_epoch = _train_once(
                x_train, y_train, x_test, y_test, config, generator, on_epoch
            )
        labels = y_val.double().numpy()
        scores = _calibrated_scores(model, x_test, y_test.double().numpy(), x_val)
        aucs.append(float(roc_auc_score(labels, scores)))
        jsds.append(_jsd(scores, labels))
        epochs.append(best_epoch)
        log.debug("classifier repeat %d: AUC %.4f, best epoch %d", repeat, aucs[-1], best_epoch)
    return ClassifierResult(
        auc=float(np.mean(aucs)),
        auc_error=float(np.std(aucs)),
        jsd=float(np.mean(jsds)),
        jsd_error=float(np.std(jsds)),
        aucs=tuple(aucs),
        jsds=tuple(jsds),
        best_epochs=tuple(epochs),
        n_per_class=n,
    )
