"""The spatial split (`--split-by block`) and the leakage figure, on seeded clustered corpora (no store)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from annotator.vocabulary import SceneClass
from dataset.imagery.geo import offset_point
from dataset.split import (
    PlacedSample,
    Split,
    SplitBy,
    boxes_overlap,
    footprint_around,
    measure_leakage,
    plan_splits,
    spatial_blocks,
    split_lists,
)

SIDE_M = 256.0
CLASSES = (SceneClass.FOREST, SceneClass.LAKE, SceneClass.RESIDENTIAL)


def clustered(seed: int, sites: int = 24, per_site: int = 5, offsets: bool = True) -> list[PlacedSample]:
    """`sites` sites 5 km apart, each with `per_site` recordings within ~150 m of each other (their footprints
    overlap), the classes mixed inside a site; every third recording has four 64 m offsets, as an export makes."""
    rng = random.Random(seed)
    samples = []
    for site in range(sites):
        lat0, lon0 = 60.0 + 0.045 * (site // 6), 25.0 + 0.09 * (site % 6)
        for k in range(per_site):
            lat, lon = offset_point(lat0, lon0, "N", rng.uniform(0, 150))
            lat, lon = offset_point(lat, lon, "E", rng.uniform(0, 150))
            cls = CLASSES[(site + k) % len(CLASSES)]
            recording = f"s{site:02d}r{k}"
            samples.append(PlacedSample(recording, cls, recording, footprint_around(lat, lon, SIDE_M)))
            if offsets and k % 3 == 0:
                for i, direction in enumerate("NESW", start=1):
                    olat, olon = offset_point(lat, lon, direction, 64.0)
                    box = footprint_around(olat, olon, SIDE_M)
                    samples.append(PlacedSample(f"{recording}_{i}", cls, recording, box, original=False))
    return samples


def brute_force_leakage(samples: list[PlacedSample], splits: dict[str, Split]) -> int:
    return sum(
        1
        for i, a in enumerate(samples)
        for b in samples[i + 1 :]
        if splits[a.id] != splits[b.id] and boxes_overlap(a.box, b.box)
    )


def test_recording_split_leaks_on_a_clustered_corpus_and_block_split_does_not():
    samples = clustered(seed=1)
    by_recording = plan_splits(samples, seed=3, by=SplitBy.RECORDING, block_m=SIDE_M)
    by_block = plan_splits(samples, seed=3, by=SplitBy.BLOCK, block_m=SIDE_M)
    leaked = brute_force_leakage(samples, by_recording.splits)
    assert leaked > 0 and by_recording.leakage.pairs == leaked  # the grid index misses no overlapping pair
    assert brute_force_leakage(samples, by_block.splits) == 0 and by_block.leakage.pairs == 0
    assert by_block.leakage_by_mode == {"recording": leaked, "block": 0} == by_recording.leakage_by_mode
    assert by_block.leakage.samples == 0 and by_recording.leakage.samples > 0
    # a site's recordings overlap one another, so a block is a site: 24 of them, each in one split
    assert by_block.groups == 24
    per_site = defaultdict(set)
    for s in samples:
        per_site[s.recording[:3]].add(by_block.splits[s.id])
    assert all(len(found) == 1 for found in per_site.values())


def test_block_split_keeps_each_class_near_70_10_20_and_reports_the_shares():
    samples = clustered(seed=2, sites=30)
    plan = plan_splits(samples, seed=0, by=SplitBy.BLOCK, block_m=SIDE_M)
    counts: dict[SceneClass, Counter[Split]] = defaultdict(Counter)
    for s in samples:
        counts[s.cls][plan.splits[s.id]] += 1
    for cls in CLASSES:
        total = sum(counts[cls].values())
        realised = {split.value: round(counts[cls][split] / total, 4) for split in Split}
        assert plan.shares[cls.value] == realised
        assert realised["train"] == pytest.approx(0.7, abs=0.1)
        assert realised["val"] == pytest.approx(0.1, abs=0.08) and realised["val"] > 0
        assert realised["test"] == pytest.approx(0.2, abs=0.1)


def test_block_split_is_deterministic_whatever_the_order_and_moves_with_the_seed():
    samples = clustered(seed=4)
    first = plan_splits(samples, seed=5, by=SplitBy.BLOCK, block_m=SIDE_M)
    shuffled = list(samples)
    random.Random(9).shuffle(shuffled)
    again = plan_splits(shuffled, seed=5, by=SplitBy.BLOCK, block_m=SIDE_M)
    assert again.splits == first.splits and again.to_json() == first.to_json()
    other = plan_splits(samples, seed=6, by=SplitBy.BLOCK, block_m=SIDE_M)
    assert other.splits != first.splits


def test_offsets_stay_with_their_recording_and_chains_join_into_one_block():
    # a, b, c in a row 200 m apart: a–b and b–c overlap, a–c do not, yet all three form one block
    lat, lon = 60.0, 25.0
    row = [offset_point(lat, lon, "E", 200.0 * k) for k in range(3)]
    far = offset_point(lat, lon, "N", 5000.0)
    samples = [
        PlacedSample(name, SceneClass.LAKE, name, footprint_around(*point, SIDE_M))
        for name, point in zip(("a", "b", "c", "far"), (*row, far), strict=True)
    ]
    assert not boxes_overlap(samples[0].box, samples[2].box)
    blocks = spatial_blocks(samples, block_m=0.0)
    assert blocks["a"] == blocks["b"] == blocks["c"] != blocks["far"]
    # an offset 64 m north of "far" is its recording's; it joins nothing else and shares far's split
    offset = PlacedSample("far_1", SceneClass.LAKE, "far", footprint_around(*offset_point(*far, "N", 64.0), SIDE_M))
    plan = plan_splits([*samples, offset], seed=0, by=SplitBy.BLOCK, block_m=SIDE_M)
    assert plan.splits["far_1"] == plan.splits["far"] and plan.groups == 2


def test_block_m_joins_places_closer_than_it_even_when_their_images_do_not_overlap():
    a = footprint_around(60.0, 25.0, SIDE_M)
    b = footprint_around(*offset_point(60.0, 25.0, "E", 400.0), SIDE_M)  # 400 m apart: 144 m of ground between
    samples = [PlacedSample("a", SceneClass.LAKE, "a", a), PlacedSample("b", SceneClass.LAKE, "b", b)]
    assert spatial_blocks(samples, block_m=256.0) == {"a": "a", "b": "b"}
    assert spatial_blocks(samples, block_m=401.0) == {"a": "a", "b": "a"}


def test_leakage_counts_overlapping_pairs_across_splits_only():
    base = footprint_around(60.0, 25.0, SIDE_M)
    near = footprint_around(*offset_point(60.0, 25.0, "E", 100.0), SIDE_M)
    apart = footprint_around(*offset_point(60.0, 25.0, "W", 270.0), SIDE_M)  # 14 m of ground between
    samples = [
        PlacedSample("x", SceneClass.LAKE, "x", base),
        PlacedSample("y", SceneClass.LAKE, "y", near),
        PlacedSample("y_1", SceneClass.LAKE, "y", near, original=False),
        PlacedSample("z", SceneClass.LAKE, "z", apart),
    ]
    splits = {"x": Split.TRAIN, "y": Split.TEST, "y_1": Split.TEST, "z": Split.VAL}
    leakage = measure_leakage(samples, splits)
    assert (leakage.pairs, leakage.original_pairs, leakage.samples) == (2, 1, 3)
    assert leakage.by_splits == {"train/val": 0, "train/test": 2, "val/test": 0}


def test_split_lists_are_sorted_ids_one_a_line():
    lists = split_lists({"b": Split.TRAIN, "a": Split.TRAIN, "c": Split.TEST})
    assert lists == {Split.TRAIN: b"a\nb\n", Split.VAL: b"", Split.TEST: b"c\n"}
