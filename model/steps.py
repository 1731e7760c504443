"""One epoch of training and one pass of evaluation, with the loaders and device plumbing they share.

Used by :mod:`model.train`. ``batch_size`` is the *global* batch: each of N ranks takes its share, and the loss is
scaled so DDP's gradient average equals the single-process mean (see :mod:`model.distributed`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from annotator.vocabulary import NUM_CLASSES
from model.config import TrainConfig
from model.data import SceneDataset
from model.distributed import DistContext, GlobalBatchSampler, ShardSampler, all_reduce_sum
from model.features import N_MELS
from model.metrics import scores_from_confusion
from model.networks import FusionNet


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not fight the training process for cores


def default_workers(config: TrainConfig, device: torch.device) -> int:
    if config.workers is not None:
        return config.workers
    if device.type == "cuda":
        return min(8, max(1, (os.cpu_count() or 2) - 1))
    return 0  # on CPU the cores are busy with the model; decoding in-process avoids copying between processes


def make_loader(dataset: SceneDataset, ctx: DistContext, workers: int, **kwargs: Any) -> DataLoader:
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": 4, "worker_init_fn": _worker_init}
    return DataLoader(dataset, num_workers=workers, pin_memory=ctx.device.type == "cuda", **extra, **kwargs)


def _autocast(ctx: DistContext, config: TrainConfig) -> contextlib.AbstractContextManager:
    if ctx.device.type == "cuda" and config.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: batch[k].to(device, non_blocking=True) for k in ("image", "audio", "label") if k in batch}


def audio_statistics(dataset: SceneDataset, workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mel-bin mean and std (64,) of the log-mels of `dataset` (the training split), in float64 sums."""
    only_audio = SceneDataset(dataset.samples, image_size=dataset.image_size, image=False, cache=dataset.cache)
    total = torch.zeros(N_MELS, dtype=torch.float64)
    squares = torch.zeros(N_MELS, dtype=torch.float64)
    count = 0
    for batch in DataLoader(only_audio, batch_size=32, num_workers=workers):
        mel = batch["audio"].double()[:, 0]  # (B, 64, 400)
        total += mel.sum(dim=(0, 2))
        squares += mel.square().sum(dim=(0, 2))
        count += mel.shape[0] * mel.shape[2]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return mean.float(), std.float()


def eval_loader(dataset: SceneDataset, ctx: DistContext, config: TrainConfig, workers: int) -> DataLoader:
    """This rank's shard of `dataset` (no padding, no sample twice), in batches of the per-rank size."""
    per_rank_batch = max(1, math.ceil(config.batch_size / ctx.world_size))
    sampler = ShardSampler(len(dataset), ctx.rank, ctx.world_size)
    return make_loader(dataset, ctx, workers, batch_size=per_rank_batch, sampler=sampler)


def evaluate(model: FusionNet, loader: DataLoader, ctx: DistContext, config: TrainConfig) -> dict[str, Any]:
    """Metrics of `model` over a loader from :func:`eval_loader`; the ranks' confusion matrices are summed."""
    model.eval()
    confusion = torch.zeros(NUM_CLASSES * NUM_CLASSES, dtype=torch.int64, device=ctx.device)
    with torch.no_grad():
        for raw in loader:
            batch = _to_device(raw, ctx.device)
            with _autocast(ctx, config):
                logits = model(image=batch.get("image"), audio=batch.get("audio"))
            predicted = logits.argmax(dim=1)
            confusion += torch.bincount(batch["label"] * NUM_CLASSES + predicted, minlength=NUM_CLASSES**2)
    all_reduce_sum(confusion, ctx)
    return scores_from_confusion(confusion.view(NUM_CLASSES, NUM_CLASSES).cpu().numpy())


def _timed(loader: DataLoader) -> Iterator[tuple[float, Any]]:
    """Yield (seconds spent waiting for this batch, batch)."""
    iterator = iter(loader)
    while True:
        start = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        yield time.perf_counter() - start, batch


def train_one_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    sampler: GlobalBatchSampler,
    optimizer: torch.optim.Optimizer,
    ctx: DistContext,
    config: TrainConfig,
) -> dict[str, float]:
    """One pass over the training split; returns mean loss, samples/s and the data-wait fraction."""
    model.train()
    global_sizes = [len(b) for b in sampler.global_batches()]
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    waited = 0.0
    start = time.perf_counter()
    for step, (wait, raw) in enumerate(_timed(loader)):
        waited += wait
        batch = _to_device(raw, ctx.device)
        with _autocast(ctx, config):
            logits = model(image=batch.get("image"), audio=batch.get("audio"))
        # Sum over this rank's share / global batch size × ranks: DDP averages gradients over ranks, which
        # makes the update exactly the single-process mean over the global batch.
        loss = F.cross_entropy(logits.float(), batch["label"], reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        (loss * ctx.world_size / global_sizes[step]).backward()
        optimizer.step()
        loss_sum += loss.detach().double()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    elapsed = time.perf_counter() - start
    totals = all_reduce_sum(torch.tensor([loss_sum.item(), waited, elapsed], dtype=torch.float64), ctx)
    samples = sum(global_sizes)
    return {
        "train_loss": totals[0].item() / max(samples, 1),
        "samples_per_s": samples / max(elapsed, 1e-9),
        "data_wait": totals[1].item() / max(totals[2].item(), 1e-9),
        "seconds": elapsed,
    }
