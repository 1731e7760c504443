"""Balancing as in the paper (SPEC §8): which classes an export drops, keeps, and grows with offset pairs.

A class with fewer than ``min_per_class`` selected pairs is dropped. A kept class with fewer than
``augment_below`` pairs is augmented: every original gets four offset pairs (north, east, south, west), made
by :mod:`annotator.export.offsets` with the clip windows of :mod:`dataset.offset_clips`. This module only
decides; it reads nothing and writes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from annotator.vocabulary import SceneClass


class Labelled(Protocol):
    """Anything with a scene class (a selected pair)."""

    @property
    def label(self) -> SceneClass: ...


@dataclass(frozen=True)
class BalancePlan:
    """Selected originals per class, and what balancing does with each class."""

    counts: dict[SceneClass, int]
    kept: tuple[SceneClass, ...]
    dropped: dict[SceneClass, int]
    augmented: tuple[SceneClass, ...]


def plan_balance(pairs: Iterable[Labelled], min_per_class: int, augment_below: int) -> BalancePlan:
    """Drop classes with fewer than `min_per_class` pairs; augment kept classes with fewer than `augment_below`.

    Classes come out in the vocabulary's index order.
    """
    counts = Counter(pair.label for pair in pairs)
    ordered = [c for c in SceneClass if counts[c] > 0]
    kept = tuple(c for c in ordered if counts[c] >= min_per_class)
    return BalancePlan(
        counts={c: counts[c] for c in ordered},
        kept=kept,
        dropped={c: counts[c] for c in ordered if counts[c] < min_per_class},
        augmented=tuple(c for c in kept if counts[c] < augment_below),
    )
