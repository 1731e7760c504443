"""One process or several under torchrun: device choice, process group, samplers and reductions.

Design so a run's numbers do not depend on how many processes share it: ``batch_size`` is the *global* batch.
Every rank draws the same seeded permutation; batch k is ``perm[k·B:(k+1)·B]`` and rank r takes every W-th
element of it, so the union of the ranks' batches is exactly the single-process batch. The loss is scaled so
DDP's gradient average equals the single-process mean over the global batch. Evaluation shards the split
without padding (no sample counted twice) and sums the confusion matrices across ranks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

from annotator.errors import TrainingError


@dataclass(frozen=True)
class DistContext:
    """Where this process runs and which part of the work is its own."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error, not a silent fallback."""
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if preference == "cuda":
        raise TrainingError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device("cpu")


def setup_distributed(device_preference: str) -> DistContext:
    """Join the process group when torchrun started us (RANK/WORLD_SIZE set), else a one-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def teardown_distributed(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum `tensor` over ranks in place (identity for one process)."""
    if ctx.distributed:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class GlobalBatchSampler(Sampler[list[int]]):
    """This rank's share of each global training batch, in an order fixed by (seed, epoch).

    A final batch with fewer samples than ranks is dropped (a rank with nothing to compute would stall the
    gradient all-reduce); the single-process run drops the same batch, so both see the same data.
    """

    def __init__(self, size: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.size, generator=generator).tolist()
        batches = [perm[i : i + self.batch_size] for i in range(0, self.size, self.batch_size)]
        return [b for b in batches if len(b) >= self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.global_batches())


class ShardSampler(Sampler[int]):
    """Every W-th index starting at this rank, no padding: each sample is evaluated exactly once overall."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
