"""The training run: :func:`train`, :func:`resume_config` and :func:`evaluate_checkpoint` (SPEC §9).

GPU first: CUDA when present, bf16 autocast, channels_last images, and the cached features resident on the device
when they fit (batches gathered by index there, augmented there: no loader workers, no host → device copy per
step); otherwise a DataLoader with pinned memory and persistent workers. torchrun gives DistributedDataParallel
(see :mod:`model.distributed` for why results do not depend on the number of processes). CPU is the fallback.

Each epoch: train (augmented when asked), step the learning-rate schedule, re-estimate BatchNorm statistics for
the new weights ("precise BN", :func:`model.steps.precise_batchnorm`), then score validation (model selection)
and test (the authors' windowed report). RUN_DIR gets ``checkpoint.pt`` (best epoch), ``last.pt`` (latest epoch,
for ``--resume``), ``metrics.jsonl`` (one line per epoch), ``metrics.json``, ``curves.png`` and ``confusion.png``.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annotator.errors import DatasetError, TrainingError
from annotator.files import atomic_write_text
from annotator.vocabulary import CLASS_ORDER, NUM_CLASSES
from dataset.split import Split
from model.cache import FeatureCache, default_cache_dir, open_or_build_cache
from model.checkpoint import Checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from model.config import TrainConfig
from model.data import DatasetIndex, SceneDataset, describe, open_dataset
from model.distributed import (
    DistContext,
    GlobalBatchSampler,
    LocalBatchSampler,
    all_reduce_sum,
    barrier,
    local_eval_batches,
    resolve_device,
    setup_distributed,
    teardown_distributed,
)
from model.features import N_MELS
from model.metrics import SUMMARY_KEYS, windowed_summary
from model.networks import FusionNet, build_model
from model.plots import plot_confusion, plot_curves
from model.resident import ResidentData
from model.shards import (
    RankData,
    audio_statistics_across_ranks,
    describe_shards,
    gather_class_counts,
    gather_counts,
    is_shard_dataset,
    open_shards,
    staging_folder,
)
from model.steps import (
    BatchSource,
    LoaderSource,
    ResidentSource,
    audio_statistics,
    default_workers,
    eval_batches,
    evaluate,
    precise_batchnorm,
    train_one_epoch,
)

Log = Callable[[str], None]
ProgressFn = Callable[[int, int], None]  # (done, total)
AudioStats = dict[str, list[float]]  # {"mean": 64 floats, "std": 64 floats}

BEST_CHECKPOINT, LAST_CHECKPOINT, EPOCH_LOG = "checkpoint.pt", "last.pt", "metrics.jsonl"
#: What may change when a run is resumed; everything else must equal the interrupted run's settings.
RESUMABLE_CHANGES = ("epochs", "patience", "device", "workers")


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
    test_window: dict[str, Any] = field(default_factory=dict)
    data_path: str = ""


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _split_dataset(
    index: DatasetIndex, split: Split, config: TrainConfig, cache: FeatureCache | None, limit: int | None = None
) -> SceneDataset:
    """One split (at most `limit`, by default ``config.limit``, pairs), loading only the modalities the model uses."""
    modality = config.modality_enum
    return SceneDataset(
        index.split(split, limit if limit is not None else config.limit),
        image_size=config.image_side,
        image=modality.uses_image,
        audio=modality.uses_audio,
        cache=cache,
        features=config.features,
    )


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _silent(_message: str) -> None:
    """The log of non-main ranks and of callers that pass ``log=None``."""


def train(
    dataset_root: Path | str,
    run_dir: Path,
    config: TrainConfig,
    *,
    cache_dir: Path | None = None,
    log: Log | None = _log_stderr,
    on_cache_progress: Callable[[int, int], None] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train the classifier on `dataset_root`, select on validation weighted F1, test, and write RUN_DIR.

    `dataset_root` is an export folder, the ADVANCE release, or WebDataset shards: a shard folder, its URL or a
    brace pattern of shard paths or URLs (see :mod:`model.shards`; under torchrun each rank reads its own part).

    Writes (rank 0 only) ``checkpoint.pt``, ``last.pt``, ``metrics.jsonl``, ``metrics.json``, ``confusion.png``
    and ``curves.png`` in `run_dir`. With `resume`, continues from ``run_dir/last.pt`` (weights, optimiser,
    scheduler, RNG states, epoch, history, best) and ends where an uninterrupted run would; `config` must then be
    the interrupted run's (see :func:`resume_config`). Under torchrun every rank calls this; the process group is
    set up and torn down here.
    """
    ctx = setup_distributed(config.device)
    config = config.for_device(ctx.device.type)
    try:
        return _train(
            dataset_root,
            Path(run_dir),
            config,
            ctx,
            cache_dir,
            log if ctx.is_main else None,
            on_cache_progress if ctx.is_main else None,
            resume,
        )
    finally:
        teardown_distributed(ctx)


def resume_config(run_dir: Path, changes: Mapping[str, Any]) -> TrainConfig:
    """The configuration of the run in `run_dir` (from its ``last.pt``), with the allowed `changes` applied.

    Args:
        run_dir: the RUN_DIR of an earlier, interrupted or finished, run.
        changes: settings the user gave again; None values are ignored. Only :data:`RESUMABLE_CHANGES` may
            differ from the run's own (e.g. more epochs); any other difference is refused.

    Raises:
        TrainingError: no ``last.pt`` in `run_dir`, or a setting that cannot change mid-run.
    """
    saved = load_checkpoint(Path(run_dir) / LAST_CHECKPOINT).config
    given = {k: v for k, v in changes.items() if v is not None}
    fixed = [
        f"{k} ({getattr(saved, k)!r} → {v!r})"
        for k, v in given.items()
        if k not in RESUMABLE_CHANGES and k != "preset" and _differs(getattr(saved, k), v)
    ]
    if fixed:
        raise TrainingError(
            f"cannot change {', '.join(fixed)} when resuming {run_dir}; only {', '.join(RESUMABLE_CHANGES)} may "
            "change (start a new run with --out for other settings)"
        )
    return saved.with_(**{k: v for k, v in given.items() if k in RESUMABLE_CHANGES})


def _differs(saved: Any, given: Any) -> bool:
    if isinstance(saved, tuple):
        return tuple(saved) != tuple(given)
    return bool(saved != given)


def _open_cache(
    index: DatasetIndex,
    config: TrainConfig,
    ctx: DistContext,
    cache_dir: Path | None,
    workers: int,
    on_progress: ProgressFn | None,
    local: bool = False,
) -> FeatureCache | None:
    """The feature cache (rank 0 builds it, the others wait and open it), or None when caching is off.

    With `local` data (shards: each rank holds its own samples) every rank builds or opens its own cache.
    """
    if not config.use_cache:
        return None
    root = cache_dir or default_cache_dir()
    side, features = config.image_side, config.features
    if local:
        return open_or_build_cache(index, side, root, workers=workers, on_progress=on_progress, features=features)
    if ctx.is_main:
        cache = open_or_build_cache(index, side, root, workers=workers, on_progress=on_progress, features=features)
    barrier(ctx)
    if not ctx.is_main:
        cache = open_or_build_cache(index, side, root, build=False, features=features)
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
    data: _Data, config: TrainConfig, ctx: DistContext, cache: FeatureCache | None, say: Log
) -> tuple[dict[Split, SceneDataset], dict[Split, int]]:
    """The three splits as datasets and their sizes over all ranks; refuses a training split too small for the
    ranks, and logs the sizes."""
    limit = config.limit
    if data.local and limit is not None:  # --limit is per split over the whole run: each rank keeps its share
        limit = len(range(ctx.rank, limit, ctx.world_size))
    datasets = {split: _split_dataset(data.index, split, config, cache, limit) for split in Split}
    sizes = data.total_sizes({s: len(d) for s, d in datasets.items()}, ctx)
    if sizes[Split.TRAIN] < ctx.world_size:
        raise DatasetError(f"the training split of {data.path} has {sizes[Split.TRAIN]} pairs; too few to train")
    say(
        f"dataset {data.path} ({data.index.layout}): train {sizes[Split.TRAIN]}, val {sizes[Split.VAL]}, test "
        f"{sizes[Split.TEST]} pairs; device {ctx.device}{f' × {ctx.world_size} processes' if ctx.distributed else ''}"
    )
    return datasets, sizes


def _sources(
    datasets: Mapping[Split, SceneDataset],
    cache: FeatureCache | None,
    config: TrainConfig,
    ctx: DistContext,
    workers: int,
) -> dict[Split, BatchSource]:
    """Resident splits when asked for (``on``) or when they fit (``auto``), else one loader per split.

    Called once the model is on the device, so the free memory :meth:`ResidentData.fits` sees counts it.
    """
    modality = config.modality_enum
    resident = config.resident == "on"
    if config.resident == "auto" and cache is not None:
        pairs = sum(len(d) for d in datasets.values())
        need = ResidentData.nbytes(pairs, config.image_side, image=modality.uses_image, audio=modality.uses_audio)
        resident = ResidentData.fits(need, ctx.device)
    if resident and cache is None:
        raise TrainingError("--resident on needs the feature cache; drop --no-cache or use --resident off")
    sources: dict[Split, BatchSource] = {}
    for split, dataset in datasets.items():
        if resident and cache is not None:
            data = ResidentData.from_cache(
                cache,
                dataset.samples,
                config.image_side,
                ctx.device,
                image=modality.uses_image,
                audio=modality.uses_audio,
            )
            sources[split] = ResidentSource(data, ctx.device)
        else:
            sources[split] = LoaderSource(dataset, ctx, workers)
    return sources


def _describe_path(sources: Mapping[Split, BatchSource]) -> str:
    """ "resident on cuda:0 (1.23 GB)" (all splits together) or "loader (8 workers, feature cache)"."""
    if all(isinstance(s, ResidentSource) for s in sources.values()):
        total = sum(s.nbytes for s in sources.values() if isinstance(s, ResidentSource))
        first = next(iter(sources.values()))
        assert isinstance(first, ResidentSource)
        return f"resident on {first.device} ({total / 1e9:.2f} GB)"
    return sources[Split.TRAIN].description


def _fit_audio_stats(
    model: FusionNet, train_set: SceneDataset, config: TrainConfig, workers: int, ctx: DistContext, local: bool
) -> AudioStats:
    """Fit the audio normalisation on the training split (identity when the model hears nothing).

    With `local` data under torchrun each rank holds part of the split: the sums are added up over the ranks.
    """
    mean, std = torch.zeros(N_MELS), torch.ones(N_MELS)
    if config.modality_enum.uses_audio:
        if local and ctx.distributed:
            mean, std = audio_statistics_across_ranks(train_set, workers, ctx)
        else:
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
    test: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Loop:
    """What the epoch loop works with; `model` is the bare network, `trainable` it or its DDP wrapper."""

    model: FusionNet
    trainable: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    sampler: GlobalBatchSampler | LocalBatchSampler
    sizes: dict[Split, int]  # this rank's (local data) or every rank's (folder data) sizes
    select_on_val: bool
    local: bool = False  # each rank holds its own samples (shards): evaluate all of them, batch with the sampler
    sources: dict[Split, BatchSource] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    best: _Best = field(default_factory=_Best)
    stale: int = 0
    start_epoch: int = 1


def _make_loop(
    model: FusionNet,
    sizes: dict[Split, int],
    totals: dict[Split, int],
    data: _Data,
    ctx: DistContext,
    config: TrainConfig,
) -> _Loop:
    """Place the model, then make its optimiser, learning-rate schedule and batch sampler.

    `sizes` are this rank's split sizes, `totals` those over all ranks (the same unless the data is local).
    """
    model, trainable = _place_model(model, ctx)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # No milestones: a constant rate (MultiStepLR with none never changes it, and keeps one code path).
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), gamma=config.lr_gamma)
    sampler: GlobalBatchSampler | LocalBatchSampler
    if data.local:
        sampler = LocalBatchSampler(
            data.rank_train_sizes(sizes[Split.TRAIN], ctx),
            config.batch_size,
            seed=config.seed,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
    else:
        sampler = GlobalBatchSampler(
            sizes[Split.TRAIN], config.batch_size, seed=config.seed, rank=ctx.rank, world_size=ctx.world_size
        )
    return _Loop(model, trainable, optimizer, scheduler, sampler, sizes, totals[Split.VAL] > 0, data.local)


def _restore(loop: _Loop, run_dir: Path, ctx: DistContext) -> None:
    """Put the loop back where ``last.pt`` left it: weights, optimiser, schedule, RNG, history, best, patience."""
    last = load_checkpoint(run_dir / LAST_CHECKPOINT)  # on the CPU: RNG states must stay CPU tensors
    best = load_checkpoint(run_dir / BEST_CHECKPOINT)
    loop.model.load_state_dict(last.model_state)
    if last.optimizer_state is not None:
        loop.optimizer.load_state_dict(last.optimizer_state)
    if last.scheduler_state is not None:
        loop.scheduler.load_state_dict(last.scheduler_state)
    if last.rng is not None:
        set_rng_state(last.rng)
    state = last.loop
    loop.history = list(last.history)
    loop.best = _Best(
        float(state["best_score"]), best.epoch, best.model_state, best.metrics["val"], best.metrics["test"]
    )
    loop.stale = int(state["stale"])
    loop.start_epoch = last.epoch + 1


def _augment_generator(config: TrainConfig, ctx: DistContext, epoch: int) -> torch.Generator | None:
    """The augmentation's generator on the device, seeded by (seed, epoch, rank): runs and resumes repeat."""
    if not (config.augment and config.modality_enum.uses_image):
        return None
    return torch.Generator(device=ctx.device).manual_seed((config.seed * 1_000_003 + epoch) * 1_009 + ctx.rank)


def _run_epoch(
    loop: _Loop, epoch: int, ctx: DistContext, config: TrainConfig
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Train one epoch, step the schedule, recompute BatchNorm statistics, score val and test.

    Returns:
        (the epoch's history row, the full validation metrics, the full test metrics).
    """
    loop.sampler.set_epoch(epoch)
    batches = list(loop.sampler)
    global_sizes = loop.sampler.global_sizes()
    lr = loop.optimizer.param_groups[0]["lr"]
    train_source = loop.sources[Split.TRAIN]
    augment = _augment_generator(config, ctx, epoch)
    stats = train_one_epoch(loop.trainable, train_source, batches, global_sizes, loop.optimizer, ctx, config, augment)
    loop.scheduler.step()
    precise_batchnorm(loop.model, train_source, batches, global_sizes, ctx, config)
    val = evaluate(loop.model, loop.sources[Split.VAL], _eval_plan(loop, Split.VAL, ctx, config), ctx, config)
    test = evaluate(loop.model, loop.sources[Split.TEST], _eval_plan(loop, Split.TEST, ctx, config), ctx, config)
    row = {
        "epoch": epoch,
        "train_loss": stats["train_loss"],
        "val_loss": val["loss"],
        "val_weighted_f1": val["weighted_f1"],
        "val_accuracy": val["accuracy"],
        "lr": lr,
        "samples_per_s": stats["samples_per_s"],
        "data_wait_s": stats["data_wait_s"],
        "data_wait": stats["data_wait"],
        "data_wait_pct": 100 * stats["data_wait"],
        "seconds": stats["seconds"],
        "test_loss": test["loss"],
        **{f"test_{key}": test[key] for key in SUMMARY_KEYS},
    }
    return row, val, test


def _eval_plan(loop: _Loop, split: Split, ctx: DistContext, config: TrainConfig) -> list[list[int]]:
    """This rank's evaluation batches: its shard of the split, or all it holds when the data is local."""
    if loop.local:
        return local_eval_batches(loop.sizes[split], config.batch_size, ctx.world_size)
    return eval_batches(loop.sizes[split], ctx, config)


def _fit(
    loop: _Loop,
    ctx: DistContext,
    config: TrainConfig,
    say: Log,
    on_epoch: Callable[[_Loop, bool], None],
) -> None:
    """Train epoch by epoch, keeping the best (val weighted F1, else training loss); stop after `patience`.

    `on_epoch(loop, improved)` runs after every epoch (it writes the checkpoints and the epoch log).
    """
    if loop.stale >= config.patience:
        return
    for epoch in range(loop.start_epoch, config.epochs + 1):
        row, val, test = _run_epoch(loop, epoch, ctx, config)
        loop.history.append(row)
        say(
            f"epoch {epoch}/{config.epochs}  loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  val "
            f"weighted F1 {row['val_weighted_f1']:.4f}  lr {row['lr']:.2e}  {row['samples_per_s']:.1f} samples/s  "
            f"data wait {row['data_wait_pct']:.0f}%  ({row['seconds']:.1f} s)"
        )
        score = val["weighted_f1"] if loop.select_on_val else -row["train_loss"]
        improved = score > loop.best.score
        if improved:
            state = {k: v.detach().clone() for k, v in loop.model.state_dict().items()}
            loop.best, loop.stale = _Best(score, epoch, state, val, test), 0
        else:
            loop.stale += 1
        on_epoch(loop, improved)
        if loop.stale >= config.patience:
            say(f"early stop: no better validation weighted F1 for {loop.stale} epoch(s); best was {loop.best.epoch}")
            break


@dataclass
class _RunFiles:
    """Writes RUN_DIR (rank 0 only): the two checkpoints and the epoch log after each epoch, the rest at the end."""

    run_dir: Path
    config: TrainConfig
    audio_stats: AudioStats
    dataset_info: dict[str, Any]
    data_path: str
    enabled: bool

    def _checkpoint(self, loop: _Loop, state: dict[str, torch.Tensor], epoch: int, val: dict, test: dict) -> Checkpoint:
        return Checkpoint(
            self.config,
            state,
            loop.optimizer.state_dict(),
            [c.value for c in CLASS_ORDER],
            self.audio_stats,
            epoch,
            {"val": val, "test": test},
            loop.history,
            self.dataset_info,
        )

    def after_epoch(self, loop: _Loop, improved: bool) -> None:
        if not self.enabled:
            return
        epoch = loop.history[-1]["epoch"]
        if improved and loop.best.state is not None:
            save_checkpoint(
                self.run_dir / BEST_CHECKPOINT,
                self._checkpoint(loop, loop.best.state, epoch, loop.best.val, loop.best.test),
            )
        last = self._checkpoint(loop, loop.model.state_dict(), epoch, loop.best.val, loop.best.test)
        last.scheduler_state = loop.scheduler.state_dict()
        last.rng = rng_state()
        last.loop = {"best_score": loop.best.score, "best_epoch": loop.best.epoch, "stale": loop.stale}
        save_checkpoint(self.run_dir / LAST_CHECKPOINT, last)
        lines = "".join(json.dumps(row) + "\n" for row in loop.history)
        atomic_write_text(self.run_dir / EPOCH_LOG, lines)

    def finish(self, metrics: dict[str, Any]) -> None:
        """Final metrics into the checkpoint, metrics.json, confusion.png and curves.png."""
        if not self.enabled:
            return
        path = self.run_dir / BEST_CHECKPOINT
        final = load_checkpoint(path)  # keeps the optimiser state of the best epoch
        final.metrics = {"val": metrics["val"], "test": metrics["test"], "test_window": metrics["test_window"]}
        final.history = metrics["history"]
        save_checkpoint(path, final)
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        plot_confusion(metrics["test"], self.run_dir / "confusion.png")
        plot_curves(metrics["history"], self.run_dir / "curves.png", best_epoch=metrics["best_epoch"])


@dataclass
class _Data:
    """The dataset a run trains on: an index of what this rank holds, and how it relates to the other ranks.

    Folder data (an export or the release) is indexed whole on every rank, which take turns in each batch.
    Shard data is `local`: each rank holds only its own part (see :mod:`model.shards`), so sizes and counts are
    added up over the ranks, and the staging files are removed once the run no longer needs them.
    """

    path: str
    index: DatasetIndex
    key: str
    info: dict[str, Any]
    shards: RankData | None = None

    @property
    def local(self) -> bool:
        return self.shards is not None

    def total_sizes(self, sizes: Mapping[Split, int], ctx: DistContext) -> dict[Split, int]:
        """Split sizes over all ranks: added up for local data, as they are otherwise."""
        if not (self.local and ctx.distributed):
            return dict(sizes)
        summed = all_reduce_sum(torch.tensor([sizes[s] for s in Split], dtype=torch.int64), ctx).tolist()
        return {s: int(n) for s, n in zip(Split, summed, strict=True)}

    def rank_train_sizes(self, size: int, ctx: DistContext) -> list[int]:
        """The training-split size of every rank (all-gathered), for :class:`LocalBatchSampler`."""
        if not ctx.distributed:
            return [size]
        import torch.distributed as dist

        gathered = [torch.zeros(1, dtype=torch.int64) for _ in range(ctx.world_size)]
        dist.all_gather(gathered, torch.tensor([size], dtype=torch.int64))
        return [int(t.item()) for t in gathered]

    def release_files(self) -> None:
        """Remove the staged shard files (the features are cached, or the run is over)."""
        if self.shards is not None:
            self.shards.remove_staging()


def _open_data(spec: Path | str, config: TrainConfig, ctx: DistContext, cache_dir: Path | None, say: Log) -> _Data:
    """Index DATASET: a folder the usual way, shards by reading this rank's part of them."""
    if not is_shard_dataset(spec):
        root = Path(spec)
        index = open_dataset(root, split_seed=config.split_seed)
        return _Data(str(root), index, index.key, {"path": str(root), **describe(index)})
    staging = staging_folder(cache_dir or default_cache_dir(), ctx.rank)
    shards = open_shards(spec, staging, rank=ctx.rank, world_size=ctx.world_size)
    per_rank = gather_counts(shards, ctx)
    info = {"path": str(spec), **describe_shards(shards, per_rank, gather_class_counts(shards, ctx))}
    shard_count = info["shards"]
    say(
        f"shards: rank 0 staged {len(shards.index.samples)} samples ({shards.bytes_read / 1e6:.1f} MB); "
        + ", ".join(f"{s} {shard_count[s]} shard(s) split by {by}" for s, by in info["split_by"].items())
    )
    return _Data(str(spec), shards.index, shards.shard_set.key, info, shards)


def _train(
    root: Path | str,
    run_dir: Path,
    config: TrainConfig,
    ctx: DistContext,
    cache_dir: Path | None,
    log: Log | None,
    on_cache_progress: ProgressFn | None,
    resume: bool,
) -> TrainResult:
    """:func:`train` on one rank, inside its process group; `log` is None except on rank 0."""
    say = log or _silent
    _seed_everything(config.seed)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if resume:
        _check_resumable_settings(run_dir, config)
    model = build_model(config, NUM_CLASSES)  # first, so a bad weights file fails before any decoding
    data = _open_data(root, config, ctx, cache_dir, say)
    try:
        if resume:
            _check_resumable_data(run_dir, data.key)
        return _train_on(data, model, run_dir, config, ctx, cache_dir, say, on_cache_progress, resume)
    finally:
        data.release_files()


def _train_on(
    data: _Data,
    model: FusionNet,
    run_dir: Path,
    config: TrainConfig,
    ctx: DistContext,
    cache_dir: Path | None,
    say: Log,
    on_cache_progress: ProgressFn | None,
    resume: bool,
) -> TrainResult:
    """The run once the data is indexed: cache, splits, loop, files."""
    workers = default_workers(config, ctx.device)
    cache = _open_cache(data.index, config, ctx, cache_dir, workers, on_cache_progress, data.local)
    if cache is not None:
        data.release_files()  # every pass reads the cache from here on
    datasets, totals = _split_datasets(data, config, ctx, cache, say)
    sizes = {s: len(d) for s, d in datasets.items()}
    audio_stats = _fit_audio_stats(model, datasets[Split.TRAIN], config, workers, ctx, data.local)
    loop = _make_loop(model, sizes, totals, data, ctx, config)
    sources = loop.sources = _sources(datasets, cache, config, ctx, workers)
    data_path = _describe_path(sources)
    say(f"data path: {data_path}")
    if resume:
        _restore(loop, run_dir, ctx)
        say(f"resuming {run_dir} after epoch {loop.start_epoch - 1} (best so far: epoch {loop.best.epoch})")
    dataset_info = {**data.info, "used": {s.value: n for s, n in totals.items()}}
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if not loop.select_on_val:
        say("warning: the validation split is empty; the epoch with the lowest training loss is kept")
    files = _RunFiles(run_dir, config, audio_stats, dataset_info, data_path, ctx.is_main)
    _fit(loop, ctx, config, say, files.after_epoch)
    best = loop.best
    assert best.state is not None
    # The best epoch's test metrics were computed with exactly these weights and BatchNorm statistics.
    loop.model.load_state_dict(best.state)
    test = best.test
    window = windowed_summary(loop.history, best.epoch)
    metrics = {
        "test": test,
        "test_window": window,
        "val": best.val,
        "best_epoch": best.epoch,
        "history": loop.history,
        "data_path": data_path,
        "config": config.to_dict(),
        "dataset": dataset_info,
    }
    files.finish(metrics)
    barrier(ctx)
    return TrainResult(
        run_dir,
        run_dir / BEST_CHECKPOINT,
        test,
        best.val,
        best.epoch,
        loop.history,
        dataset_info,
        ctx.is_main,
        window,
        data_path,
    )


def _check_resumable_data(run_dir: Path, key: str) -> None:
    """Refuse to resume onto another dataset (or the same one with changed files)."""
    last = load_checkpoint(run_dir / LAST_CHECKPOINT)
    if last.dataset.get("key") not in (None, key):
        raise TrainingError(f"{run_dir} was trained on another dataset (or the files changed); cannot resume on it")


def _check_resumable_settings(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume with settings that differ beyond :data:`RESUMABLE_CHANGES`."""
    last = load_checkpoint(run_dir / LAST_CHECKPOINT)
    saved = last.config.to_dict()
    given = config.to_dict()
    differ = [k for k in saved if k not in RESUMABLE_CHANGES and saved[k] != given.get(k)]
    if differ:
        raise TrainingError(f"cannot resume {run_dir} with other settings: {', '.join(differ)}")


def evaluate_checkpoint(
    checkpoint_path: Path,
    dataset_root: Path | str,
    *,
    split: str = "test",
    device: str = "auto",
    workers: int | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = False,
) -> dict[str, Any]:
    """Metrics of a saved model on one split of a dataset; the checkpoint is all it needs besides the data.

    The split is computed the way training computed it (same split seed and ``limit``), so evaluating the
    training dataset's test split reproduces the checkpoint's test metrics exactly (same batches, same order).
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
    data = _open_data(dataset_root, config, ctx, cache_dir, _silent)
    try:
        n_workers = workers if workers is not None else default_workers(config, ctx.device)
        cache = _open_cache(data.index, config, ctx, cache_dir, n_workers, None, data.local)
        dataset = _split_dataset(data.index, split_enum, config, cache)
        if len(dataset) == 0:
            raise DatasetError(f"the {split} split of {dataset_root} is empty")
        source = LoaderSource(dataset, ctx, n_workers)
        return evaluate(model, source, eval_batches(len(dataset), ctx, config), ctx, config)
    finally:
        data.release_files()
