"""The 70/10/20 train/val/test split, per class, grouped by recording or by spatial block (SPEC §8).

By recording (the paper's): a recording and its offset copies always land in the same split; the assignment
depends only on the seed and on which recordings each class holds, never on file listing order.

By block: recordings whose image footprints overlap, or whose places lie closer than ``block_m`` metres, are
joined into one block (union-find over a grid index; a recording's offsets count as its own), and whole blocks
are assigned, so no image of one split shares ground with an image of another. Whatever the mode,
:func:`measure_leakage` counts the pairs of samples in different splits whose footprints overlap.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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


# ------------------------------------------------------------------------------------------ spatial split


class SplitBy(StrEnum):
    """How samples are kept together when the split is drawn (``export --split-by``)."""

    RECORDING = "recording"  # the paper's: a recording and its offsets share a split
    BLOCK = "block"  # recordings whose footprints overlap or whose places lie within block_m share a split


Box = tuple[float, float, float, float]
"""A footprint: (west, south, east, north) in degrees."""

#: Metres per degree of latitude (and of longitude at the equator), the spherical figure the crops use.
M_PER_DEG = 111_320.0
#: The nearest to a pole a footprint's longitudes are scaled at (avoids cos(90°) = 0).
MAX_LAT = 89.0


@dataclass(frozen=True)
class PlacedSample:
    """A sample as the split sees it: id, class, the recording it belongs to and its footprint."""

    id: str
    cls: SceneClass
    recording: str
    box: Box
    original: bool = True  # False for an offset sample


@dataclass(frozen=True)
class Leakage:
    """Pairs of samples in different splits whose footprints overlap (positive area)."""

    pairs: int
    original_pairs: int  # of them, pairs of two original samples
    samples: int  # samples that overlap at least one sample of another split
    by_splits: dict[str, int]  # "train/test" → pairs

    def to_json(self) -> dict[str, object]:
        return {
            "pairs": self.pairs,
            "original_pairs": self.original_pairs,
            "samples": self.samples,
            "by_splits": dict(self.by_splits),
        }


@dataclass(frozen=True)
class SplitPlan:
    """The split of every sample, how it was drawn, the groups it kept together and what it leaks."""

    splits: dict[str, Split]
    by: SplitBy
    block_m: float
    groups: int  # recordings (by recording) or blocks (by block)
    leakage: Leakage
    leakage_by_mode: dict[str, int]  # the leaking pairs each mode gives on these samples
    shares: dict[str, dict[str, float]]  # class value → split → realised share of its samples

    def to_json(self) -> dict[str, object]:
        return {
            "by": self.by.value,
            "block_m": self.block_m,
            "groups": self.groups,
            "leakage": self.leakage.to_json(),
            "leakage_by_mode": dict(self.leakage_by_mode),
            "shares": {c: dict(s) for c, s in self.shares.items()},
        }


def footprint_around(lat: float, lon: float, side_m: float) -> Box:
    """The square footprint of `side_m` metres centred on (lat, lon), in degrees."""
    half_lat = side_m / 2 / M_PER_DEG
    half_lon = side_m / 2 / (M_PER_DEG * math.cos(math.radians(min(abs(lat), MAX_LAT))))
    return (lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)


def boxes_overlap(a: Box, b: Box) -> bool:
    """True when the two footprints share ground (an area, not only an edge or a corner)."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def centre_distance_m(a: Box, b: Box) -> float:
    """The distance between the centres of two footprints in metres (equirectangular, exact enough below km)."""
    lat_a, lat_b = (a[1] + a[3]) / 2, (b[1] + b[3]) / 2
    dlon = (a[0] + a[2]) / 2 - (b[0] + b[2]) / 2
    scale = math.cos(math.radians(min(abs((lat_a + lat_b) / 2), MAX_LAT)))
    return math.hypot(dlon * M_PER_DEG * scale, (lat_a - lat_b) * M_PER_DEG)


def _near_pairs(boxes: Sequence[Box], reach_m: float) -> Iterator[tuple[int, int]]:
    """Index pairs (i < j) of boxes that may overlap or whose centres may lie within `reach_m` (a superset).

    A grid index: the cells are at least as large as the largest box and the reach (the longitude side measured
    at the highest latitude present), so two such boxes have their centres in the same or neighbouring cells.
    """
    if not boxes:
        return
    top = min(max(max(abs(b[1]), abs(b[3])) for b in boxes), MAX_LAT)
    cell_lat = max(max(b[3] - b[1] for b in boxes), reach_m / M_PER_DEG, 1e-9)
    cell_lon = max(max(b[2] - b[0] for b in boxes), reach_m / (M_PER_DEG * math.cos(math.radians(top))), 1e-9)
    cells: dict[tuple[int, int], list[int]] = defaultdict(list)
    keys = []
    for i, (west, south, east, north) in enumerate(boxes):
        key = (math.floor((south + north) / 2 / cell_lat), math.floor((west + east) / 2 / cell_lon))
        cells[key].append(i)
        keys.append(key)
    for i, (row, col) in enumerate(keys):
        for drow in (-1, 0, 1):
            for dcol in (-1, 0, 1):
                for j in cells.get((row + drow, col + dcol), ()):
                    if j > i:
                        yield i, j


def _joined(a: Box, b: Box, block_m: float) -> bool:
    """Whether two samples must share a split: their footprints overlap or their places lie within `block_m`."""
    return boxes_overlap(a, b) or centre_distance_m(a, b) < block_m


def spatial_blocks(samples: Sequence[PlacedSample], block_m: float) -> dict[str, str]:
    """The block of every recording: recordings with footprints that overlap or places within `block_m` are joined.

    Union-find over the recordings (a recording and its offsets are one unit); a block is named by its smallest
    recording id, so the result does not depend on the order of `samples`.
    """
    parent: dict[str, str] = {s.recording: s.recording for s in samples}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    boxes = [s.box for s in samples]
    for i, j in _near_pairs(boxes, block_m):
        a, b = find(samples[i].recording), find(samples[j].recording)
        if a != b and _joined(boxes[i], boxes[j], block_m):
            parent[max(a, b)] = min(a, b)
    return {recording: find(recording) for recording in parent}


def assign_block_splits(samples: Sequence[PlacedSample], seed: int, block_m: float) -> tuple[dict[str, Split], int]:
    """Split whole spatial blocks so that each class comes as close to 70/10/20 as the blocks allow.

    A seeded greedy assignment: blocks in order of size (largest first; equal sizes in an order drawn from the
    seed), each into the split where it brings the per-class shares closest to the targets (the squared
    deviation of every class's counts, relative to the class's size). Returns the split of every sample id and
    the number of blocks.
    """
    block_of = spatial_blocks(samples, block_m)
    members: dict[str, list[PlacedSample]] = defaultdict(list)
    for sample in samples:
        members[block_of[sample.recording]].append(sample)
    class_totals = Counter(s.cls for s in samples)

    def tiebreak(block: str) -> bytes:
        return hashlib.sha256(f"{seed}:{block}".encode()).digest()

    order = sorted(members, key=lambda b: (-len(members[b]), tiebreak(b)))
    assigned: dict[Split, Counter[SceneClass]] = {split: Counter() for split in Split}
    split_of_block: dict[str, Split] = {}
    for block in order:
        counts = Counter(s.cls for s in members[block])

        def cost(split: Split, counts: Counter[SceneClass] = counts) -> float:
            total = 0.0
            for cls, n in counts.items():
                target = FRACTIONS[split] * class_totals[cls]
                have = assigned[split][cls]
                total += ((have + n - target) ** 2 - (have - target) ** 2) / class_totals[cls] ** 2
            return total

        chosen = min(Split, key=cost)  # ties: the first in train, val, test order
        assigned[chosen].update(counts)
        split_of_block[block] = chosen
    splits = {s.id: split_of_block[block_of[s.recording]] for s in samples}
    return splits, len(members)


def measure_leakage(samples: Sequence[PlacedSample], splits: Mapping[str, Split]) -> Leakage:
    """Count the pairs of samples in different splits whose footprints overlap."""
    boxes = [s.box for s in samples]
    by_splits: Counter[str] = Counter()
    leaking: set[int] = set()
    originals = 0
    order = list(Split)
    for i, j in _near_pairs(boxes, 0.0):
        a, b = splits[samples[i].id], splits[samples[j].id]
        if a != b and boxes_overlap(boxes[i], boxes[j]):
            first, second = sorted((a, b), key=order.index)
            by_splits[f"{first.value}/{second.value}"] += 1
            leaking.update((i, j))
            originals += samples[i].original and samples[j].original
    names = [f"{a.value}/{b.value}" for k, a in enumerate(order) for b in order[k + 1 :]]
    return Leakage(sum(by_splits.values()), originals, len(leaking), {name: by_splits[name] for name in names})


def realised_shares(samples: Sequence[PlacedSample], splits: Mapping[str, Split]) -> dict[str, dict[str, float]]:
    """Per class (index order): the share of its samples in each split, rounded to 4 decimals."""
    per_class: dict[SceneClass, Counter[Split]] = defaultdict(Counter)
    for sample in samples:
        per_class[sample.cls][splits[sample.id]] += 1
    return {
        cls.value: {split.value: round(per_class[cls][split] / sum(per_class[cls].values()), 4) for split in Split}
        for cls in sorted(per_class, key=lambda c: c.index)
    }


def plan_splits(samples: Sequence[PlacedSample], seed: int, by: SplitBy, block_m: float) -> SplitPlan:
    """The split of `samples` drawn `by` recording or by block, with its leakage and realised shares.

    The leakage of both modes is measured (the one not chosen is drawn only to be measured), so a curator sees
    what the other mode would have given.
    """
    by_recording = assign_splits(((s.id, s.cls, s.recording) for s in samples), seed)
    by_block, blocks = assign_block_splits(samples, seed, block_m)
    leakage = {
        SplitBy.RECORDING: measure_leakage(samples, by_recording),
        SplitBy.BLOCK: measure_leakage(samples, by_block),
    }
    splits = by_block if by is SplitBy.BLOCK else by_recording
    groups = blocks if by is SplitBy.BLOCK else len({s.recording for s in samples})
    return SplitPlan(
        splits=splits,
        by=by,
        block_m=block_m,
        groups=groups,
        leakage=leakage[by],
        leakage_by_mode={mode.value: found.pairs for mode, found in leakage.items()},
        shares=realised_shares(samples, splits),
    )


def split_lists(splits: Mapping[str, Split]) -> dict[Split, bytes]:
    """``splits/<split>.txt`` contents: the sample ids of each split, sorted, one a line."""
    ids: dict[Split, list[str]] = {split: [] for split in Split}
    for sample_id, split in splits.items():
        ids[split].append(sample_id)
    return {split: "".join(f"{i}\n" for i in sorted(found)).encode("utf-8") for split, found in ids.items()}
