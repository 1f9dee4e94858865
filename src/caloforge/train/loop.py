"""The training loop of the diffusion models: one function, given built objects.

Reproducibility: the showers and the noise of step ``t`` are drawn from a generator seeded with
``(seed, t)`` for the whole global batch, and each process takes its slice. So a run resumed
from a checkpoint, and a run split over several processes (``torchrun``, DDP), see exactly the
batches and noise of an uninterrupted single-process run, and reach the same weights up to
floating-point reassociation.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from caloforge.atomic import atomic_file, os_reason
from caloforge.config import TrainConfig
from caloforge.errors import DataError, OutputError, SpecError
from caloforge.train.checkpoint import checkpoints, load_checkpoint, save_checkpoint
from caloforge.train.distributed import Distributed
from caloforge.train.ema import EMA

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


class TrainingLoss(Protocol):
    """What the loop needs of a loss: per-sample values, and its own noise-level density."""

    def __call__(
        self,
        net: nn.Module,
        x: torch.Tensor,
        cond: torch.Tensor,
        *,
        sigma: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of each sample (B,) at noise levels ``sigma`` (B,) and noise of x's shape."""
        ...

    def noise_levels(self, normal: torch.Tensor) -> torch.Tensor:
        """Noise levels from standard normal draws (the loss's training density)."""
        ...


_CSV_FIELDS = ("step", "loss", "val_loss", "lr", "grad_norm", "samples_per_s", "elapsed_s")


@dataclass(frozen=True)
class BatchNoise:
    """The random draws of one global batch: which showers, noise levels and noise."""

    index: torch.Tensor  # (B,) rows of the training set
    normal: torch.Tensor  # (B,) standard normal, mapped to noise levels by the loss
    noise: torch.Tensor  # (B, *shower shape) standard normal


def draw_batch(n_rows: int, shape: tuple[int, ...], batch: int, seed: int, step: int) -> BatchNoise:
    """The draws of global batch ``step``: a function of (seed, step) only."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    index = torch.randint(0, n_rows, (batch,), generator=generator)
    normal = torch.randn(batch, generator=generator)
    noise = torch.randn((batch, *shape), generator=generator)
    return BatchNoise(index, normal, noise)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr_min`` at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and kernels only (not on biases, norms, embeddings)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


@torch.no_grad()
def validation_loss(
    net: nn.Module,
    loss_fn: TrainingLoss,
    val_x: torch.Tensor,
    val_cond: torch.Tensor,
    config: TrainConfig,
) -> float:
    """Mean loss on the held-out showers, with noise fixed by the seed (comparable over steps)."""
    if len(val_x) == 0:
        return math.nan
    n = min(len(val_x), config.val_batches * config.batch_size)
    total = 0.0
    for start in range(0, n, config.batch_size):
        stop = min(start + config.batch_size, n)
        draws = draw_batch(len(val_x), tuple(val_x.shape[1:]), stop - start, config.seed + 7, start)
        sigma = loss_fn.noise_levels(draws.normal)
        rows = torch.arange(start, stop)
        losses = loss_fn(net, val_x[rows], val_cond[rows], sigma=sigma, noise=draws.noise)
        total += float(losses.sum())
    return total / n


def loss_figure(csv_path: Path) -> Figure | None:
    """The training and validation losses of a run's ``metrics.csv`` against the step.

    Args:
        csv_path: the ``metrics.csv`` written by :func:`train`.

    Returns:
        One log-y panel with the training loss of every logged step and the validation loss
        where it was measured, or None if no step is logged yet.
    """
    from matplotlib.figure import Figure

    steps, losses, val_steps, val_losses = [], [], [], []
    with csv_path.open() as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            losses.append(float(row["loss"]))
            if row["val_loss"]:
                val_steps.append(int(row["step"]))
                val_losses.append(float(row["val_loss"]))
    if not steps:
        return None
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(steps, losses, lw=0.8, alpha=0.7, label="training (per logged step)")
    if val_steps:
        ax.plot(val_steps, val_losses, "o-", label="validation (EMA weights)")
    ax.set_xlabel("step")
    ax.set_ylabel("EDM loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig


def _plot_losses(csv_path: Path, png_path: Path) -> None:
    """Write :func:`loss_figure` to ``png_path`` (atomically), if there is anything to draw."""
    fig = loss_figure(csv_path)
    if fig is None:
        return
    with atomic_file(png_path) as tmp:
        fig.savefig(tmp, dpi=100)


def train(
    net: nn.Module,
    loss_fn: TrainingLoss,
    x: torch.Tensor,
    cond: torch.Tensor,
    val_x: torch.Tensor,
    val_cond: torch.Tensor,
    config: TrainConfig,
    run_dir: Path,
    *,
    dist: Distributed,
    on_checkpoint: Callable[[nn.Module, int], None] | None = None,
    before_step: Callable[[int], None] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    progress: bool = True,
) -> nn.Module:
    """Train ``net`` (the preconditioned denoiser) and return its EMA copy.

    Resumes from ``run_dir/checkpoints`` if a checkpoint is there.

    Args:
        net: the denoiser ``D(x, sigma, cond)``, already built and initialised (same on every
            process).
        loss_fn: ``loss_fn(net, x, cond, *, sigma, noise) -> (B,)``, with the density of its
            noise levels (``loss_fn.noise_levels``).
        x, cond: training showers (N, 1, Z, A, R) and conditions (N, n_cond).
        val_x, val_cond: held-out showers and conditions.
        config: optimisation settings.
        run_dir: the run folder (checkpoints, ``metrics.csv``, ``loss.png``).
        dist: the process group (a single process when not under torchrun).
        on_checkpoint: called on the main process with the EMA model and the step after
            every checkpoint (e.g. to export the weights).
        before_step: called with the step about to be taken (e.g. a loss whose schedule
            follows the step), on every process, also after a resume.
        after_step: called with ``net`` after each optimiser step, before the EMA update
            (e.g. to move a consistency model's target network).
        progress: show a progress bar (main process only).
    """
    if config.batch_size % dist.world_size:
        raise SpecError(
            f"{config.batch_size} must divide evenly over the {dist.world_size} training processes",
            subject="batch_size",
        )
    local = config.batch_size // dist.world_size
    lo, hi = dist.rank * local, (dist.rank + 1) * local
    optimizer = make_optimizer(net, config)
    ema = EMA(net, config.ema_decay)
    ckpt_dir = run_dir / "checkpoints"
    step = _resume(ckpt_dir, net, ema, optimizer)
    model = dist.wrap(net)
    csv_path = run_dir / "metrics.csv"
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _truncate_csv(csv_path, step)
    best, since_best = _validation_history(csv_path, step) if dist.is_main else (math.inf, 0)
    if _agree(dist, bool(config.patience) and since_best >= config.patience):
        log.info("stopped early before (no better validation loss in %d validations)", since_best)
        return ema.model

    bar: Any = None
    if progress and dist.is_main:
        from tqdm import tqdm

        bar = tqdm(
            total=config.steps, initial=step, desc="training", unit="step", dynamic_ncols=True
        )
    start_time, start_step = time.perf_counter(), step
    shape = tuple(x.shape[1:])
    while step < config.steps:
        if before_step is not None:
            before_step(step)
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        draws = draw_batch(len(x), shape, config.batch_size, config.seed, step)
        index = draws.index[lo:hi]
        sigma = loss_fn.noise_levels(draws.normal[lo:hi])
        model.train()
        loss = loss_fn(model, x[index], cond[index], sigma=sigma, noise=draws.noise[lo:hi]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients over the processes
        grad_norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip))
        optimizer.step()
        if after_step is not None:
            after_step(net)
        ema.update(net)
        step += 1
        global_loss = dist.mean(float(loss.detach()))

        if dist.is_main:
            elapsed = time.perf_counter() - start_time
            rate = (step - start_step) * config.batch_size / max(elapsed, 1e-9)
            val = None
            if step % config.val_every == 0 or step == config.steps:
                val = validation_loss(ema.model, loss_fn, val_x, val_cond, config)
            if step % config.log_every == 0 or val is not None:
                _append_csv(
                    csv_path,
                    {
                        "step": step,
                        "loss": f"{global_loss:.6g}",
                        "val_loss": "" if val is None else f"{val:.6g}",
                        "lr": f"{lr:.4g}",
                        "grad_norm": f"{grad_norm:.4g}",
                        "samples_per_s": f"{rate:.1f}",
                        "elapsed_s": f"{elapsed:.1f}",
                    },
                )
            improved = False
            if val is not None:
                _plot_losses(csv_path, run_dir / "loss.png")
                improved = val < best
                best, since_best = (val, 0) if improved else (best, since_best + 1)
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{global_loss:.4f}", samples_s=f"{rate:.0f}")
            stop = bool(config.patience) and since_best >= config.patience
            if step % config.checkpoint_every == 0 or step == config.steps or stop:
                save_checkpoint(ckpt_dir, step, net, ema.model, optimizer, ema.updates, config.keep_every)  # fmt: skip
                if on_checkpoint is not None and not config.patience:
                    on_checkpoint(ema.model, step)
            if on_checkpoint is not None and config.patience and improved:
                on_checkpoint(ema.model, step)  # early stopping exports the best model
            if stop:
                log.info("stopping early at step %d: no better validation loss in %d validations", step, since_best)  # fmt: skip
        else:
            stop = False
        stop = _agree(dist, stop)
        dist.barrier()
        if stop:
            break
    if bar is not None:
        bar.close()
    return ema.model


def _resume(ckpt_dir: Path, net: nn.Module, ema: EMA, optimizer: torch.optim.Optimizer) -> int:
    """Load the newest intact checkpoint (checksums verified); returns its step, 0 if none.

    A damaged checkpoint (a full disk, a killed copy, a bit flip) is skipped for the one
    before it, with a warning that names both.

    Raises:
        DataError: if there are checkpoints and none is intact.
    """
    found = checkpoints(ckpt_dir)
    damaged = []
    for path in found:
        try:
            step, ema.updates = load_checkpoint(path, net, ema.model, optimizer)
        except DataError as exc:
            damaged.append(str(exc))
            continue
        if damaged:
            log.warning("skipped damaged checkpoints (%s); resuming from %s", "; ".join(damaged), path)  # fmt: skip
        else:
            log.info("resuming from %s (step %d)", path, step)
        return step
    if found:
        raise DataError(f"no intact checkpoint in {ckpt_dir}: {'; '.join(damaged)}")
    return 0


def _agree(dist: Distributed, flag: bool) -> bool:
    """The main process's ``flag``, on every process."""
    if not dist.active:
        return flag
    tensor = torch.tensor([float(flag)])
    torch.distributed.broadcast(tensor, 0)
    return bool(tensor.item())


def _validation_history(path: Path, step: int) -> tuple[float, int]:
    """(best validation loss, validations since it) of the rows up to ``step``."""
    best, since = math.inf, 0
    if not path.exists():
        return best, since
    with path.open() as f:
        for row in csv.DictReader(f):
            if int(row["step"]) > step or not row["val_loss"]:
                continue
            value = float(row["val_loss"])
            best, since = (value, 0) if value < best else (best, since + 1)
    return best, since


def _truncate_csv(path: Path, step: int) -> None:
    """Keep the rows up to ``step`` (those of the checkpoint a resumed run starts from)."""
    if not path.exists():
        with path.open("w", newline="") as f:
            csv.DictWriter(f, _CSV_FIELDS).writeheader()
        return
    with path.open() as f:
        rows = [row for row in csv.DictReader(f) if int(row["step"]) <= step]
    with atomic_file(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, _CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    """Append one row (a failed append loses at most that row: a resumed run rewrites the
    file up to its checkpoint)."""
    try:
        with path.open("a", newline="") as f:
            csv.DictWriter(f, _CSV_FIELDS).writerow(row)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
