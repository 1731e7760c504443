"""One epoch of training, one pass of evaluation, and the two ways batches reach the device.

Used by :mod:`model.train`. ``batch_size`` is the *global* batch: each of N ranks takes its share, and the loss is
scaled so DDP's gradient average equals the single-process mean (see :mod:`model.distributed`).

Every pass is given its batches as lists of sample indices, and a :class:`BatchSource` turns them into tensors on
the device: :class:`LoaderSource` (a DataLoader over the dataset, copied host → device per step) or
:class:`ResidentSource` (the whole split already on the device, gathered by index there). Both see the same
indices in the same order, so a run gives the same numbers on either path.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from annotator.vocabulary import NUM_CLASSES
from model.batchnorm import recompute_batchnorm_stats
from model.config import TrainConfig
from model.data import SceneDataset
from model.distributed import DistContext, ShardSampler, all_reduce_sum
from model.features import N_MELS
from model.metrics import scores_from_confusion
from model.networks import FusionNet
from model.resident import ResidentData

Batch = dict[str, torch.Tensor]
IndexBatches = Sequence[Sequence[int]]

#: Precise BN re-estimates the statistics from at most this many training samples (≥ 1 batch): enough for
#: stable averages (fvcore's default is 200 batches of 32), and bounded so it costs a fraction of an epoch.
PRECISE_BN_SAMPLES = 2048


class BatchSource(Protocol):
    """Turns lists of sample indices into batches on the device, timing how long each batch was waited for."""

    description: str

    def batches(self, index_batches: IndexBatches) -> Iterator[tuple[float, Batch]]:
        """Yield (seconds waited, batch on the device) for each list of indices, in order."""
        ...


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


class _GivenBatches(Sampler[list[int]]):
    """A batch sampler whose batches are set before each pass (the loader, and its workers, stay alive)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _to_device(batch: dict[str, Any], device: torch.device) -> Batch:
    return {k: batch[k].to(device, non_blocking=True) for k in ("image", "audio", "label") if k in batch}


def _timed(iterator: Iterator[Any]) -> Iterator[tuple[float, Any]]:
    """Yield (seconds spent waiting for this item, item)."""
    while True:
        start = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        yield time.perf_counter() - start, item


class LoaderSource:
    """Batches decoded or read from the feature cache by a DataLoader, then copied to the device."""

    def __init__(self, dataset: SceneDataset, ctx: DistContext, workers: int) -> None:
        self._given = _GivenBatches()
        self._loader = make_loader(dataset, ctx, workers, batch_sampler=self._given)
        self._device = ctx.device
        origin = "feature cache" if dataset.cache is not None else "decoding files"
        self.description = f"loader ({workers} worker{'s' if workers != 1 else ''}, {origin})"

    def batches(self, index_batches: IndexBatches) -> Iterator[tuple[float, Batch]]:
        self._given.batches = [list(b) for b in index_batches]
        for wait, raw in _timed(iter(self._loader)):
            yield wait, _to_device(raw, self._device)


class ResidentSource:
    """Batches gathered by index from a split held on the device: no workers, no host → device copy per step."""

    def __init__(self, data: ResidentData, device: torch.device) -> None:
        self._data = data
        self.device, self.nbytes = device, data.size_bytes
        self.description = f"resident on {device} ({data.size_bytes / 1e9:.2f} GB)"

    def batches(self, index_batches: IndexBatches) -> Iterator[tuple[float, Batch]]:
        # One copy of the pass's indices to the device, then slices of it: nothing crosses per step.
        flat = torch.tensor([i for b in index_batches for i in b], dtype=torch.int64).to(self.device)
        bounds = [0]
        for b in index_batches:
            bounds.append(bounds[-1] + len(b))
        return _timed(self._data.batch(flat[start:end]) for start, end in zip(bounds, bounds[1:], strict=False))


def _autocast(ctx: DistContext, config: TrainConfig) -> contextlib.AbstractContextManager:
    if ctx.device.type == "cuda" and config.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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


def eval_batches(size: int, ctx: DistContext, config: TrainConfig) -> list[list[int]]:
    """This rank's shard of a split of `size` samples (no padding, no sample twice), in per-rank batches."""
    per_rank_batch = max(1, math.ceil(config.batch_size / ctx.world_size))
    indices = list(ShardSampler(size, ctx.rank, ctx.world_size))
    return [indices[i : i + per_rank_batch] for i in range(0, len(indices), per_rank_batch)]


def _logits(model: torch.nn.Module, batch: Batch, ctx: DistContext, config: TrainConfig) -> torch.Tensor:
    with _autocast(ctx, config):
        return model(image=batch.get("image"), audio=batch.get("audio"))


def evaluate(
    model: FusionNet, source: BatchSource, index_batches: IndexBatches, ctx: DistContext, config: TrainConfig
) -> dict[str, Any]:
    """Metrics and mean cross-entropy (``loss``) of `model` over batches from :func:`eval_batches`.

    The ranks' confusion matrices and loss sums are added up, so the numbers cover the whole split.
    """
    model.eval()
    confusion = torch.zeros(NUM_CLASSES * NUM_CLASSES, dtype=torch.int64, device=ctx.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    with torch.no_grad():
        for _, batch in source.batches(index_batches):
            logits = _logits(model, batch, ctx, config).float()
            loss_sum += F.cross_entropy(logits, batch["label"], reduction="sum").double()
            predicted = logits.argmax(dim=1)
            confusion += torch.bincount(batch["label"] * NUM_CLASSES + predicted, minlength=NUM_CLASSES**2)
    all_reduce_sum(confusion, ctx)
    all_reduce_sum(loss_sum, ctx)
    scores = scores_from_confusion(confusion.view(NUM_CLASSES, NUM_CLASSES).cpu().numpy())
    return {**scores, "loss": loss_sum.item() / max(scores["samples"], 1)}


def predict_probabilities(
    model: FusionNet, source: BatchSource, index_batches: IndexBatches, ctx: DistContext, config: TrainConfig
) -> torch.Tensor:
    """Softmax class probabilities of `model` for the samples of `index_batches`, in their order (one process).

    Returns:
        float64 (N, classes) on the CPU, each row summing to 1 (the softmax is taken in float64).
    """
    model.eval()
    rows = []
    with torch.no_grad():
        for _, batch in source.batches(index_batches):
            logits = _logits(model, batch, ctx, config).double()
            rows.append(torch.softmax(logits, dim=1).cpu())
    if not rows:
        return torch.zeros((0, NUM_CLASSES), dtype=torch.float64)
    return torch.cat(rows)


def precise_batchnorm(
    model: FusionNet,
    source: BatchSource,
    index_batches: IndexBatches,
    global_sizes: Sequence[int],
    ctx: DistContext,
    config: TrainConfig,
) -> int:
    """Re-estimate BatchNorm statistics for the current weights over the first training batches (no augmentation).

    Takes whole batches, in the given order, until :data:`PRECISE_BN_SAMPLES` samples; returns how many batches.
    See :func:`model.batchnorm.recompute_batchnorm_stats` for why.
    """
    count, seen = 0, 0
    while count < len(index_batches) and seen < PRECISE_BN_SAMPLES:
        seen += global_sizes[count]
        count += 1
    chosen = source.batches(index_batches[:count])
    sized = ((size, batch) for size, (_, batch) in zip(global_sizes, chosen, strict=False))
    return recompute_batchnorm_stats(model, sized, lambda batch: _logits(model, batch, ctx, config))


def train_one_epoch(
    model: torch.nn.Module,
    source: BatchSource,
    index_batches: IndexBatches,
    global_sizes: Sequence[int],
    optimizer: torch.optim.Optimizer,
    ctx: DistContext,
    config: TrainConfig,
    augment_generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One pass over the training split; returns mean loss, samples/s, seconds and the data wait (s and share).

    Args:
        model: the network to train (or its DDP wrapper).
        source: where the batches come from.
        index_batches: this rank's share of each global batch, in order.
        global_sizes: the size of each global batch (the loss is scaled by it).
        optimizer: steps once per batch.
        ctx: this process's place in the run.
        config: the run's settings (autocast, augmentation).
        augment_generator: seeds the image augmentation (on the device); None trains without augmentation.
    """
    from model.augment import augment_images

    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    waited = 0.0
    start = time.perf_counter()
    for step, (wait, batch) in enumerate(source.batches(index_batches)):
        waited += wait
        if augment_generator is not None and "image" in batch:
            batch = {**batch, "image": augment_images(batch["image"], augment_generator)}
        logits = _logits(model, batch, ctx, config)
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
        "data_wait_s": totals[1].item() / ctx.world_size,
        "seconds": elapsed,
    }
