"""The demo world's OSM extract agrees with the world's ground truth (and its stale cell stays stale)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from annotator.demo.osm import STALE_TIMESTAMP, write_demo_osm
from annotator.demo.world import STALE_OSM, cells
from annotator.osm.decide import DecisionOptions, FeatureIndex, decide
from annotator.osm.extract import load_extract
from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence
from annotator.vocabulary import SceneClass
from dataset.imagery.geo import footprint_bbox
from tests.osm.conftest import add_pairs


def _inner_points(cell, margin_m: float = 140.0) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    dlat = margin_m / 111_320
    dlon = margin_m / (111_320 * math.cos(math.radians(cell.north)))
    lats = (cell.south + dlat, cell.north - dlat)
    lons = (cell.west + dlon, cell.east - dlon)
    return [cell.centre] + [(la, lo) for la in lats for lo in lons]


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> FeatureIndex:
    path = write_demo_osm(tmp_path_factory.mktemp("demo") / "demo.osm")
    return FeatureIndex(load_extract(path).features)


def test_every_cell_decides_its_osm_class(demo_index: FeatureIndex) -> None:
    for cell in cells():
        for lat, lon in _inner_points(cell):
            decision = decide(lat, lon, footprint_bbox(lat, lon), demo_index, DecisionOptions())
            assert decision.label is cell.osm, (cell.row, cell.col, lat, lon)


def test_stale_cell_has_an_old_edit(demo_index: FeatureIndex) -> None:
    (row, col), claimed = next(iter(STALE_OSM.items()))
    cell = next(c for c in cells() if (c.row, c.col) == (row, col))
    decision = decide(*cell.centre, footprint_bbox(*cell.centre), demo_index, DecisionOptions())
    assert decision.label is claimed is not cell.truth
    assert decision.elements[0]["timestamp"] == STALE_TIMESTAMP and decision.last_edit_at.year == 2012  # type: ignore[union-attr]


def test_small_objects_are_mapped_like_real_ones(demo_index: FeatureIndex) -> None:
    tags = [f.ref.tags for f in demo_index.features]
    assert any(t.get("bridge") == "yes" and "highway" in t for t in tags)
    assert any(t.get("aeroway") == "runway" for t in tags) and any(t.get("aeroway") == "aerodrome" for t in tags)
    station_nodes = [f for f in demo_index.features if f.ref.type == "node" and f.ref.tags.get("railway") == "station"]
    assert len(station_nodes) == 1
    bridge = next(c for c in cells() if c.osm is SceneClass.BRIDGE)
    on_road = decide(*bridge.centre, footprint_bbox(*bridge.centre), demo_index, DecisionOptions())
    assert {e["tags"].get("highway") for e in on_road.elements} >= {"secondary"}


def test_file_is_deterministic(tmp_path: Path) -> None:
    assert write_demo_osm(tmp_path / "a.osm").read_bytes() == write_demo_osm(tmp_path / "b.osm").read_bytes()


def test_cli_prelabels_every_demo_pair(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_demo_osm(tmp_path / "corpus" / "demo.osm")
    ids = add_pairs(engine, [c.centre for c in cells()])
    cli("prelabel", "--osm-file", str(path))
    with session_scope(engine) as session:
        labels = {e.pair_id: e.label for e in session.scalars(select(OsmEvidence))}
    assert [labels[i] for i in ids] == [c.osm.value if c.osm else None for c in cells()]
