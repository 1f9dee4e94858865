"""The training loop: a killed run resumes to the same weights; 2 DDP processes = 1 process."""

from __future__ import annotations

import csv
import itertools
import os
import socket
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from caloforge.config import TrainConfig
from caloforge.errors import DataError
from caloforge.train.checkpoint import latest_checkpoint
from caloforge.train.distributed import Distributed, setup
from caloforge.train.loop import draw_batch, learning_rate, loss_figure, train

SHAPE = (1, 4, 4, 3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Tiny(nn.Module):
    """A denoiser D(x, sigma, cond) small enough for exact comparisons."""

    def __init__(self) -> None:
        super().__init__()
        n = 4 * 4 * 3
        self.net = nn.Sequential(nn.Linear(n + 1 + 2, 32), nn.SiLU(), nn.Linear(32, n))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([x.flatten(1), torch.log(sigma)[:, None], cond], dim=1)
        return self.net(flat).reshape(x.shape)


class _Loss:
    """A plain denoising loss with EDM's image noise density (ln sigma ~ N(-1.2, 1.2^2))."""

    def __call__(
        self,
        net: nn.Module,
        x: torch.Tensor,
        cond: torch.Tensor,
        *,
        sigma: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        sigma_b = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return ((net(x + sigma_b * noise, sigma, cond) - x) ** 2).flatten(1).mean(dim=1)

    def noise_levels(self, normal: torch.Tensor) -> torch.Tensor:
        return (-1.2 + 1.2 * normal).exp()


loss_fn = _Loss()


def _data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn((n, *SHAPE), generator=generator), torch.rand((n, 2), generator=generator)


def _net() -> Tiny:
    torch.manual_seed(1)
    return Tiny()


CONFIG = TrainConfig(
    steps=6,
    batch_size=8,
    warmup_steps=2,
    checkpoint_every=3,
    val_every=3,
    log_every=1,
    val_batches=1,
)


def _train(run_dir: Path, config: TrainConfig = CONFIG, **kwargs) -> nn.Module:  # type: ignore[no-untyped-def]
    x, cond = _data()
    return train(
        kwargs.pop("net", None) or _net(),
        loss_fn,
        x[:32],
        cond[:32],
        x[32:],
        cond[32:],
        config,
        run_dir,
        dist=kwargs.pop("dist", Distributed()),
        progress=False,
        **kwargs,
    )


def _assert_same_weights(a: nn.Module, b: nn.Module, atol: float = 0.0) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, atol=atol, rtol=0.0 if atol == 0 else 1e-5, msg=name)


class _Killed(Exception):
    pass


def test_resume_reaches_the_uninterrupted_weights(tmp_path: Path) -> None:
    straight = _train(tmp_path / "straight")

    def kill(_ema: nn.Module, step: int) -> None:
        if step == 3:
            raise _Killed

    with pytest.raises(_Killed):
        _train(tmp_path / "killed", on_checkpoint=kill)
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert latest_checkpoint(checkpoints).name == "step-0000003"
    # a damaged newest checkpoint (here: the pointer names a directory that lost its state)
    # falls back to the newest complete one; the lost steps are trained again
    (checkpoints / "latest").write_text("step-0000009")
    assert latest_checkpoint(checkpoints).name == "step-0000003"
    resumed = _train(tmp_path / "killed")  # a fresh net: everything comes from the checkpoint
    _assert_same_weights(straight, resumed)
    rows = (tmp_path / "killed" / "metrics.csv").read_text().splitlines()
    steps = [int(line.split(",")[0]) for line in rows[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicated rows after the resume
    _assert_loss_plot(tmp_path / "killed")


def _assert_loss_plot(run_dir: Path) -> None:
    """``loss.png`` is the 6 x 4 inch loss figure; the figure shows every logged loss of the
    run and the validation losses at steps 3 and 6 (``val_every=3``)."""
    png = (run_dir / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (600, 400)  # width, height at 100 dpi
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    fig = loss_figure(run_dir / "metrics.csv")
    assert fig is not None
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines) == ["training (per logged step)", "validation (EMA weights)"]
    training, validation = lines.values()
    assert list(training.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(training.get_ydata()) == [float(row["loss"]) for row in rows]
    assert list(validation.get_xdata()) == [3, 6]
    assert list(validation.get_ydata()) == [float(rows[i]["val_loss"]) for i in (2, 5)]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_yscale()) == ("step", "EDM loss", "log")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(lines)


def test_no_loss_figure_before_the_first_logged_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss,val_loss,lr,grad_norm,samples_per_s,elapsed_s\n")
    assert loss_figure(path) is None


def test_draws_depend_on_seed_and_step_only() -> None:
    a = draw_batch(100, SHAPE, 8, seed=3, step=5)
    b = draw_batch(100, SHAPE, 8, seed=3, step=5)
    c = draw_batch(100, SHAPE, 8, seed=3, step=6)
    assert torch.equal(a.noise, b.noise)
    assert torch.equal(a.index, b.index)
    assert not torch.equal(a.noise, c.noise)


def test_learning_rate_schedule() -> None:
    config = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, lr_min=1e-5)
    assert learning_rate(config, 0) == pytest.approx(1e-4)
    assert learning_rate(config, 9) == pytest.approx(1e-3)
    assert learning_rate(config, 10) == pytest.approx(1e-3)
    assert learning_rate(config, 100) == pytest.approx(1e-5)
    values = [learning_rate(config, s) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, port: int, run_dir: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    dist = setup()
    config = TrainConfig(steps=2, batch_size=8, warmup_steps=1, checkpoint_every=2, val_every=2)
    net = _net()
    _train(Path(run_dir), config, net=net, dist=dist)
    if dist.is_main:
        torch.save(net.state_dict(), out)
    dist.close()


def test_ddp_two_processes_match_one(tmp_path: Path) -> None:
    config = TrainConfig(steps=2, batch_size=8, warmup_steps=1, checkpoint_every=2, val_every=2)
    single = _net()
    _train(tmp_path / "single", config, net=single)
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path / "ddp"), str(out)), nprocs=2)
    ddp = _net()
    ddp.load_state_dict(torch.load(out))
    _assert_same_weights(single, ddp, atol=1e-6)
    assert not torch.equal(single.net[0].weight, _net().net[0].weight)  # training moved them


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_resume_skips_a_damaged_checkpoint_for_the_intact_one_before(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    straight = _train(tmp_path / "straight")
    run = tmp_path / "run"
    _train(run)  # checkpoints at steps 3 and 6
    weights = run / "checkpoints" / "step-0000006" / "ema.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # a bit flip deep inside a tensor: safetensors itself would not notice
        data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        resumed = _train(run)  # resumes from step 3, redoes steps 4-6
    assert "step-0000006" in caplog.text
    assert "resuming from" in caplog.text
    _assert_same_weights(straight, resumed)


def test_no_intact_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(run)
    for path in (run / "checkpoints").glob("step-*/model.safetensors"):
        path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="no intact checkpoint"):
        _train(run)


def test_early_stopping_exports_the_best_model_and_stays_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caloforge.train import loop

    scripted = iter([1.0, 0.5, 0.6, 0.7, 0.4, 0.3])
    monkeypatch.setattr(loop, "validation_loss", lambda *args: next(scripted))
    config = TrainConfig(
        steps=10, batch_size=8, warmup_steps=0, val_every=1, checkpoint_every=5, log_every=1,
        val_batches=1, patience=2,
    )  # fmt: skip
    exported: list[int] = []
    _train(tmp_path, config, on_checkpoint=lambda net, step: exported.append(step))
    assert exported == [1, 2]  # the improvements only: the model of the best loss is exported
    with (tmp_path / "metrics.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
    assert latest_checkpoint(tmp_path / "checkpoints").name.endswith("4")  # type: ignore[union-attr]
    # resumed (even for more steps), a stopped run stays stopped
    _train(tmp_path, replace(config, steps=20), on_checkpoint=lambda net, step: exported.append(step))  # fmt: skip
    assert exported == [1, 2]
    with (tmp_path / "metrics.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4


def test_keep_every_keeps_those_checkpoints_and_the_last_two(tmp_path: Path) -> None:
    from dataclasses import replace

    config = replace(CONFIG, steps=9, checkpoint_every=1, keep_every=4)
    _train(tmp_path / "run", config)
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*"))
    assert kept == ["step-0000004", "step-0000008", "step-0000009"]
    _train(tmp_path / "plain", replace(config, keep_every=0))
    kept = sorted(p.name for p in (tmp_path / "plain" / "checkpoints").glob("step-*"))
    assert kept == ["step-0000008", "step-0000009"]
