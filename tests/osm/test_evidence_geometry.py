"""The evidence keeps each deciding element's geometry: clipped to a frame around the footprint, within a tenth
of a metre of the OSM shape, as GeoJSON-like [lon, lat] lists that survive a JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from shapely.geometry import box, shape

from annotator.osm.decide import DecisionOptions, FeatureIndex, decide, geometry_frame
from annotator.osm.extract import load_extract
from annotator.osm.features import EVIDENCE_TOLERANCE_M, evidence_geometry, metres_per_degree, to_local_metres
from annotator.vocabulary import SceneClass
from dataset.imagery.geo import footprint_bbox
from tests.osm.conftest import KOTKA_PBF
from tests.osm.test_decide import _decide, _line, _node, _pt, _square

C = SceneClass


@pytest.fixture(scope="module")
def kotka() -> FeatureIndex:
    return FeatureIndex(load_extract(KOTKA_PBF).features)


def _metres(geometry: Any, lat: float, lon: float) -> Any:
    return to_local_metres(geometry, lat, lon)


@pytest.mark.parametrize(
    ("lat", "lon", "kind"),
    [(60.52645, 26.95121, "Polygon"), (60.52235, 26.93506, "Polygon"), (60.52231, 26.94778, "LineString")],
    ids=["farmland", "forest", "bridge"],
)
def test_kotka_evidence_geometry_matches_the_osm_shape_within_the_frame(
    kotka: FeatureIndex, lat: float, lon: float, kind: str
) -> None:
    footprint = footprint_bbox(lat, lon)
    decision = decide(lat, lon, footprint, kotka, DecisionOptions())
    frame = geometry_frame(footprint)
    stored = json.loads(json.dumps(decision.elements))  # what the JSON column keeps
    chosen = stored[0]
    assert chosen["decided"] and chosen["geometry"]["type"] == kind
    drawn = shape(chosen["geometry"])
    feature = next(f for f in kotka.features if (f.ref.type, f.ref.id) == (chosen["type"], chosen["id"]))
    expected = feature.geometry.intersection(box(*frame))
    assert box(*frame).buffer(1e-7).covers(drawn)  # nothing beyond the frame (coordinates rounded to 1e-7°)
    gap_m = _metres(drawn, lat, lon).hausdorff_distance(_metres(expected, lat, lon))
    assert gap_m <= EVIDENCE_TOLERANCE_M + 0.05, gap_m  # well below a 0.5 m pixel
    if kind == "Polygon":
        assert drawn.area == pytest.approx(expected.area, rel=1e-3)
        assert drawn.covers(shape({"type": "Point", "coordinates": [lon, lat]}))  # it holds the point it decided
    assert all(
        "geometry" in e for e in stored
    )  # every listed candidate keeps its shape (or None when nothing of it is in the frame)


def test_a_shape_larger_than_the_frame_is_cut_to_it() -> None:
    decision = _decide([_square(1, 2000, landuse="forest")])
    (element,) = decision.elements
    here = _pt(0, 0)
    kx, ky = metres_per_degree(here["lat"])
    west, south, east, north = shape(element["geometry"]).bounds
    assert (east - west) * kx == pytest.approx(256 * 1.2, rel=0.01)  # the 256 m footprint + 10 % each side
    assert (north - south) * ky == pytest.approx(256 * 1.2, rel=0.01)


def test_lines_and_nodes_keep_their_type() -> None:
    decision = _decide([_node(5, 25, -10, railway="station"), _line(6, -300, 20, 300, 20, bridge="yes")])
    kinds = {e["class"]: e["geometry"]["type"] for e in decision.elements}
    assert kinds == {"train station": "Point", "bridge": "LineString"}
    point = next(e for e in decision.elements if e["class"] == "train station")["geometry"]["coordinates"]
    assert point == [round(_pt(25, -10)["lon"], 7), round(_pt(25, -10)["lat"], 7)]


def test_simplification_drops_vertices_closer_than_the_tolerance() -> None:
    here = _pt(0, 0)
    # a 200 m square whose edges carry 400 vertices jittered by 2 cm: the stored ring keeps about its 4 corners
    ring = []
    for n in range(400):
        side, t = divmod(n, 100)
        x = [-100 + 2 * t, 100, 100 - 2 * t, -100][side]
        y = [-100, -100 + 2 * t, 100, 100 - 2 * t][side]
        ring.append(_pt(x, y + (0.02 if n % 2 else 0.0)))
    element = {"type": "way", "id": 9, "geometry": [*ring, ring[0]], "tags": {"landuse": "meadow"}}
    decision = _decide([element])
    coords = decision.elements[0]["geometry"]["coordinates"][0]
    assert 5 <= len(coords) <= 8
    frame = (here["lon"] - 0.01, here["lat"] - 0.01, here["lon"] + 0.01, here["lat"] + 0.01)
    assert evidence_geometry(shape({"type": "Point", "coordinates": [0.0, 0.0]}), frame) is None  # outside
    assert evidence_geometry(shape(decision.elements[0]["geometry"]), (1.0, 0.0, -1.0, 1.0)) is None  # bad frame
