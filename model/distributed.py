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

    def global_sizes(self) -> list[int]:
        """The size of each global batch of the epoch (the loss is scaled by it)."""
        return [len(b) for b in self.global_batches()]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.global_batches())


class LocalBatchSampler(Sampler[list[int]]):
    """Batches over data each rank holds alone (shards, see :mod:`model.shards`), in an order fixed by (seed, epoch).

    Rank r holds ``local_sizes[r]`` samples and takes ``b_r`` of each global batch of ``batch_size`` (the same
    shares as :class:`GlobalBatchSampler`: ``b_r = |{r, r+W, …} ∩ [0, batch_size)|``). Every rank must step the
    same number of times (the gradient all-reduce waits for all), so an epoch has ``min_r ⌈n_r / b_r⌉`` steps:
    a rank holding more samples than that leaves its surplus out of this epoch (a different surplus every
    epoch, as the order is reshuffled). With one process this is exactly :class:`GlobalBatchSampler`'s order.
    """

    def __init__(
        self, local_sizes: list[int], batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size < world_size:
            raise TrainingError(f"--batch-size {batch_size} is smaller than the {world_size} processes sharing it")
        if min(local_sizes) < 1:
            empty = local_sizes.index(min(local_sizes))
            raise TrainingError(f"process {empty} holds no training samples; use fewer processes")
        self.local_sizes, self.batch_size, self.seed = list(local_sizes), batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.shares = [len(range(r, batch_size, world_size)) for r in range(world_size)]
        self.steps = min(-(-n // b) for n, b in zip(self.local_sizes, self.shares, strict=True))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_sizes(self) -> list[int]:
        return [
            sum(min(b, max(0, n - k * b)) for n, b in zip(self.local_sizes, self.shares, strict=True))
            for k in range(self.steps)
        ]

    def __iter__(self) -> Iterator[list[int]]:
        # Rank 0's seed is GlobalBatchSampler's, so a one-process run on shards batches as the folder path does.
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 7_919 * self.rank)
        perm = torch.randperm(self.local_sizes[self.rank], generator=generator).tolist()
        share = self.shares[self.rank]
        for k in range(self.steps):
            yield perm[k * share : (k + 1) * share]

    def __len__(self) -> int:
        return self.steps


def local_eval_batches(size: int, batch_size: int, world_size: int) -> list[list[int]]:
    """Every index of a split a rank holds alone (shards), in per-rank batches: the ranks' parts are disjoint."""
    per_rank_batch = max(1, -(-batch_size // world_size))
    return [list(range(i, min(i + per_rank_batch, size))) for i in range(0, size, per_rank_batch)]


class ShardSampler(Sampler[int]):
    """Every W-th index starting at this rank, no padding: each sample is evaluated exactly once overall."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
