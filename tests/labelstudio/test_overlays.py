"""Overlay files of pairs: named by pair and evidence, rendered once, atomically; old evidence without geometry
and unreadable images do not fail the run; prelabel renders them for pairs with an image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from annotator.labelstudio.overlays import ensure_overlays, overlay_relpath
from annotator.osm.prelabel import ExtractSource, prelabel_pairs
from annotator.store.engine import session_scope, unit_of_work
from annotator.store.models import OsmEvidence, Pair
from dataset.imagery.geo import footprint_bbox
from tests.labelstudio.pairs import write_media
from tests.osm.conftest import KOTKA_PBF, add_pairs


def _pairs(engine) -> list[Pair]:
    with session_scope(engine) as session:
        pairs = session.scalars(select(Pair).options(selectinload(Pair.osm_evidence)).order_by(Pair.id)).all()
        session.expunge_all()
        return list(pairs)


def test_prelabel_renders_overlays_with_the_evidence_geometry_drawn(engine, location) -> None:
    points = [(60.52645, 26.95121), (60.52235, 26.93506)]  # farmland, forest (tests/osm/test_decide.py)
    ids = add_pairs(engine, points)
    media = location.media_dir
    with session_scope(engine) as session:
        for pair_id, (lat, lon) in zip(ids, points, strict=True):
            pair = session.get(Pair, pair_id)
            assert pair is not None
            pair.image_path, pair.clip_path = write_media(media, str(pair_id), seed=pair_id, seconds=0.1)
            pair.footprint_west, pair.footprint_south, pair.footprint_east, pair.footprint_north = footprint_bbox(
                lat, lon
            )
    with unit_of_work(engine) as work:
        report = prelabel_pairs(work, ExtractSource(KOTKA_PBF), media_dir=media)
    assert report.labelled == 2 and report.overlays_rendered == 2 and report.overlays_failed == 0
    for pair in _pairs(engine):
        rel = overlay_relpath(pair)
        assert rel is not None and rel.startswith("overlays/") and (media / rel).is_file()
        assert pair.osm_evidence is not None and pair.osm_evidence.elements[0]["geometry"]["type"] == "Polygon"
        overlay = np.asarray(Image.open(media / rel).convert("RGB"), dtype=np.int32)
        image = np.asarray(Image.open(media / str(pair.image_path)).convert("RGB"), dtype=np.int32)
        assert overlay.shape == (512, 512, 3)
        assert (np.abs(overlay - image).max(axis=2) > 60).mean() > 0.01  # outlines and legend drawn on it
    again = ensure_overlays(media, _pairs(engine))
    assert again.existing == 2 and again.rendered == 0  # nothing drawn twice


def test_old_evidence_missing_evidence_and_bad_images(engine, location) -> None:
    ids = add_pairs(engine, [(60.4, 26.8), (60.41, 26.8), (60.42, 26.8)])
    media = location.media_dir
    with session_scope(engine) as session:
        for n, pair_id in enumerate(ids):
            pair = session.get(Pair, pair_id)
            assert pair is not None
            pair.image_path, pair.clip_path = write_media(media, str(pair_id), seed=n, seconds=0.1)
            if n < 2:  # evidence as an older version wrote it: no geometry key
                element = {"type": "way", "id": 5, "version": 1, "timestamp": None, "tags": {}, "class": "forest"}
                session.add(
                    OsmEvidence(pair_id=pair_id, label="forest", confidence=0.5, elements=[element], source="x.osm")
                )
    (media / "images" / f"{ids[1]}.jpg").write_bytes(b"not a jpeg")
    report = ensure_overlays(media, _pairs(engine))
    assert (report.rendered, report.failed, report.without_evidence) == (1, 1, 1)
    assert report.failures and f"pair {ids[1]}" in report.failures[0]
    pairs = {p.id: p for p in _pairs(engine)}
    assert overlay_relpath(pairs[ids[2]]) is None
    rendered = media / str(overlay_relpath(pairs[ids[0]]))
    image = Image.open(io.BytesIO(rendered.read_bytes()))
    assert image.format == "JPEG" and image.size == (512, 512)
    assert not list((media / "overlays").glob(".*"))  # no temporary file left behind


@pytest.mark.sqlite_only
def test_overlay_name_changes_with_the_evidence(engine, location) -> None:
    (pair_id,) = add_pairs(engine, [(60.4, 26.8)])
    with session_scope(engine) as session:
        pair = session.get(Pair, pair_id)
        assert pair is not None
        pair.image_path = "images/1.jpg"
        assert overlay_relpath(pair) is None  # no evidence yet
        evidence = OsmEvidence(pair_id=pair_id, label=None, elements=[], source="x.osm")
        session.add(evidence)
        session.flush()
        session.refresh(pair)
        assert overlay_relpath(pair) == f"overlays/{pair_id}-{evidence.id}.jpg"
        pair.image_path = None
        assert overlay_relpath(pair) is None
