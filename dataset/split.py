"""The 70/10/20 train/val/test split, per class, grouped by recording (SPEC §8).

A recording and its offset copies always land in the same split; the assignment depends only on the seed and
on which recordings each class holds, never on file listing order.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from enum import StrEnum

from annotator.vocabulary import SceneClass


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


FRACTIONS: dict[Split, float] = {Split.TRAIN: 0.7, Split.VAL: 0.1, Split.TEST: 0.2}


def recording_of(sample_id: str) -> str:
    """The recording (group) an ADVANCE id belongs to: ``12345_3`` → ``12345``."""
    return sample_id.split("_", 1)[0]


def _split_sizes(n: int) -> tuple[int, int, int]:
    """Groups per split for `n` groups: 70/10/20 rounded, with val and test non-empty once n ≥ 3."""
    n_test = round(n * FRACTIONS[Split.TEST])
    n_val = round(n * FRACTIONS[Split.VAL])
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    elif n == 2:
        n_test, n_val = 1, 0
    n_train = n - n_val - n_test
    return n_train, n_val, n_test


def assign_splits(samples: Iterable[tuple[str, SceneClass, str]], seed: int) -> dict[str, Split]:
    """Split samples ``(sample_id, class, group)`` 70/10/20 per class, grouped by `group`, deterministically.

    Returns the split of every sample id. A group that appears under several classes (not expected in ADVANCE)
    is assigned once, by the first class it is met under in sorted order.
    """
    groups_by_class: dict[SceneClass, set[str]] = defaultdict(set)
    members: dict[str, list[str]] = defaultdict(list)
    for sample_id, cls, group in samples:
        groups_by_class[cls].add(group)
        members[group].append(sample_id)
    group_split: dict[str, Split] = {}
    for cls in sorted(groups_by_class, key=lambda c: c.index):
        groups = sorted(g for g in groups_by_class[cls] if g not in group_split)
        # The shuffle is seeded from (seed, class name) so adding a class does not reshuffle the others.
        digest = hashlib.sha256(f"{seed}:{cls.value}".encode()).digest()
        random.Random(int.from_bytes(digest[:8], "big")).shuffle(groups)
        n_train, n_val, _ = _split_sizes(len(groups))
        for i, group in enumerate(groups):
            group_split[group] = Split.TRAIN if i < n_train else Split.VAL if i < n_train + n_val else Split.TEST
    return {sample_id: group_split[group] for group, ids in members.items() for sample_id in ids}


def split_counts(splits: Mapping[str, Split]) -> dict[str, int]:
    counts = {s.value: 0 for s in Split}
    for split in splits.values():
        counts[split.value] += 1
    return counts
