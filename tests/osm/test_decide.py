"""The decision rule: on real Kotka geometry (points checked by hand) and on small made-up scenes."""

from __future__ import annotations

from typing import Any

import pytest

from annotator.osm.decide import DecisionOptions, FeatureIndex, decide, reach_bounds
from annotator.osm.extract import load_extract
from annotator.osm.features import features_from_elements, metres_per_degree
from annotator.vocabulary import SceneClass
from dataset.imagery.geo import footprint_bbox
from tests.osm.conftest import KOTKA_PBF

C = SceneClass

# Points checked by hand on the Kotka 2019 extract (osmium + the element listing): the element that should decide.
KOTKA_POINTS = [
    ("farmland", 60.52645, 26.95121, C.FARMLAND, 106232399),  # landuse=farmland, 56 ha field
    ("forest", 60.52235, 26.93506, C.FOREST, 369829308),  # natural=wood, 0.9 ha
    ("scrub", 60.52335, 26.93400, C.SPARSE_SHRUB_LAND, 369836426),  # natural=scrub
    ("pitch", 60.53471, 26.94508, C.SPORTS_LAND, 589205484),  # leisure=pitch
    ("bridge", 60.52231, 26.94778, C.BRIDGE, 5184589),  # on the highway=secondary bridge=yes way
    ("meadow", 60.52587, 26.93620, C.GRASSLAND, 369836455),  # landuse=meadow
    ("farmyard", 60.52640, 26.94447, C.FARMLAND, 369849804),  # landuse=farmyard (weaker)
]


@pytest.fixture(scope="module")
def kotka_index() -> FeatureIndex:
    return FeatureIndex(load_extract(KOTKA_PBF).features)


@pytest.mark.parametrize(("name", "lat", "lon", "expected", "element"), KOTKA_POINTS, ids=[p[0] for p in KOTKA_POINTS])
def test_kotka_points(
    kotka_index: FeatureIndex, name: str, lat: float, lon: float, expected: SceneClass, element: int
) -> None:
    decision = decide(lat, lon, footprint_bbox(lat, lon), kotka_index, DecisionOptions())
    assert decision.label is expected
    assert decision.elements[0]["id"] == element and decision.elements[0]["decided"] is True
    assert decision.elements[0]["version"] >= 1 and decision.elements[0]["timestamp"].startswith("20")
    assert decision.last_edit_at is not None and decision.last_edit_at.year < 2020
    assert 0.0 < decision.confidence <= 1.0


def test_kotka_farmyard_is_weaker_than_farmland(kotka_index: FeatureIndex) -> None:
    yard = decide(60.52640, 26.94447, footprint_bbox(60.52640, 26.94447), kotka_index, DecisionOptions())
    field = decide(60.52645, 26.95121, footprint_bbox(60.52645, 26.95121), kotka_index, DecisionOptions())
    assert yard.confidence < field.confidence


def test_kotka_point_matching_nothing_gets_no_class(kotka_index: FeatureIndex) -> None:
    decision = decide(60.5390, 26.9680, footprint_bbox(60.5390, 26.9680), kotka_index, DecisionOptions())
    assert decision.label is None and decision.confidence == 0.0 and decision.elements == []


def test_kotka_coverage_is_kept_for_every_class_in_the_footprint(kotka_index: FeatureIndex) -> None:
    decision = decide(60.52235, 26.93506, footprint_bbox(60.52235, 26.93506), kotka_index, DecisionOptions())
    assert {"forest", "sparse shrub land", "grassland"} <= set(decision.coverage)
    assert all(0 < v <= 1 for v in decision.coverage.values())


# ---------------------------------------------------------------- made-up scenes (metres around 60.0 N, 26.0 E)
LAT0, LON0 = 60.0, 26.0
KX, KY = metres_per_degree(LAT0)


def _pt(x: float, y: float) -> dict[str, float]:
    return {"lat": LAT0 + y / KY, "lon": LON0 + x / KX}


def _square(id_: int, half: float, cx: float = 0.0, cy: float = 0.0, **tags: str) -> dict[str, Any]:
    ring = [_pt(cx - half, cy - half), _pt(cx + half, cy - half), _pt(cx + half, cy + half), _pt(cx - half, cy + half)]
    return {
        "type": "way",
        "id": id_,
        "version": 1,
        "timestamp": "2020-01-01T00:00:00Z",
        "geometry": ring + ring[:1],
        "tags": tags,
    }


def _line(id_: int, x0: float, y0: float, x1: float, y1: float, **tags: str) -> dict[str, Any]:
    return {"type": "way", "id": id_, "geometry": [_pt(x0, y0), _pt(x1, y1)], "tags": tags}


def _node(id_: int, x: float, y: float, **tags: str) -> dict[str, Any]:
    return {"type": "node", "id": id_, **_pt(x, y), "tags": tags}


def _decide(elements: list[dict[str, Any]], x: float = 0.0, y: float = 0.0, **options: float):  # type: ignore[no-untyped-def]
    here = _pt(x, y)
    at_point = (here["lon"], here["lat"], here["lon"], here["lat"])
    footprint = reach_bounds(here["lat"], here["lon"], at_point, 128.0)  # a 256 m square image footprint
    index = FeatureIndex(features_from_elements(elements))
    return decide(here["lat"], here["lon"], footprint, index, DecisionOptions(**options))


def test_discrete_object_outranks_land_cover() -> None:
    decision = _decide([_square(1, 400, landuse="residential"), _square(2, 300, leisure="pitch")])
    assert decision.label is C.SPORTS_LAND
    assert [e["class"] for e in decision.elements] == ["sports land", "residential"]


def test_smaller_area_wins_within_a_tier() -> None:
    decision = _decide([_square(1, 500, landuse="forest"), _square(2, 50, landuse="meadow")])
    assert decision.label is C.GRASSLAND


def test_tiny_winner_has_low_confidence_and_coverage_shows_why() -> None:
    # the pond-in-a-sports-ground case: the pond wins by size, but covers almost none of the footprint
    decision = _decide([_square(1, 200, leisure="stadium"), _square(2, 5, natural="water")])
    assert decision.label is C.LAKE
    assert decision.coverage["sports land"] > 0.9 > decision.coverage["lake"]
    assert decision.confidence < 0.55


def test_bridge_within_radius_beats_containing_water() -> None:
    elements = [_square(1, 500, natural="water"), _line(2, -300, 20, 300, 20, highway="primary", bridge="yes")]
    assert _decide(elements).label is C.BRIDGE  # 20 m away, radius 40 m
    far = _decide(elements, radius_m=10.0)
    assert far.label is C.LAKE


def test_station_node_under_a_canopy_found_by_proximity() -> None:
    decision = _decide([_square(1, 300, landuse="residential"), _node(5, 25, -10, railway="station")])
    assert decision.label is C.TRAIN_STATION and decision.elements[0]["distance_m"] == pytest.approx(26.9, abs=0.2)


def test_nearest_small_object_wins() -> None:
    decision = _decide([_node(5, 30, 0, railway="station"), _line(6, -10, -50, -10, 50, bridge="yes")])
    assert decision.label is C.BRIDGE


def test_railway_land_counts_only_near_a_station() -> None:
    yard = _square(1, 200, landuse="railway")
    assert _decide([yard]).label is None
    with_station = _decide([yard, _node(5, 150, 150, railway="station")])  # 212 m away: context, not proximity
    assert with_station.label is C.TRAIN_STATION
    assert with_station.elements[0]["id"] == 1 and with_station.confidence <= 0.6


def test_runway_near_point_means_airport() -> None:
    assert _decide([_line(9, -1000, 35, 1000, 35, aeroway="runway")]).label is C.AIRPORT


def test_point_outside_every_polygon_but_footprint_overlapping_gets_no_class_with_coverage() -> None:
    decision = _decide([_square(1, 60, cx=100, cy=0, landuse="farmland")])
    assert decision.label is None
    assert decision.coverage["farmland"] > 0
