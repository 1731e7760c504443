"""Small OSM data for the Overpass fault tests: two farmland fields the loopback server of tests/osm answers from.

The fault tests need answers that decide pairs, not the Kotka extract's realism: two closed ``landuse=farmland``
ways, shaped as ``out meta geom`` gives them, cover every point the tests place (60.50–60.56 N, 26.90–27.00 E).
"""

from __future__ import annotations

from typing import Any


def farmland(way_id: int, south: float, west: float, north: float, east: float) -> dict[str, Any]:
    """A closed farmland way covering the box, shaped as ``out meta geom`` gives it."""
    ring = [(south, west), (south, east), (north, east), (north, west), (south, west)]
    return {
        "type": "way",
        "id": way_id,
        "timestamp": "2019-04-14T18:23:52Z",
        "version": 3,
        "tags": {"landuse": "farmland"},
        "geometry": [{"lat": lat, "lon": lon} for lat, lon in ring],
    }


ELEMENTS = [farmland(1, 60.50, 26.90, 60.53, 26.95), farmland(2, 60.53, 26.95, 60.56, 27.00)]
