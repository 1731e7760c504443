"""From out-of-fold class probabilities to a suspicion per pair, and the order of the review queue.

* **A labelled pair** (a human or an OSM label): suspicion = 1 − cleanlab's label-quality score with the
  ``self_confidence`` method, i.e. 1 − p(current label) under a model that never saw the pair: the model's
  probability that the current label is wrong. Self-confidence is the score of confident learning's ranking
  (Northcutt et al.) and the one the calibration of issue 13 measured (recall@20 % = 0.90 on the planted
  5-class corpus with a logistic regression); ``normalized_margin`` and ``confidence_weighted_entropy`` are
  accepted for comparison (cleanlab's other methods), all in [0, 1].
* **A pair with no label at all** (OSM matched nothing, nobody reviewed it): there is no label to be wrong, so
  its suspicion is 1 − max p — the probability that the model's own suggestion is wrong, i.e. what the
  suspicion of the pair would be if it carried the suggested class. Such pairs need a human label anyway; this
  puts the ones the model cannot place before the ones it can, without flooding the top of the queue.
* **OSM's own evidence** (age of the deciding edit, footprint coverage, OSM confidence) can be mixed into the
  suspicion of an OSM label with :func:`combine_suspicion`; ``osm_weight`` is 0 by default, so the ranking is the
  model's alone until a measurement on the benchmark (``bench/bench_rank.py``) shows that mixing helps.

The queue is ordered by suspicion, most suspicious first, ties broken by pair id (:func:`queue_ranks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from annotator.rank.selection import OsmSignals

SUSPICION_METHOD = "self_confidence"
#: The cleanlab label-quality methods :func:`label_suspicion` accepts.
SUSPICION_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
#: Suspicion at or above which a pair counts as flagged (status: the ranking's precision on real verdicts).
FLAG_THRESHOLD = 0.5
#: An edit this many years old (or older) counts as fully stale in :func:`osm_staleness`.
EDIT_AGE_SATURATION_YEARS = 10.0
_UNKNOWN_AGE_STALENESS = 0.5
_SECONDS_PER_YEAR = 365.25 * 24 * 3600


def label_suspicion(labels: Sequence[int | None], probs: np.ndarray, *, method: str = SUSPICION_METHOD) -> np.ndarray:
    """The suspicion of every pair's current label, in [0, 1] (see the module docstring).

    Args:
        labels: the current label's class index per pair, None for a pair without a label.
        probs: out-of-fold class probabilities, shape (N, number of classes), rows summing to 1.
        method: a cleanlab label-quality method of :data:`SUSPICION_METHODS`.

    Returns:
        float64 array (N,): 1 − label quality for labelled pairs, 1 − max p for the others.
    """
    from cleanlab.rank import get_label_quality_scores  # cleanlab (and scikit-learn) take a second to import

    if method not in SUSPICION_METHODS:
        raise ValueError(f"unknown suspicion method {method!r}; expected one of {', '.join(SUSPICION_METHODS)}")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(labels) != probs.shape[0]:
        raise ValueError(f"expected probabilities of shape ({len(labels)}, classes), got {probs.shape}")
    suspicion = 1.0 - probs.max(axis=1) if len(labels) else np.zeros(0)
    known = np.array([i for i, label in enumerate(labels) if label is not None], dtype=np.int64)
    if known.size:
        given = np.array([labels[i] for i in known], dtype=np.int64)
        quality = get_label_quality_scores(given, probs[known], method=method)
        suspicion[known] = 1.0 - np.asarray(quality, dtype=np.float64)
    return np.clip(suspicion, 0.0, 1.0)


def osm_staleness(signals: OsmSignals) -> float:
    """A prior in [0, 1] that an OSM label is stale, from OSM's own evidence alone.

    The mean of three parts, each in [0, 1]: 1 − the decision's confidence, 1 − the footprint coverage of the
    label's class, and the age of the deciding edit at query time over :data:`EDIT_AGE_SATURATION_YEARS`
    (capped at 1; 0.5 when the edit's date is unknown).
    """
    parts = (
        1.0 - _unit(signals.confidence),
        1.0 - _unit(signals.coverage),
        _age_part(signals.last_edit_at, signals.queried_at),
    )
    return float(sum(parts) / len(parts))


def _unit(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)


def _age_part(last_edit_at: datetime | None, queried_at: datetime | None) -> float:
    if last_edit_at is None or queried_at is None:
        return _UNKNOWN_AGE_STALENESS
    years = (queried_at - last_edit_at).total_seconds() / _SECONDS_PER_YEAR
    return _unit(years / EDIT_AGE_SATURATION_YEARS)


def combine_suspicion(model: np.ndarray, osm_prior: np.ndarray, weight: float) -> np.ndarray:
    """(1 − weight) · the model's suspicion + weight · OSM's staleness prior, per pair, in [0, 1].

    Args:
        model: the model's suspicion (:func:`label_suspicion`), shape (N,).
        osm_prior: :func:`osm_staleness` per pair, NaN where the label is not OSM's (kept as the model's).
        weight: the OSM evidence's weight in [0, 1]; 0 returns the model's suspicion unchanged.
    """
    model = np.asarray(model, dtype=np.float64)
    prior = np.asarray(osm_prior, dtype=np.float64)
    if weight == 0.0:
        return model.copy()
    mixed = (1.0 - weight) * model + weight * np.nan_to_num(prior, nan=0.0)
    return np.clip(np.where(np.isnan(prior), model, mixed), 0.0, 1.0)


def queue_ranks(suspicion: Sequence[float] | np.ndarray, pair_ids: Sequence[int]) -> list[int]:
    """The 1-based rank of every pair: most suspicious first, ties broken by the smaller pair id."""
    order = sorted(range(len(pair_ids)), key=lambda i: (-float(suspicion[i]), pair_ids[i]))
    ranks = [0] * len(pair_ids)
    for position, i in enumerate(order, start=1):
        ranks[i] = position
    return ranks
