"""Out-of-fold class probabilities: k-fold cross-validation of the fusion classifier over a set of pairs.

What ``annotator rank`` needs to find stale labels (confident learning ranks by *out-of-sample* probabilities):
every pair is scored by a model that never trained on it, nor on any pair of its group (a recording and its
offset copies look alike, so an offset in training would leak the answer).

* :func:`grouped_stratified_folds` puts whole groups into k folds, balancing each class across them.
* :func:`out_of_fold_probabilities` trains, for each fold, the project's classifier — the same network
  (:func:`model.networks.build_model`), epoch (:func:`model.steps.train_one_epoch`) and precise BN as
  :mod:`model.train` — on the labelled pairs of the other folds, for a fixed number of epochs (no validation
  split, no early stopping: the last epoch's weights), and predicts every pair of the fold, labelled or not.
  The features are decoded once into one :mod:`model.cache` for all folds.

Settings for ``rank`` on a CPU: the ``small`` preset with :data:`CPU_RANK_SETTINGS` — 64 px images, an audio CNN
of width 8, batch 16, lr 3e-3, 6 epochs (on CUDA the preset's own sizes). Measured on 200 planted pairs (5 classes ×
40 recordings, 20 % of the labels flipped), 4 folds: about 30 s of CPU time per fold (150 training pairs × 6
epochs, precise BN, 50 predictions), and the flipped labels fill the first 20 % of the self-confidence ranking
(recall 0.98, the most 40 slots can hold of 41).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annotator.errors import DatasetError, TrainingError
from annotator.vocabulary import CLASS_ORDER, NUM_CLASSES
from model.cache import FeatureCache, default_cache_dir, open_or_build_cache
from model.config import TrainConfig
from model.data import DatasetIndex, DatasetLayout, SampleRef, SceneDataset
from model.distributed import DistContext, GlobalBatchSampler, resolve_device
from model.networks import FusionNet, build_model
from model.resident import ResidentData
from model.steps import (
    BatchSource,
    LoaderSource,
    ResidentSource,
    audio_statistics,
    default_workers,
    precise_batchnorm,
    predict_probabilities,
    train_one_epoch,
)

Log = Callable[[str], None]
ProgressFn = Callable[[int, int], None]  # (done, total)

#: Overrides of the ``small`` preset that make cross-validation practical on a CPU (see the module docstring).
CPU_RANK_SETTINGS: dict[str, Any] = {"image_size": 64, "audio_width": 8, "batch_size": 16, "lr": 3e-3, "epochs": 6}


@dataclass(frozen=True, eq=False)
class OutOfFold:
    """The result of :func:`out_of_fold_probabilities`.

    Attributes:
        probs: float64 (N, 13): row i is the softmax of the model of fold ``fold[i]``; each row sums to 1.
        fold: int64 (N,): the fold of each pair (0 … k-1).
        seconds_per_fold: wall time of each fold (audio statistics, training, precise BN, prediction).
        config: the configuration the folds were trained with, resolved for the device.
        trained_on: per fold, the indices of the pairs its model trained on (labelled, of the other folds).
        cache_seconds: time to open (or build) the feature cache shared by the folds and load the data from it.
    """

    probs: np.ndarray
    fold: np.ndarray
    seconds_per_fold: list[float]
    config: TrainConfig
    trained_on: list[frozenset[int]]
    cache_seconds: float = 0.0


# ----------------------------------------------------------------------------------------------------- folds


def grouped_stratified_folds(labels: Sequence[int | None], groups: Sequence[str], k: int, seed: int) -> list[int]:
    """The fold (0 … k-1) of every sample: whole groups per fold, each class spread evenly over the folds.

    Greedy, largest groups first (seeded order among equals): a group goes to the fold holding the fewest
    labelled samples of its classes so far; ties go to the fold with the fewest labelled samples, then the
    fewest samples, then a seeded draw. So a class of single-sample groups ends within ±1 per fold, larger
    groups as close as their sizes allow, and a class with fewer groups than folds simply misses some folds.
    Unlabelled samples (None) go with their group; a group without any label goes to the smallest fold.

    Raises:
        TrainingError: fewer than 2 folds, more folds than groups, or `labels` and `groups` of other lengths.
    """
    if len(labels) != len(groups):
        raise TrainingError(f"{len(labels)} labels but {len(groups)} groups; give one of each per sample")
    if k < 2:
        raise TrainingError(f"cross-validation needs at least 2 folds, not {k}")
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    if k > len(members):
        raise TrainingError(
            f"{k} folds need at least {k} recordings, but the pairs come from only {len(members)}; "
            + (f"use at most {len(members)} folds" if len(members) >= 2 else "cross-validation needs two or more")
        )
    classes = sorted({label for label in labels if label is not None})
    column = {label: c for c, label in enumerate(classes)}
    names = list(members)
    vectors = np.zeros((len(names), len(classes)), dtype=np.int64)  # labelled samples per group and class
    for g, name in enumerate(names):
        for i in members[name]:
            label = labels[i]
            if label is not None:
                vectors[g, column[label]] += 1
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(names))
    # Largest first (labelled, then all samples); the seeded shuffle orders groups of equal size.
    order = sorted(shuffled, key=lambda g: (-int(vectors[g].sum()), -len(members[names[g]])))
    per_class = np.zeros((k, len(classes)), dtype=np.int64)
    sizes = np.zeros(k, dtype=np.int64)
    fold_of = np.zeros(len(labels), dtype=np.int64)
    for g in order:
        overlap = per_class @ vectors[g]  # (k,) labelled samples of this group's classes already in each fold
        draw = rng.random(k)
        fold = int(np.lexsort((draw, sizes, per_class.sum(axis=1), overlap))[0])
        per_class[fold] += vectors[g]
        sizes[fold] += len(members[names[g]])
        fold_of[members[names[g]]] = fold
    return [int(f) for f in fold_of]


# --------------------------------------------------------------------------------------------- the folds run


def out_of_fold_probabilities(
    samples: Sequence[SampleRef],
    labels: Sequence[int | None],
    groups: Sequence[str],
    config: TrainConfig,
    *,
    folds: int = 5,
    cache_dir: Path | None = None,
    log: Log | None = None,
    progress: ProgressFn | None = None,
    on_cache_progress: ProgressFn | None = None,
) -> OutOfFold:
    """Class probabilities for every sample from a model of k-fold cross-validation that never saw its group.

    Args:
        samples: the pairs on disk (ids unique); their ``label`` and ``split`` are not used.
        labels: the class index each sample trains with (:data:`annotator.vocabulary.CLASS_ORDER`), or None:
            scored, never trained on.
        groups: the group of each sample (its recording: offsets share their parent's).
        config: the training settings (``epochs`` fixed; ``patience``, ``limit`` and ``split_seed`` unused;
            ``seed`` seeds the folds, the initial weights and the batch order). See :data:`CPU_RANK_SETTINGS`.
        folds: k.
        cache_dir: the feature caches' folder [default: :func:`model.cache.default_cache_dir`].
        log: one line per epoch and per fold.
        progress: (epochs done, folds × epochs) after every epoch of every fold.
        on_cache_progress: (pairs decoded, pairs) while the feature cache is built.

    Raises:
        TrainingError: bad folds (see :func:`grouped_stratified_folds`), labels out of range, a fold with no
            labelled pair outside it.
        DatasetError: duplicate ids, a media file missing or unreadable.
    """
    say = log or (lambda _message: None)
    _check_inputs(samples, labels, groups)
    fold = np.asarray(grouped_stratified_folds(labels, groups, folds, config.seed), dtype=np.int64)
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=resolve_device(config.device))
    config = config.for_device(ctx.device.type)
    build_model(config, NUM_CLASSES)  # fail on bad settings or weights before decoding anything
    workers = default_workers(config, ctx.device)
    start = time.perf_counter()
    train_refs = [
        replace(s, label=CLASS_ORDER[label]) if label is not None else s
        for s, label in zip(samples, labels, strict=True)
    ]
    cache = _open_cache(samples, config, cache_dir, workers, on_cache_progress)
    source = _source(train_refs, config, ctx, cache, workers)
    cache_seconds = time.perf_counter() - start
    say(f"out-of-fold: {len(samples)} pairs in {folds} folds, data path: {source.description}")
    probs = np.zeros((len(samples), NUM_CLASSES), dtype=np.float64)
    seconds: list[float] = []
    trained_on: list[frozenset[int]] = []
    for f in range(folds):
        began = time.perf_counter()
        train = [i for i in range(len(samples)) if fold[i] != f and labels[i] is not None]
        scored = [i for i in range(len(samples)) if fold[i] == f]
        if len(train) < 2:
            raise TrainingError(
                f"fold {f + 1} of {folds} has {len(train)} labelled pair(s) outside it to train on; at least 2 "
                "are needed (label more pairs or use fewer folds)"
            )
        audio_set = SceneDataset(  # the training pairs' log-mels, for the audio normalisation
            [train_refs[i] for i in train],
            image_size=config.image_side,
            image=False,
            audio=True,
            cache=cache,
            features=config.features,
        )

        def on_epoch(epoch: int, loss: float, fold_number: int = f) -> None:
            say(f"fold {fold_number + 1}/{folds} epoch {epoch}/{config.epochs}  loss {loss:.4f}")
            if progress:
                progress(fold_number * config.epochs + epoch, folds * config.epochs)

        model = _fit_fold(source, audio_set, train, _fold_seed(config.seed, f), config, ctx, workers, on_epoch)
        chunks = [scored[i : i + config.batch_size] for i in range(0, len(scored), config.batch_size)]
        probs[scored] = predict_probabilities(model, source, chunks, ctx, config).numpy()
        trained_on.append(frozenset(train))
        seconds.append(time.perf_counter() - began)
        say(f"fold {f + 1}/{folds}: trained on {len(train)} pairs, scored {len(scored)} ({seconds[-1]:.1f} s)")
    return OutOfFold(probs, fold, seconds, config, trained_on, cache_seconds)


def _check_inputs(samples: Sequence[SampleRef], labels: Sequence[int | None], groups: Sequence[str]) -> None:
    if not len(samples) == len(labels) == len(groups):
        raise TrainingError(
            f"{len(samples)} samples, {len(labels)} labels and {len(groups)} groups; give one of each per sample"
        )
    bad = [label for label in labels if label is not None and not 0 <= label < NUM_CLASSES]
    if bad:
        raise TrainingError(f"label {bad[0]} is no class index (0 … {NUM_CLASSES - 1})")
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise DatasetError(f"sample id {sample.id} appears twice; every pair needs its own id")
        seen.add(sample.id)


def _fold_seed(seed: int, fold: int) -> int:
    """Each fold's own seed (initial weights, batch order, augmentation), fixed by the run's seed."""
    return seed * 1_009 + fold


def samples_key(samples: Sequence[SampleRef]) -> str:
    """A key that changes when any sample's id, files, sizes or modification times do (the feature cache's)."""
    digest = hashlib.sha256(b"samples\n")
    for sample in sorted(samples, key=lambda s: s.id):
        for path in (sample.image_path, sample.audio_path):
            try:
                stat = path.stat()
            except OSError as exc:
                raise DatasetError(f"sample {sample.id}: cannot read {path}: {exc.strerror or exc}") from None
            digest.update(f"{sample.id}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _open_cache(
    samples: Sequence[SampleRef],
    config: TrainConfig,
    cache_dir: Path | None,
    workers: int,
    on_progress: ProgressFn | None,
) -> FeatureCache | None:
    """One feature cache over every sample (built once; later runs on the same files reuse it)."""
    if not config.use_cache:
        return None
    paths = [str(p.absolute()) for s in samples for p in (s.image_path, s.audio_path)]
    # The pairs come from a store, not a dataset folder: the cache needs only the samples and their key.
    index = DatasetIndex(
        root=Path(os.path.commonpath(paths)) if paths else Path("."),
        layout=DatasetLayout.EXPORT,
        samples=tuple(samples),
        key=samples_key(samples),
    )
    root = cache_dir or default_cache_dir()
    return open_or_build_cache(
        index, config.image_side, root, workers=workers, on_progress=on_progress, features=config.features
    )


def _source(
    refs: Sequence[SampleRef], config: TrainConfig, ctx: DistContext, cache: FeatureCache | None, workers: int
) -> BatchSource:
    """All samples as one batch source (batches are lists of sample indices): resident when it fits, else a loader."""
    modality = config.modality_enum
    resident = config.resident == "on"
    if config.resident == "auto" and cache is not None:
        need = ResidentData.nbytes(len(refs), config.image_side, image=modality.uses_image, audio=modality.uses_audio)
        resident = ResidentData.fits(need, ctx.device)
    if resident and cache is None:
        raise TrainingError("--resident on needs the feature cache; drop --no-cache or use --resident off")
    if resident and cache is not None:
        data = ResidentData.from_cache(
            cache, refs, config.image_side, ctx.device, image=modality.uses_image, audio=modality.uses_audio
        )
        return ResidentSource(data, ctx.device)
    dataset = SceneDataset(
        refs,
        image_size=config.image_side,
        image=modality.uses_image,
        audio=modality.uses_audio,
        cache=cache,
        features=config.features,
    )
    return LoaderSource(dataset, ctx, workers)


def _fit_fold(
    source: BatchSource,
    audio_set: SceneDataset,
    train: list[int],
    seed: int,
    config: TrainConfig,
    ctx: DistContext,
    workers: int,
    on_epoch: Callable[[int, float], None],
) -> FusionNet:
    """Train a fresh model on the samples `train` (indices into `source`) for ``config.epochs``; precise BN last.

    `audio_set` holds the same training samples, for the audio normalisation statistics.
    """
    torch.manual_seed(seed)
    model = build_model(config, NUM_CLASSES)
    if config.modality_enum.uses_audio:
        model.set_audio_stats(*audio_statistics(audio_set, workers))
    model.to(ctx.device)
    if ctx.device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), gamma=config.lr_gamma)
    sampler = GlobalBatchSampler(len(train), config.batch_size, seed=seed)
    batches: list[list[int]] = []
    for epoch in range(1, config.epochs + 1):
        sampler.set_epoch(epoch)
        batches = _no_single_sample_tail([[train[p] for p in batch] for batch in sampler])
        sizes = [len(b) for b in batches]
        augment = None
        if config.augment and config.modality_enum.uses_image:
            augment = torch.Generator(device=ctx.device).manual_seed(seed * 1_000_003 + epoch)
        stats = train_one_epoch(model, source, batches, sizes, optimizer, ctx, config, augment)
        scheduler.step()
        on_epoch(epoch, stats["train_loss"])
    # The running statistics for the final weights (BatchNorm uses batch statistics while training, so
    # re-estimating once, before predicting, gives what train.py's per-epoch re-estimation gives).
    precise_batchnorm(model, source, batches, [len(b) for b in batches], ctx, config)
    return model


def _no_single_sample_tail(batches: list[list[int]]) -> list[list[int]]:
    """Join a last batch of one sample to the one before: BatchNorm cannot train on one value per channel."""
    if len(batches) > 1 and len(batches[-1]) == 1:
        return [*batches[:-2], batches[-2] + batches[-1]]
    return batches
