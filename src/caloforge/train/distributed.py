"""Data-parallel training with torchrun: DDP over the gloo backend on CPUs.

``torchrun --nproc_per_node 2 -m caloforge train ...`` starts one process per rank with
``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`setup` joins the
group. Without torchrun it returns a single-process group, and every call below is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Distributed:
    """This process's place in the group."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model as DDP (gradients averaged over processes) or unchanged."""
        return DistributedDataParallel(model) if self.active else model

    def mean(self, value: float) -> float:
        """Mean of a scalar over the processes."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        torch_dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()

    def close(self) -> None:
        if self.active and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def setup() -> Distributed:
    """Join the torchrun process group if there is one (gloo backend), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("gloo")
    return Distributed(torch_dist.get_rank(), torch_dist.get_world_size())
