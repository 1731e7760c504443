"""The training loop: :func:`train`, :func:`evaluate` and :func:`evaluate_checkpoint` (SPEC §9).

GPU first: CUDA when present, bf16 autocast, channels_last images, pinned host memory with non-blocking copies,
persistent DataLoader workers, a feature cache so the GPU is not starved; torchrun gives DistributedDataParallel
(see :mod:`model.distributed` for why results do not depend on the number of processes). CPU is the fallback.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from annotator.errors import DatasetError, TrainingError
from annotator.vocabulary import CLASS_ORDER, NUM_CLASSES
from dataset.split import Split
from model.cache import default_cache_dir, open_or_build_cache
from model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from model.config import TrainConfig
from model.data import DatasetIndex, SampleRef, SceneDataset, describe, open_dataset
from model.distributed import (
    DistContext,
    GlobalBatchSampler,
    ShardSampler,
    all_reduce_sum,
    barrier,
    resolve_device,
    setup_distributed,
    teardown_distributed,
)
from model.features import N_MELS
from model.metrics import scores_from_confusion
from model.networks import FusionNet, build_model
from model.plots import plot_confusion, plot_curves

Log = Callable[[str], None]


@dataclass
class TrainResult:
    """What a run produced (on every rank; only rank 0 wrote files)."""

    run_dir: Path
    checkpoint_path: Path
    test_metrics: dict[str, Any]
    val_metrics: dict[str, Any]
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    dataset: dict[str, Any] = field(default_factory=dict)
    is_main: bool = True


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not fight the training process for cores


def _default_workers(config: TrainConfig, device: torch.device) -> int:
    if config.workers is not None:
        return config.workers
    if device.type == "cuda":
        return min(8, max(1, (os.cpu_count() or 2) - 1))
    return 0  # on CPU the cores are busy with the model; decoding in-process avoids copying between processes


def _loader(dataset: SceneDataset, ctx: DistContext, workers: int, **kwargs: Any) -> DataLoader:
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


def _datasets(index: DatasetIndex, config: TrainConfig, cache: Any) -> dict[Split, SceneDataset]:
    modality = config.modality_enum
    return {
        split: SceneDataset(
            index.split(split, config.limit),
            image_size=config.image_size,
            image=modality.uses_image,
            audio=modality.uses_audio,
            cache=cache,
        )
        for split in Split
    }


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
    return _loader(dataset, ctx, workers, batch_size=per_rank_batch, sampler=sampler)


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


def _log_stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def train(
    dataset_root: Path,
    run_dir: Path,
    config: TrainConfig,
    *,
    cache_dir: Path | None = None,
    log: Log | None = _log_stderr,
    on_cache_progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train the classifier on `dataset_root`, select on validation weighted F1, test, and write RUN_DIR.

    Writes (rank 0 only) ``checkpoint.pt``, ``metrics.json``, ``confusion.png`` and ``curves.png`` in `run_dir`.
    Under torchrun every rank calls this; the process group is set up and torn down here.
    """
    ctx = setup_distributed(config.device)
    config = config.for_device(ctx.device.type)
    try:
        return _train(Path(dataset_root), Path(run_dir), config, ctx, cache_dir, log if ctx.is_main else None,
                      on_cache_progress if ctx.is_main else None)
    finally:
        teardown_distributed(ctx)


def _open_cache(index: DatasetIndex, config: TrainConfig, ctx: DistContext, cache_dir: Path | None,
                workers: int, on_progress: Callable[[int, int], None] | None) -> Any:
    if not config.use_cache:
        return None
    root = cache_dir or default_cache_dir()
    if ctx.is_main:
        cache = open_or_build_cache(index, config.image_size, root, workers=workers, on_progress=on_progress)
    barrier(ctx)
    if not ctx.is_main:
        cache = open_or_build_cache(index, config.image_size, root, build=False)
    return cache


def _train(
    root: Path, run_dir: Path, config: TrainConfig, ctx: DistContext, cache_dir: Path | None,
    log: Log | None, on_cache_progress: Callable[[int, int], None] | None,
) -> TrainResult:
    say = log or (lambda _message: None)
    _seed_everything(config.seed)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    index = open_dataset(root, split_seed=config.split_seed)
    model = build_model(config, NUM_CLASSES)  # first, so a bad weights file fails before any decoding
    workers = _default_workers(config, ctx.device)
    cache = _open_cache(index, config, ctx, cache_dir, workers, on_cache_progress)
    datasets = _datasets(index, config, cache)
    if len(datasets[Split.TRAIN]) < ctx.world_size:
        raise DatasetError(f"the training split of {root} has {len(datasets[Split.TRAIN])} pairs; too few to train")
    sizes = {s.value: len(d) for s, d in datasets.items()}
    say(f"dataset {root} ({index.layout}): train {sizes['train']}, val {sizes['val']}, test {sizes['test']} pairs; "
        f"device {ctx.device}{f' × {ctx.world_size} processes' if ctx.distributed else ''}")

    mean, std = torch.zeros(N_MELS), torch.ones(N_MELS)
    if config.modality_enum.uses_audio:
        mean, std = audio_statistics(datasets[Split.TRAIN], workers)
        model.set_audio_stats(mean, std)
    model.to(ctx.device)
    if ctx.device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    trainable: torch.nn.Module = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        from model.batchnorm import sync_batchnorm

        model = sync_batchnorm(model, ctx.device)  # batch statistics over the global batch, as one process

        trainable = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = GlobalBatchSampler(len(datasets[Split.TRAIN]), config.batch_size, seed=config.seed, rank=ctx.rank,
                                 world_size=ctx.world_size)
    train_loader = _loader(datasets[Split.TRAIN], ctx, workers, batch_sampler=sampler)
    val_loader = eval_loader(datasets[Split.VAL], ctx, config, workers)

    audio_stats = {"mean": mean.tolist(), "std": std.tolist()}
    dataset_info = {"path": str(root), **describe(index), "used": sizes}
    checkpoint_path = run_dir / "checkpoint.pt"
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    select_on_val = len(datasets[Split.VAL]) > 0
    if not select_on_val:
        say("warning: the validation split is empty; the epoch with the lowest training loss is kept")
    history: list[dict[str, Any]] = []
    best_score, best_epoch, best_state, best_val = -math.inf, 0, None, {}
    stale = 0
    for epoch in range(1, config.epochs + 1):
        sampler.set_epoch(epoch)
        stats = train_one_epoch(trainable, train_loader, sampler, optimizer, ctx, config)
        val = evaluate(model, val_loader, ctx, config)
        entry = {"epoch": epoch, **stats, "val_weighted_f1": val["weighted_f1"], "val_accuracy": val["accuracy"]}
        history.append(entry)
        say(f"epoch {epoch}/{config.epochs}  loss {stats['train_loss']:.4f}  val weighted F1 "
            f"{val['weighted_f1']:.4f}  {stats['samples_per_s']:.1f} samples/s  data wait "
            f"{100 * stats['data_wait']:.0f}%  ({stats['seconds']:.1f} s)")
        score = val["weighted_f1"] if select_on_val else -stats["train_loss"]
        if score > best_score:
            best_score, best_epoch, best_val, stale = score, epoch, val, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if ctx.is_main:
                save_checkpoint(checkpoint_path, Checkpoint(
                    config, best_state, optimizer.state_dict(), [c.value for c in CLASS_ORDER], audio_stats,
                    epoch, {"val": val}, history, dataset_info))
        else:
            stale += 1
            if stale >= config.patience:
                say(f"early stop: no better validation weighted F1 for {stale} epoch(s); best was epoch {best_epoch}")
                break

    assert best_state is not None
    model.load_state_dict(best_state)
    test = evaluate(model, eval_loader(datasets[Split.TEST], ctx, config, workers), ctx, config)
    metrics = {"test": test, "val": best_val, "best_epoch": best_epoch, "history": history, "config": config.to_dict(),
               "dataset": dataset_info}
    if ctx.is_main:
        final = load_checkpoint(checkpoint_path)  # keeps the optimiser state of the best epoch
        final.metrics, final.history = {"val": best_val, "test": test}, history
        save_checkpoint(checkpoint_path, final)
        tmp = run_dir / ".metrics.json.tmp"
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        os.replace(tmp, run_dir / "metrics.json")
        plot_confusion(test, run_dir / "confusion.png")
        plot_curves(history, run_dir / "curves.png")
    barrier(ctx)
    return TrainResult(run_dir, checkpoint_path, test, best_val, best_epoch, history, dataset_info, ctx.is_main)


def evaluate_checkpoint(
    checkpoint_path: Path,
    dataset_root: Path,
    *,
    split: str = "test",
    device: str = "auto",
    workers: int | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = False,
) -> dict[str, Any]:
    """Metrics of a saved model on one split of a dataset; the checkpoint is all it needs besides the data.

    The split is computed the way training computed it (same split seed and ``limit``), so evaluating the
    training dataset's test split reproduces the checkpoint's test metrics exactly.
    """
    try:
        split_enum = Split(split)
    except ValueError:
        raise TrainingError(f"--split must be train, val or test, not {split!r}") from None
    ckpt = load_checkpoint(checkpoint_path)
    config = ckpt.config.with_(device=device, image_weights=None, audio_weights=None, use_cache=use_cache)
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=resolve_device(device))
    model = build_model(config, NUM_CLASSES)
    model.load_state_dict(ckpt.model_state)
    model.to(ctx.device)
    if ctx.device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    index = open_dataset(Path(dataset_root), split_seed=config.split_seed)
    n_workers = workers if workers is not None else _default_workers(config, ctx.device)
    cache = _open_cache(index, config, ctx, cache_dir, n_workers, None)
    samples: list[SampleRef] = index.split(split_enum, config.limit)
    if not samples:
        raise DatasetError(f"the {split} split of {dataset_root} is empty")
    modality = config.modality_enum
    dataset = SceneDataset(samples, image_size=config.image_size, image=modality.uses_image,
                           audio=modality.uses_audio, cache=cache)
    return evaluate(model, eval_loader(dataset, ctx, config, n_workers), ctx, config)
