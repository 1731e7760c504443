"""The benchmark's planted corpus (bench/rank_corpus.py): seeded, the stale share and class proportions asked for,
and written as a store `annotator rank` can read (OSM evidence as pre-labelling stores it, media on disk)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from annotator.config import resolve_store
from annotator.files import sha256_file
from annotator.store import open_store, session_scope
from annotator.store.models import OsmEvidence, Pair
from annotator.vocabulary import ADVANCE_COUNTS
from bench.rank_corpus import (
    NEAR_CLASSES,
    PREVIOUS,
    TRUTH_FILE,
    advance_spec,
    calibration_spec,
    plan_corpus,
    read_corpus,
    write_corpus,
)
from model.features import read_clip, read_image


def _files(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` except the database, by relative path."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith("annotator.db")
    }


def _evidence_rows(folder: Path) -> list[tuple]:
    engine = open_store(resolve_store(str(folder / "annotator.db")))
    try:
        with session_scope(engine) as session:
            return [
                (e.pair_id, e.label, e.confidence, e.coverage, e.elements, e.last_edit_at, p.image_path, p.clip_path)
                for e, p in session.execute(select(OsmEvidence, Pair).join(Pair).order_by(OsmEvidence.pair_id))
            ]
    finally:
        engine.dispose()


def _plant(folder: Path, seed: int) -> Path:
    write_corpus(resolve_store(str(folder / "annotator.db")), advance_spec(26, seed=seed, image_px=64))
    return folder


def test_same_seed_same_bytes_and_rows(tmp_path: Path) -> None:
    first, again, other = (_plant(tmp_path / name, seed) for name, seed in (("a", 3), ("b", 3), ("c", 4)))
    assert _files(first) == _files(again)
    assert len(_files(first)) == 2 * 26 + 1  # an image and a clip per pair, and the truth file
    assert _evidence_rows(first) == _evidence_rows(again)
    assert _files(first)[TRUTH_FILE] != _files(other)[TRUTH_FILE]
    assert _files(first)["media/images/1.jpg"] != _files(other)["media/images/1.jpg"]


@pytest.mark.parametrize(("pairs", "share"), [(1000, 0.2), (1000, 0.15), (500, 0.25)])
def test_stale_share_is_exact_and_plausible(pairs: int, share: float) -> None:
    plan = plan_corpus(advance_spec(pairs, stale_share=share, seed=1))
    stale = [p for p in plan if p.stale]
    assert len(stale) == round(share * pairs)
    assert all(p.osm in PREVIOUS[p.truth] for p in stale)  # a plausible earlier land use, never the truth
    assert all(p.osm is p.truth for p in plan if not p.stale)


def test_class_proportions_follow_advance() -> None:
    spec = advance_spec(1000)
    plan = plan_corpus(spec)
    truths = Counter(p.truth for p in plan)
    assert sum(truths.values()) == 1000
    assert truths == Counter(dict(spec.counts))
    total = sum(ADVANCE_COUNTS.values())
    for cls, n in ADVANCE_COUNTS.items():
        assert abs(truths[cls] - 1000 * n / total) < 1.0, cls


def test_calibration_corpus_is_five_classes_of_forty() -> None:
    plan = plan_corpus(calibration_spec())
    assert Counter(p.truth for p in plan) == Counter({cls: 40 for cls in calibration_spec().classes})
    assert sum(p.stale for p in plan) == 40
    assert {p.osm for p in plan} <= set(calibration_spec().classes)


def test_osm_evidence_is_realistic_not_decisive() -> None:
    """Confidence says how well the polygon matches, not whether it is stale; old edits lean stale, no more."""
    plan = plan_corpus(advance_spec(1000, seed=0))
    stale = np.array([p.stale for p in plan])
    for p in plan:
        coverage = p.coverage[p.osm.value]
        if p.osm not in NEAR_CLASSES:
            assert p.confidence == pytest.approx(0.5 + 0.5 * coverage, abs=1e-3)
        assert p.elements[0]["decided"] and p.elements[0]["class"] == p.osm.value
        assert p.elements[0]["timestamp"].startswith(p.last_edit_at.strftime("%Y-%m-%dT%H:%M:%S"))
    lowest_confidence_first = np.argsort([p.confidence for p in plan], kind="stable")[:200]
    assert 0.1 < stale[lowest_confidence_first].sum() / stale.sum() < 0.35  # today's queue: near chance
    ages = np.array([p.edit_age_years for p in plan])
    oldest_first = np.argsort(-ages, kind="stable")[:200]
    assert ages[stale].mean() > ages[~stale].mean()
    assert stale[oldest_first].sum() / stale.sum() < 0.6  # helps, but does not give the answer away


def test_written_store_reads_like_a_prelabelled_one(tmp_path: Path) -> None:
    location = resolve_store(str(tmp_path / "annotator.db"))
    planted = write_corpus(location, calibration_spec(per_class=2, stale_share=0.5, seed=2))
    assert len(planted.pairs) == 10 and sum(p.stale for p in planted.pairs) == 5
    engine = open_store(location)  # at the head revision, as `annotator init` leaves it
    try:
        with session_scope(engine) as session:
            pairs = session.scalars(select(Pair).order_by(Pair.id)).all()
            for pair, planned in zip(pairs, planted.pairs, strict=True):
                assert pair.id == planned.pair_id
                assert pair.osm_evidence is not None and pair.osm_evidence.label == planned.osm.value
                assert pair.final_label is None  # nobody reviewed: the current label is OSM's
                image = read_image(location.media_dir / pair.image_path, 32)
                clip = read_clip(location.media_dir / pair.clip_path)
                assert image.shape == (3, 32, 32) and clip.shape == (160_000,) and np.abs(clip).max() > 0.01
    finally:
        engine.dispose()
    truth = planted.truth_path.read_text().splitlines()
    assert truth[0].startswith("pair_id,source_id,true_label,osm_label,stale")
    assert len(truth) == 11 and sum(line.split(",")[4] == "1" for line in truth[1:]) == 5
    with pytest.raises(FileExistsError):
        write_corpus(location, calibration_spec(per_class=2))
    assert read_corpus(location, planted.spec).pairs == planted.pairs  # a kept corpus is reused as planted
    with pytest.raises(ValueError, match="not planted with this spec"):
        read_corpus(location, calibration_spec(per_class=2, stale_share=0.5, seed=3))
