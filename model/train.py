"""The training run: :func:`train` and :func:`evaluate_checkpoint` (SPEC §9); the steps are :mod:`model.steps`.

GPU first: CUDA when present, bf16 autocast, channels_last images, pinned host memory with non-blocking copies,
persistent DataLoader workers, a feature cache so the GPU is not starved; torchrun gives DistributedDataParallel
(see :mod:`model.distributed` for why results do not depend on the number of processes). CPU is the fallback.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from annotator.errors import DatasetError, TrainingError
from annotator.files import atomic_write_text
from annotator.vocabulary import CLASS_ORDER, NUM_CLASSES
from dataset.split import Split
from model.cache import FeatureCache, default_cache_dir, open_or_build_cache
from model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from model.config import TrainConfig
from model.data import DatasetIndex, SceneDataset, describe, open_dataset
from model.distributed import (
    DistContext,
    GlobalBatchSampler,
    barrier,
    resolve_device,
    setup_distributed,
    teardown_distributed,
)
from model.features import N_MELS
from model.networks import FusionNet, build_model
from model.plots import plot_confusion, plot_curves
from model.steps import audio_statistics, default_workers, eval_loader, evaluate, make_loader, train_one_epoch

Log = Callable[[str], None]
ProgressFn = Callable[[int, int], None]  # (done, total)
AudioStats = dict[str, list[float]]  # {"mean": 64 floats, "std": 64 floats}


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


def _split_dataset(index: DatasetIndex, split: Split, config: TrainConfig, cache: FeatureCache | None) -> SceneDataset:
    """One split (at most ``config.limit`` pairs), loading only the modalities the model uses."""
    modality = config.modality_enum
    return SceneDataset(
        index.split(split, config.limit),
        image_size=config.image_side,
        image=modality.uses_image,
        audio=modality.uses_audio,
        cache=cache,
    )


def _datasets(index: DatasetIndex, config: TrainConfig, cache: FeatureCache | None) -> dict[Split, SceneDataset]:
    """One dataset per split (see :func:`_split_dataset`)."""
    return {split: _split_dataset(index, split, config, cache) for split in Split}


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _silent(_message: str) -> None:
    """The log of non-main ranks and of callers that pass ``log=None``."""


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
        return _train(
            Path(dataset_root),
            Path(run_dir),
            config,
            ctx,
            cache_dir,
            log if ctx.is_main else None,
            on_cache_progress if ctx.is_main else None,
        )
    finally:
        teardown_distributed(ctx)


def _open_cache(
    index: DatasetIndex,
    config: TrainConfig,
    ctx: DistContext,
    cache_dir: Path | None,
    workers: int,
    on_progress: ProgressFn | None,
) -> FeatureCache | None:
    """The feature cache (rank 0 builds it, the others wait and open it), or None when caching is off."""
    if not config.use_cache:
        return None
    root = cache_dir or default_cache_dir()
    if ctx.is_main:
        cache = open_or_build_cache(index, config.image_side, root, workers=workers, on_progress=on_progress)
    barrier(ctx)
    if not ctx.is_main:
        cache = open_or_build_cache(index, config.image_side, root, build=False)
    return cache


def _place_model(model: FusionNet, ctx: DistContext) -> tuple[FusionNet, torch.nn.Module]:
    """Move `model` to the device; returns (the model, the module to train: DDP-wrapped under torchrun)."""
    model.to(ctx.device)
    if ctx.device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if not ctx.distributed:
        return model, model
    from torch.nn.parallel import DistributedDataParallel

    from model.batchnorm import sync_batchnorm

    # Batch statistics over the global batch, as one process; the layers are swapped inside `model` itself.
    synced = sync_batchnorm(model, ctx.device)
    assert synced is model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return model, DistributedDataParallel(model, device_ids=device_ids)


def _split_datasets(
    root: Path,
    index: DatasetIndex,
    config: TrainConfig,
    ctx: DistContext,
    cache: FeatureCache | None,
    say: Log,
) -> dict[Split, SceneDataset]:
    """The three splits as datasets; refuses a training split too small for the ranks, and logs the sizes."""
    datasets = _datasets(index, config, cache)
    if len(datasets[Split.TRAIN]) < ctx.world_size:
        raise DatasetError(f"the training split of {root} has {len(datasets[Split.TRAIN])} pairs; too few to train")
    sizes = {s.value: len(d) for s, d in datasets.items()}
    say(
        f"dataset {root} ({index.layout}): train {sizes['train']}, val {sizes['val']}, test {sizes['test']} pairs; "
        f"device {ctx.device}{f' × {ctx.world_size} processes' if ctx.distributed else ''}"
    )
    return datasets


def _fit_audio_stats(model: FusionNet, train_set: SceneDataset, config: TrainConfig, workers: int) -> AudioStats:
    """Fit the audio normalisation on the training split (identity when the model hears nothing)."""
    mean, std = torch.zeros(N_MELS), torch.ones(N_MELS)
    if config.modality_enum.uses_audio:
        mean, std = audio_statistics(train_set, workers)
        model.set_audio_stats(mean, std)
    return {"mean": mean.tolist(), "std": std.tolist()}


@dataclass
class _Best:
    """The best epoch so far: its selection score, number, weights and validation metrics."""

    score: float = -math.inf
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None
    val: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Loop:
    """What the epoch loop works with; `model` is the bare network, `trainable` it or its DDP wrapper."""

    model: FusionNet
    trainable: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: GlobalBatchSampler
    train_loader: DataLoader
    val_loader: DataLoader
    select_on_val: bool


def _make_loop(
    model: FusionNet, datasets: dict[Split, SceneDataset], ctx: DistContext, config: TrainConfig, workers: int
) -> _Loop:
    """Place the model, then make its optimiser, the global-batch sampler and the train/val loaders."""
    model, trainable = _place_model(model, ctx)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = GlobalBatchSampler(
        len(datasets[Split.TRAIN]), config.batch_size, seed=config.seed, rank=ctx.rank, world_size=ctx.world_size
    )
    train_loader = make_loader(datasets[Split.TRAIN], ctx, workers, batch_sampler=sampler)
    val_loader = eval_loader(datasets[Split.VAL], ctx, config, workers)
    return _Loop(model, trainable, optimizer, sampler, train_loader, val_loader, len(datasets[Split.VAL]) > 0)


def _fit(
    loop: _Loop,
    ctx: DistContext,
    config: TrainConfig,
    say: Log,
    on_best: Callable[[_Best, list[dict[str, Any]]], None],
) -> tuple[_Best, list[dict[str, Any]]]:
    """Train epoch by epoch, keeping the best (val weighted F1, else training loss); stop after `patience`."""
    history: list[dict[str, Any]] = []
    best, stale = _Best(), 0
    for epoch in range(1, config.epochs + 1):
        loop.sampler.set_epoch(epoch)
        stats = train_one_epoch(loop.trainable, loop.train_loader, loop.sampler, loop.optimizer, ctx, config)
        val = evaluate(loop.model, loop.val_loader, ctx, config)
        history.append(
            {"epoch": epoch, **stats, "val_weighted_f1": val["weighted_f1"], "val_accuracy": val["accuracy"]}
        )
        say(
            f"epoch {epoch}/{config.epochs}  loss {stats['train_loss']:.4f}  val weighted F1 "
            f"{val['weighted_f1']:.4f}  {stats['samples_per_s']:.1f} samples/s  data wait "
            f"{100 * stats['data_wait']:.0f}%  ({stats['seconds']:.1f} s)"
        )
        score = val["weighted_f1"] if loop.select_on_val else -stats["train_loss"]
        if score > best.score:
            state = {k: v.detach().clone() for k, v in loop.model.state_dict().items()}
            best, stale = _Best(score, epoch, state, val), 0
            on_best(best, history)
        else:
            stale += 1
            if stale >= config.patience:
                say(f"early stop: no better validation weighted F1 for {stale} epoch(s); best was epoch {best.epoch}")
                break
    return best, history


def _write_run_files(run_dir: Path, checkpoint_path: Path, metrics: dict[str, Any]) -> None:
    """Finish RUN_DIR: final metrics into the checkpoint, metrics.json, confusion.png and curves.png."""
    final = load_checkpoint(checkpoint_path)  # keeps the optimiser state of the best epoch
    final.metrics, final.history = {"val": metrics["val"], "test": metrics["test"]}, metrics["history"]
    save_checkpoint(checkpoint_path, final)
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    plot_confusion(metrics["test"], run_dir / "confusion.png")
    plot_curves(metrics["history"], run_dir / "curves.png")


def _train(
    root: Path,
    run_dir: Path,
    config: TrainConfig,
    ctx: DistContext,
    cache_dir: Path | None,
    log: Log | None,
    on_cache_progress: ProgressFn | None,
) -> TrainResult:
    """:func:`train` on one rank, inside its process group; `log` is None except on rank 0."""
    say = log or _silent
    _seed_everything(config.seed)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    index = open_dataset(root, split_seed=config.split_seed)
    model = build_model(config, NUM_CLASSES)  # first, so a bad weights file fails before any decoding
    workers = default_workers(config, ctx.device)
    cache = _open_cache(index, config, ctx, cache_dir, workers, on_cache_progress)
    datasets = _split_datasets(root, index, config, ctx, cache, say)
    sizes = {s.value: len(d) for s, d in datasets.items()}
    audio_stats = _fit_audio_stats(model, datasets[Split.TRAIN], config, workers)
    loop = _make_loop(model, datasets, ctx, config, workers)
    model = loop.model
    dataset_info = {"path": str(root), **describe(index), "used": sizes}
    checkpoint_path = run_dir / "checkpoint.pt"
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if not loop.select_on_val:
        say("warning: the validation split is empty; the epoch with the lowest training loss is kept")

    def save_best(best: _Best, history: list[dict[str, Any]]) -> None:
        if ctx.is_main and best.state is not None:
            save_checkpoint(
                checkpoint_path,
                Checkpoint(
                    config,
                    best.state,
                    loop.optimizer.state_dict(),
                    [c.value for c in CLASS_ORDER],
                    audio_stats,
                    best.epoch,
                    {"val": best.val},
                    history,
                    dataset_info,
                ),
            )

    best, history = _fit(loop, ctx, config, say, save_best)
    assert best.state is not None
    model.load_state_dict(best.state)
    test = evaluate(model, eval_loader(datasets[Split.TEST], ctx, config, workers), ctx, config)
    metrics = {
        "test": test,
        "val": best.val,
        "best_epoch": best.epoch,
        "history": history,
        "config": config.to_dict(),
        "dataset": dataset_info,
    }
    if ctx.is_main:
        _write_run_files(run_dir, checkpoint_path, metrics)
    barrier(ctx)
    return TrainResult(run_dir, checkpoint_path, test, best.val, best.epoch, history, dataset_info, ctx.is_main)


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
    model, _ = _place_model(model, ctx)
    index = open_dataset(Path(dataset_root), split_seed=config.split_seed)
    n_workers = workers if workers is not None else default_workers(config, ctx.device)
    dataset = _split_dataset(index, split_enum, config, _open_cache(index, config, ctx, cache_dir, n_workers, None))
    if len(dataset) == 0:
        raise DatasetError(f"the {split} split of {dataset_root} is empty")
    return evaluate(model, eval_loader(dataset, ctx, config, n_workers), ctx, config)
