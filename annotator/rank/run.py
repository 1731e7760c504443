"""One rank run: select the pairs, cross-validate the classifier, score every pair, store the run.

Transactions: :func:`rank_pairs` works in the caller's :class:`~annotator.store.UnitOfWork`. It reads the pairs,
ends that read transaction before training (nothing is held open for the minutes the folds take), and adds the
run and all its scores at the end, which the caller commits as one batch: a killed run leaves nothing behind, and
a rerun with the same store and seed stores the same ranking again as a new run (the latest run is the one
`status` and `ls push` use).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from annotator.errors import TrainingError
from annotator.rank.config import RankOptions, training_config
from annotator.rank.selection import RankCandidate, RankSkip, select_candidates
from annotator.rank.suspicion import (
    FLAG_THRESHOLD,
    SUSPICION_METHOD,
    combine_suspicion,
    label_suspicion,
    osm_staleness,
    queue_ranks,
)
from annotator.store import UnitOfWork
from annotator.store.models import RankRun, RankScore
from annotator.vocabulary import CLASS_ORDER, LabelSource, PairOrigin

if TYPE_CHECKING:
    from model.data import SampleRef

Log = Callable[[str], None]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class RankedPair:
    """One pair as the run scored it; the rows of the CSV, most suspicious first."""

    pair_id: int
    recording_source_id: str
    origin: str
    osm_label: str | None
    current_label: str | None
    label_origin: str | None
    suggested_label: str
    suggested_p: float
    suspicion: float
    fold: int
    rank: int

    @property
    def flagged(self) -> bool:
        return self.suspicion >= FLAG_THRESHOLD


@dataclass
class RankReport:
    """What a rank run did: its stored id, every scored pair (rank order), counts and timings."""

    run_id: int
    pairs: list[RankedPair] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary `rank --json` prints (the per-pair rows are the CSV's)."""
        return {
            "run_id": self.run_id,
            "params": self.params,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "seconds_per_fold": self.model.get("seconds_per_fold", []),
            "top": [_row_json(p) for p in self.pairs[:10]],
        }


def _row_json(pair: RankedPair) -> dict[str, Any]:
    return {
        "rank": pair.rank,
        "pair_id": pair.pair_id,
        "recording_id": pair.recording_source_id,
        "current_label": pair.current_label,
        "label_origin": pair.label_origin,
        "suggested_label": pair.suggested_label,
        "suggested_p": round(pair.suggested_p, 6),
        "suspicion": round(pair.suspicion, 6),
    }


def sample_refs(candidates: list[RankCandidate], media_dir: Path) -> list[SampleRef]:
    """The pairs on disk for :func:`model.oof.out_of_fold_probabilities` (id: the pair id).

    A SampleRef's label and split are placeholders here (the current label, or the first class; train): the
    labels the folds train with are passed separately.
    """
    from dataset.split import Split
    from model.data import SampleRef  # imports torch

    return [
        SampleRef(
            id=str(c.pair_id),
            label=c.current_label or CLASS_ORDER[0],
            split=Split.TRAIN,
            image_path=media_dir / c.image_path,
            audio_path=media_dir / c.clip_path,
        )
        for c in candidates
    ]


def training_labels(candidates: list[RankCandidate]) -> list[int | None]:
    """The class index each pair trains with: its current label (human, else OSM), None when it has none."""
    return [c.current_label.index if c.current_label is not None else None for c in candidates]


def _osm_prior(candidates: list[RankCandidate]) -> np.ndarray:
    """OSM's staleness prior per pair; NaN where the current label is not OSM's (a human's, or none)."""
    return np.array(
        [
            osm_staleness(c.osm) if c.osm is not None and c.label_origin == LabelSource.OSM else np.nan
            for c in candidates
        ],
        dtype=np.float64,
    )


def _counts(candidates: list[RankCandidate], skipped: Counter[RankSkip], ranked: list[RankedPair]) -> dict[str, Any]:
    origins = Counter(c.label_origin.value if c.label_origin else "none" for c in candidates)
    return {
        "scored": len(candidates),
        "trained_on": sum(c.current_label is not None for c in candidates),
        "label_origin": {key: origins.get(key, 0) for key in (LabelSource.HUMAN.value, LabelSource.OSM.value, "none")},
        "offsets": sum(c.origin == PairOrigin.OFFSET for c in candidates),
        "recordings": len({c.group for c in candidates}),
        "flagged": sum(p.flagged for p in ranked),
        "disagree": sum(p.current_label is not None and p.suggested_label != p.current_label for p in ranked),
        "skipped": {reason.value: n for reason, n in sorted(skipped.items())},
    }


def score_pairs(
    candidates: list[RankCandidate],
    probs: np.ndarray,
    fold: np.ndarray,
    *,
    osm_weight: float = 0.0,
    method: str = SUSPICION_METHOD,
) -> list[RankedPair]:
    """Suspicion, suggestion and rank of every candidate from its out-of-fold probabilities, most suspicious first.

    Args:
        candidates: the pairs (as :func:`~annotator.rank.selection.select_candidates` gives them).
        probs: out-of-fold probabilities (N, 13) in :data:`~annotator.vocabulary.CLASS_ORDER`.
        fold: the fold that scored each pair (N,).
        osm_weight: the OSM evidence's weight in the suspicion of OSM labels (see :mod:`annotator.rank.suspicion`).
        method: the cleanlab label-quality method (the benchmark compares them; `rank` uses self-confidence).
    """
    model_suspicion = label_suspicion(training_labels(candidates), probs, method=method)
    suspicion = combine_suspicion(model_suspicion, _osm_prior(candidates), osm_weight)
    ranks = queue_ranks(suspicion, [c.pair_id for c in candidates])
    best = probs.argmax(axis=1)
    ranked = [
        RankedPair(
            pair_id=c.pair_id,
            recording_source_id=c.recording_source_id,
            origin=c.origin.value,
            osm_label=c.osm_label,
            current_label=c.current_label.value if c.current_label is not None else None,
            label_origin=c.label_origin.value if c.label_origin is not None else None,
            suggested_label=CLASS_ORDER[int(best[i])].value,
            suggested_p=float(probs[i, best[i]]),
            suspicion=float(suspicion[i]),
            fold=int(fold[i]),
            rank=ranks[i],
        )
        for i, c in enumerate(candidates)
    ]
    return sorted(ranked, key=lambda p: p.rank)


def _store_run(work: UnitOfWork, report: RankReport) -> int:
    run = RankRun(params=report.params, counts=report.counts, model=report.model)
    work.session.add(run)
    work.session.flush()
    work.session.add_all(
        RankScore(
            run_id=run.id,
            pair_id=p.pair_id,
            current_label=p.current_label,
            label_origin=LabelSource(p.label_origin) if p.label_origin else None,
            suggested_label=p.suggested_label,
            suggested_p=p.suggested_p,
            suspicion=p.suspicion,
            fold=p.fold,
            rank=p.rank,
        )
        for p in report.pairs
    )
    work.session.flush()
    return run.id


def rank_pairs(
    work: UnitOfWork,
    media_dir: Path,
    options: RankOptions,
    *,
    log: Log | None = None,
    progress: ProgressFn | None = None,
    on_cache_progress: ProgressFn | None = None,
) -> RankReport:
    """Rank every pair of the store by how likely its current label is wrong, and store the run.

    Args:
        work: the caller's unit of work (see the module docstring); the caller commits the run.
        media_dir: the media directory of the store.
        options: folds, epochs, preset, seed, … (stored as the run's parameters).
        log: a line per fold and epoch (stderr in the CLI).
        progress: (epochs done, folds × epochs) as the folds train.
        on_cache_progress: (pairs decoded, pairs) while the feature cache is built.

    Raises:
        TrainingError: nothing to rank, too few labelled pairs or recordings for the folds, a bad setting.
        DatasetError: a media file that cannot be read.
    """
    from model.distributed import resolve_device
    from model.oof import out_of_fold_probabilities

    started = time.perf_counter()
    selection = select_candidates(work.session, media_dir)
    work.commit_batch()  # ends the read transaction: nothing is held open while the folds train
    candidates = selection.candidates
    if not candidates:
        raise TrainingError(
            "no pairs to rank: the store holds no accepted pair with its image and clip "
            "(run `annotator import` and `annotator imagery fill` first)"
        )
    labels = training_labels(candidates)
    if sum(label is not None for label in labels) < 2:
        raise TrainingError(
            "fewer than 2 pairs carry a label to train on; run `annotator prelabel` or review some pairs first"
        )
    config = training_config(options, resolve_device(options.device).type)
    oof = out_of_fold_probabilities(
        sample_refs(candidates, media_dir),
        labels,
        [c.group for c in candidates],
        config,
        folds=options.folds,
        cache_dir=options.cache_dir,
        log=log,
        progress=progress,
        on_cache_progress=on_cache_progress,
    )
    ranked = score_pairs(candidates, oof.probs, oof.fold, osm_weight=options.osm_weight)
    report = RankReport(
        run_id=0,
        pairs=ranked,
        counts=_counts(candidates, selection.skipped, ranked),
        params={**options.to_params(), "method": SUSPICION_METHOD, "flag_threshold": FLAG_THRESHOLD},
        model={
            "config": oof.config.to_dict(),
            "seconds_per_fold": [round(s, 3) for s in oof.seconds_per_fold],
            "cache_seconds": round(oof.cache_seconds, 3),
        },
    )
    report.run_id = _store_run(work, report)
    report.seconds = time.perf_counter() - started
    return report
