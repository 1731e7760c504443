"""OSM features with their geometry, built the same way from Overpass JSON and from an extract.

Both sources hand over *element dicts* shaped like Overpass ``[out:json]`` ``out meta geom`` output:

- node: ``{"type": "node", "id", "lat", "lon", "version", "timestamp", "tags"}``
- way: ``{"type": "way", "id", "geometry": [{"lat", "lon"}, ...], ...}``
- relation: ``{"type": "relation", "id", "members": [{"type": "way", "ref", "role", "geometry": [...]}, ...]}``

so one function (:func:`features_from_elements`) turns either into :class:`Feature` objects and the two paths
give the same decisions on the same data. Geometry stays in degrees (x = lon, y = lat); metric lengths and areas
use a local tangent plane with WGS84 radii.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon, mapping
from shapely.geometry.base import BaseGeometry
from shapely.ops import polygonize, unary_union

from annotator.osm.tags import Match, TagRule, rule_for

_A = 6378137.0  # WGS84 semi-major axis (m)
_E2 = 6.69437999014e-3  # WGS84 first eccentricity squared

#: Tags under which a closed NEAR way is an outline area rather than a line (a bridge deck is a line).
_OUTLINE_KEYS = ("man_made", "railway", "public_transport")


@dataclass(frozen=True)
class ElementRef:
    """The identity and provenance of one OSM element: what evidence rows store."""

    type: str  # "node", "way" or "relation"
    id: int
    version: int | None
    timestamp: str | None  # ISO 8601 UTC, "2019-04-14T18:23:52Z"
    tags: Mapping[str, str]

    @property
    def edited_at(self) -> datetime | None:
        if not self.timestamp:
            return None
        return datetime.fromisoformat(self.timestamp.replace("Z", "+00:00")).astimezone(UTC)

    def as_evidence(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "version": self.version,
            "timestamp": self.timestamp,
            "tags": dict(sorted(self.tags.items())),
        }


@dataclass(frozen=True)
class Feature:
    """An OSM element that means a class: its rule and its geometry in degrees (lon, lat)."""

    ref: ElementRef
    rule: TagRule
    geometry: BaseGeometry
    area_m2: float  # 0 for lines and points

    @property
    def is_polygonal(self) -> bool:
        return isinstance(self.geometry, Polygon | MultiPolygon)


def metres_per_degree(lat: float) -> tuple[float, float]:
    """(metres per degree of longitude, of latitude) at `lat` on the WGS84 ellipsoid."""
    phi = math.radians(lat)
    w = math.sqrt(1.0 - _E2 * math.sin(phi) ** 2)
    meridional = _A * (1.0 - _E2) / w**3
    prime_vertical = _A / w
    return prime_vertical * math.cos(phi) * math.pi / 180.0, meridional * math.pi / 180.0


def to_local_metres(geometry: BaseGeometry, lat0: float, lon0: float) -> BaseGeometry:
    """`geometry` on the tangent plane at (lat0, lon0), in metres (x east, y north)."""
    kx, ky = metres_per_degree(lat0)
    origin = np.array([lon0, lat0])
    scale = np.array([kx, ky])
    return shapely.transform(geometry, lambda coords: (coords - origin) * scale)


def area_m2(geometry: BaseGeometry) -> float:
    if geometry.is_empty:
        return 0.0
    centre = geometry.centroid
    return float(to_local_metres(geometry, centre.y, centre.x).area)


def polygonal_part(geometry: BaseGeometry) -> BaseGeometry | None:
    """The polygons of `geometry` (make_valid can return lines and points beside them), or None."""
    if isinstance(geometry, Polygon | MultiPolygon):
        return None if geometry.is_empty else geometry
    parts = [g for g in getattr(geometry, "geoms", []) if isinstance(g, Polygon | MultiPolygon) and not g.is_empty]
    if not parts:
        return None
    return unary_union(parts)


def repaired(geometry: BaseGeometry) -> BaseGeometry | None:
    """A valid polygonal geometry (real OSM polygons self-intersect), or None when nothing polygonal is left."""
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    return polygonal_part(geometry)


def _coords(points: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    return [(float(p["lon"]), float(p["lat"])) for p in points if p is not None]


def ring_polygon(coords: list[tuple[float, float]]) -> BaseGeometry | None:
    """A closed way's polygon, repaired; None when the way is not closed."""
    if len(coords) < 4 or coords[0] != coords[-1]:
        return None
    return repaired(Polygon(coords))


def multipolygon_from_members(members: Iterable[Mapping[str, Any]]) -> BaseGeometry | None:
    """Assemble a multipolygon relation from its member ways' geometry: outer rings minus inner rings.

    Rings may be split over several ways; lines are noded (unary_union) before polygonize so a self-crossing
    ring still yields its faces. Members without geometry (outside an extract) are skipped.
    """
    lines: dict[str, list[LineString]] = {"outer": [], "inner": []}
    for member in members:
        if member.get("type") != "way" or not member.get("geometry"):
            continue
        coords = _coords(member["geometry"])
        if len(coords) < 2:
            continue
        role = "inner" if member.get("role") == "inner" else "outer"
        lines[role].append(LineString(coords))
    if not lines["outer"]:
        return None
    outer = unary_union(list(polygonize(unary_union(lines["outer"]))))
    if outer.is_empty:
        return None
    if lines["inner"]:
        inner = unary_union(list(polygonize(unary_union(lines["inner"]))))
        outer = outer.difference(inner)
    return repaired(outer)


def element_geometry(element: Mapping[str, Any], rule: TagRule) -> BaseGeometry | None:
    """The geometry an element has for its rule, or None when it has none usable."""
    kind = element.get("type")
    tags = element.get("tags") or {}
    if kind == "node":
        if "lat" not in element:
            return None
        return Point(float(element["lon"]), float(element["lat"])) if rule.match is Match.NEAR else None
    if kind == "way":
        coords = _coords(element.get("geometry") or [])
        if len(coords) < 2:
            return None
        closed = len(coords) >= 4 and coords[0] == coords[-1]
        if rule.match is Match.AREA:
            return ring_polygon(coords)
        outline = closed and (tags.get("area") == "yes" or rule.key in _OUTLINE_KEYS)
        return ring_polygon(coords) if outline else LineString(coords)
    if kind == "relation" and tags.get("type") == "multipolygon":
        return multipolygon_from_members(element.get("members") or [])
    return None


def iso_timestamp(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def features_from_elements(elements: Iterable[Mapping[str, Any]]) -> list[Feature]:
    """Features for every element whose tags match a rule and whose geometry can be built (deduplicated by id)."""
    out: dict[tuple[str, int], Feature] = {}
    for element in elements:
        tags = element.get("tags") or {}
        rule = rule_for(tags)
        if rule is None:
            continue
        key = (str(element["type"]), int(element["id"]))
        if key in out:
            continue
        geometry = element_geometry(element, rule)
        if geometry is None or geometry.is_empty:
            continue
        ref = ElementRef(
            type=key[0],
            id=key[1],
            version=int(element["version"]) if element.get("version") is not None else None,
            timestamp=iso_timestamp(element.get("timestamp")),
            tags=dict(tags),
        )
        polygonal = isinstance(geometry, Polygon | MultiPolygon)
        out[key] = Feature(ref, rule, geometry, area_m2(geometry) if polygonal else 0.0)
    return sorted(out.values(), key=lambda f: (f.ref.type, f.ref.id))


#: How far the stored evidence geometry may stray from the OSM one (metres): a fifth of a 0.5 m image pixel.
EVIDENCE_TOLERANCE_M = 0.1
#: Decimals kept in stored evidence coordinates (1e-7° ≈ 1 cm).
EVIDENCE_DECIMALS = 7


def _rounded(coords: Any) -> Any:
    """GeoJSON coordinates as nested lists, rounded to :data:`EVIDENCE_DECIMALS`."""
    if isinstance(coords, tuple | list) and coords and isinstance(coords[0], int | float):
        return [round(float(c), EVIDENCE_DECIMALS) for c in coords[:2]]
    return [_rounded(c) for c in coords]


def evidence_geometry(
    geometry: BaseGeometry, frame: tuple[float, float, float, float], *, tolerance_m: float = EVIDENCE_TOLERANCE_M
) -> dict[str, Any] | None:
    """`geometry` clipped to `frame` (west, south, east, north), simplified to `tolerance_m` and written as a
    GeoJSON-like dict of [lon, lat] lists (Point, LineString, Polygon or their Multi forms); None when nothing
    of it lies in the frame (or the frame straddles the antimeridian, which the crop maths does not draw)."""
    west, south, east, north = frame
    if not west < east or not south < north or geometry.is_empty:
        return None
    if isinstance(geometry, Point):
        inside = west <= geometry.x <= east and south <= geometry.y <= north
        return {"type": "Point", "coordinates": _rounded(geometry.coords[0])} if inside else None
    clipped = shapely.clip_by_rect(geometry, west, south, east, north)
    if clipped.is_empty:
        return None
    kx, ky = metres_per_degree((south + north) / 2)
    simple = clipped.simplify(tolerance_m / max(kx, ky), preserve_topology=True)
    parts = _drawable_parts(simple if not simple.is_empty else clipped)
    if not parts:
        return None
    shape = parts[0] if len(parts) == 1 else _multi(parts)
    mapped = mapping(shape)
    return {"type": mapped["type"], "coordinates": _rounded(mapped["coordinates"])}


def _drawable_parts(geometry: BaseGeometry) -> list[BaseGeometry]:
    """The polygons, or else the lines, of a clip result (a clipped polygon can leave a collection)."""
    flat = [g for g in getattr(geometry, "geoms", [geometry]) if not g.is_empty]
    flat = [p for g in flat for p in getattr(g, "geoms", [g])]
    polygons = [g for g in flat if isinstance(g, Polygon)]
    if polygons:
        return list(polygons)
    return [g for g in flat if isinstance(g, LineString)]


def _multi(parts: list[BaseGeometry]) -> BaseGeometry:
    if isinstance(parts[0], Polygon):
        return MultiPolygon(parts)
    return MultiLineString(parts)
