"""Data-parallel training across processes, as torchrun launches them.

    torchrun --nproc_per_node=2 -m mlpbench.train --fused ...

Every rank builds the same model (DistributedDataParallel broadcasts rank 0's
parameters and averages gradients), walks the same shuffled order, and takes
its own slice of each global batch of world_size * batch_size samples, so one
step sees what a single process sees with the concatenated batch. Dropout
masks differ between ranks (each rank's generator is seeded with seed + rank).
Rank 0 alone evaluates and writes outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Context", "setup", "teardown"]


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, batch_indices: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch (the parts differ in size by at most one)."""
        if not self.active:
            return batch_indices
        return torch.tensor_split(batch_indices, self.world_size)[self.rank]

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """value summed over the ranks (in place), for the logged loss and accuracy."""
        if self.active:
            dist.all_reduce(value)
        return value

    def broadcast(self, values: list) -> list:
        """Rank 0's values (any picklable objects) on every rank."""
        if self.active:
            dist.broadcast_object_list(values, src=0)
        return values

    def gather(self, value) -> list | None:
        """Every rank's value, on rank 0 (None elsewhere)."""
        if not self.active:
            return [value]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out


def setup(device: str) -> Context:
    """Join the process group torchrun describes in the environment (gloo on
    the CPU, nccl on CUDA); a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    rank = dist.get_rank()
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    return Context(rank=rank, world_size=dist.get_world_size())


def teardown(context: Context, *, finished: bool = True) -> None:
    """Leave the process group. After a finished run, the ranks first wait for
    each other: one leaving while a peer still talks to it (rank 0 evaluates
    alone) can end in an abort in gloo's threads; after an error, at once,
    since a failed peer would never arrive."""
    if context.active and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
