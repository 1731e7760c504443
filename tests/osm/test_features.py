"""Geometry assembly: closed ways, lines, multipolygon relations from member ways, make_valid repairs."""

from __future__ import annotations

from typing import Any

from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from annotator.osm.features import area_m2, features_from_elements, metres_per_degree
from annotator.vocabulary import SceneClass


def _ring(*coords: tuple[float, float]) -> list[dict[str, float]]:
    return [{"lat": lat, "lon": lon} for lon, lat in coords]


def _way(id_: int, coords: list[dict[str, float]], **tags: str) -> dict[str, Any]:
    return {
        "type": "way",
        "id": id_,
        "version": 3,
        "timestamp": "2015-09-09T10:40:17Z",
        "geometry": coords,
        "tags": tags,
    }


SQUARE = _ring((26.0, 60.0), (26.01, 60.0), (26.01, 60.01), (26.0, 60.01), (26.0, 60.0))


def test_closed_area_way_becomes_polygon_with_metric_area() -> None:
    [feature] = features_from_elements([_way(1, SQUARE, landuse="farmland")])
    assert isinstance(feature.geometry, Polygon)
    assert feature.rule.scene_class is SceneClass.FARMLAND
    kx, ky = metres_per_degree(60.005)
    assert abs(feature.area_m2 - 0.01 * kx * 0.01 * ky) / feature.area_m2 < 1e-3
    assert feature.ref.version == 3 and feature.ref.edited_at is not None and feature.ref.edited_at.year == 2015


def test_unclosed_area_way_is_dropped_but_bridge_way_is_a_line() -> None:
    open_line = SQUARE[:-1]
    assert features_from_elements([_way(1, open_line, landuse="forest")]) == []
    [bridge] = features_from_elements([_way(2, SQUARE, highway="primary", bridge="yes")])
    assert isinstance(bridge.geometry, LineString) and bridge.area_m2 == 0.0


def test_untagged_or_classless_elements_are_ignored() -> None:
    assert features_from_elements([_way(1, SQUARE), _way(2, SQUARE, leisure="park")]) == []


def test_self_intersecting_ring_is_repaired_with_make_valid() -> None:
    bowtie = _ring((26.0, 60.0), (26.01, 60.01), (26.01, 60.0), (26.0, 60.01), (26.0, 60.0))
    assert not Polygon([(p["lon"], p["lat"]) for p in bowtie]).is_valid
    [feature] = features_from_elements([_way(1, bowtie, natural="scrub")])
    assert feature.geometry.is_valid
    assert isinstance(feature.geometry, MultiPolygon) and len(feature.geometry.geoms) == 2
    assert feature.geometry.covers(Point(26.001, 60.005))  # inside the west triangle
    assert feature.geometry.covers(Point(26.009, 60.005))  # inside the east triangle
    assert not feature.geometry.covers(Point(26.005, 60.001))  # between the lobes: not part of the area


def test_multipolygon_assembled_from_split_outer_ring_minus_inner() -> None:
    outer_a = _ring((26.0, 60.0), (26.02, 60.0), (26.02, 60.02))
    outer_b = _ring((26.02, 60.02), (26.0, 60.02), (26.0, 60.0))
    inner = _ring((26.005, 60.005), (26.015, 60.005), (26.015, 60.015), (26.005, 60.015), (26.005, 60.005))
    relation = {
        "type": "relation",
        "id": 7,
        "version": 2,
        "timestamp": "2018-01-01T00:00:00Z",
        "tags": {"type": "multipolygon", "landuse": "forest"},
        "members": [
            {"type": "way", "ref": 1, "role": "outer", "geometry": outer_a},
            {"type": "way", "ref": 2, "role": "outer", "geometry": outer_b},
            {"type": "way", "ref": 3, "role": "inner", "geometry": inner},
            {"type": "way", "ref": 4, "role": "outer"},  # outside the extract: no geometry, skipped
        ],
    }
    [feature] = features_from_elements([relation])
    assert feature.ref.type == "relation" and feature.rule.scene_class is SceneClass.FOREST
    assert feature.geometry.covers(Point(26.002, 60.002))
    assert not feature.geometry.covers(Point(26.01, 60.01))  # in the hole
    assert (
        abs(
            feature.area_m2
            - (
                area_m2(Polygon([(26.0, 60.0), (26.02, 60.0), (26.02, 60.02), (26.0, 60.02)]))
                - area_m2(Polygon([(26.005, 60.005), (26.015, 60.005), (26.015, 60.015), (26.005, 60.015)]))
            )
        )
        < 1.0
    )


def test_multipolygon_with_self_crossing_member_is_repaired() -> None:
    crossing = _ring((26.0, 60.0), (26.01, 60.01), (26.01, 60.0), (26.0, 60.01), (26.0, 60.0))
    relation = {
        "type": "relation",
        "id": 8,
        "tags": {"type": "multipolygon", "natural": "wood"},
        "members": [{"type": "way", "ref": 1, "role": "outer", "geometry": crossing}],
    }
    [feature] = features_from_elements([relation])
    assert feature.geometry.is_valid and feature.area_m2 > 0


def test_station_node_is_a_point() -> None:
    node = {"type": "node", "id": 5, "lat": 60.1, "lon": 26.1, "tags": {"railway": "station"}}
    [feature] = features_from_elements([node])
    assert isinstance(feature.geometry, Point)
    assert features_from_elements([{**node, "tags": {"landuse": "forest"}}]) == []  # an area tag on a node
