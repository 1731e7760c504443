"""The decision rule (SPEC §6): which class OSM suggests for a point, how sure, and why.

Candidates are the polygons that contain the point (``Match.AREA`` rules) and the small objects within
``radius_m`` of it (``Match.NEAR``: bridges, stations, runways). The lowest tier wins (small objects, then
discrete areas, then land cover); within a tier the nearer small object or the smaller area wins. A point with no
candidate gets no class. The fraction of the footprint covered by each class's polygons is kept as evidence and
feeds the confidence, so a tiny pond that wins by size over a pitch filling the image has low confidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shapely import STRtree
from shapely.geometry import Point, box
from shapely.ops import unary_union

from annotator.osm.features import Feature, evidence_geometry, metres_per_degree, to_local_metres
from annotator.osm.tags import Match
from annotator.vocabulary import SceneClass

DEFAULT_RADIUS_M = 40.0
#: ``landuse=railway`` counts only when a station lies this close to the point.
DEFAULT_STATION_CONTEXT_M = 300.0
#: At most this many candidates besides the chosen one are kept as evidence.
MAX_OTHER_CANDIDATES = 9
#: Evidence geometry is kept within the footprint grown by this share of its size on every side (the overlay
#: image draws the footprint; a little beyond keeps outlines that run along its edge whole).
GEOMETRY_MARGIN = 0.1

Bounds = tuple[float, float, float, float]  # (west, south, east, north) in degrees


@dataclass(frozen=True)
class DecisionOptions:
    radius_m: float = DEFAULT_RADIUS_M
    station_context_m: float = DEFAULT_STATION_CONTEXT_M

    @property
    def reach_m(self) -> float:
        """How far from a point a feature can matter (the query must cover this around every point)."""
        return max(self.radius_m, self.station_context_m)


@dataclass(frozen=True)
class Decision:
    """OSM's suggestion for one point."""

    label: SceneClass | None
    confidence: float
    coverage: dict[str, float]  # SceneClass value -> fraction of the footprint
    elements: list[dict[str, Any]] = field(default_factory=list)  # chosen first (decided=True), then candidates
    last_edit_at: datetime | None = None


@dataclass(frozen=True)
class _Candidate:
    feature: Feature
    distance_m: float

    @property
    def rank(self) -> tuple[int, float, float, str, int]:
        size = self.distance_m if self.feature.rule.match is Match.NEAR else self.feature.area_m2
        ref = self.feature.ref
        return (int(self.feature.rule.tier), size, -self.feature.rule.weight, ref.type, ref.id)


class FeatureIndex:
    """Features behind a spatial index, so a point only looks at what is near it."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = list(features)
        self._tree = STRtree([f.geometry for f in self.features])

    def __len__(self) -> int:
        return len(self.features)

    def intersecting(self, bounds: Bounds) -> list[Feature]:
        if not self.features:
            return []
        hits = self._tree.query(box(*bounds))
        return [self.features[i] for i in sorted(hits)]


def reach_bounds(lat: float, lon: float, footprint: Bounds, reach_m: float) -> Bounds:
    """The footprint grown to include everything within `reach_m` of the point."""
    kx, ky = metres_per_degree(lat)
    dlon, dlat = reach_m / kx, reach_m / ky
    west, south, east, north = footprint
    return (min(west, lon - dlon), min(south, lat - dlat), max(east, lon + dlon), max(north, lat + dlat))


def class_coverage(footprint: Bounds, features: Sequence[Feature]) -> dict[str, float]:
    """Fraction of the footprint covered by each class's polygons (overlaps within a class counted once).

    Computed in degrees: at footprint scale the map to metres is affine, which keeps area ratios.
    """
    frame = box(*footprint)
    if frame.area == 0:
        return {}
    by_class: dict[SceneClass, list[Any]] = defaultdict(list)
    for feature in features:
        if feature.is_polygonal and feature.geometry.intersects(frame):
            by_class[feature.rule.scene_class].append(feature.geometry.intersection(frame))
    coverage = {}
    for scene_class in SceneClass:  # fixed order
        parts = by_class.get(scene_class)
        if parts:
            fraction = round(min(1.0, unary_union(parts).area / frame.area), 4)
            if fraction > 0:
                coverage[scene_class.value] = fraction
    return coverage


def decide(lat: float, lon: float, footprint: Bounds, index: FeatureIndex, options: DecisionOptions) -> Decision:
    """Decide the class OSM suggests at (lat, lon) whose image covers `footprint`."""
    nearby = index.intersecting(reach_bounds(lat, lon, footprint, options.reach_m))
    point = Point(lon, lat)
    origin = Point(0.0, 0.0)
    candidates: list[_Candidate] = []
    station_near = False
    for feature in nearby:
        rule = feature.rule
        if rule.match is Match.AREA and rule.needs_nearby is None:
            if feature.geometry.covers(point):
                candidates.append(_Candidate(feature, 0.0))
            continue
        distance = to_local_metres(feature.geometry, lat, lon).distance(origin)
        if rule.match is Match.NEAR:
            if distance <= options.radius_m:
                candidates.append(_Candidate(feature, distance))
            if rule.scene_class is SceneClass.TRAIN_STATION and distance <= options.station_context_m:
                station_near = True
        elif distance == 0.0:
            candidates.append(_Candidate(feature, 0.0))
    candidates = [c for c in candidates if c.feature.rule.needs_nearby is None or station_near]
    coverage = class_coverage(footprint, nearby)
    if not candidates:
        return Decision(label=None, confidence=0.0, coverage=coverage)
    candidates.sort(key=lambda c: c.rank)
    chosen = candidates[0]
    rule = chosen.feature.rule
    if rule.match is Match.NEAR:
        strength = 1.0 - chosen.distance_m / options.radius_m if options.radius_m > 0 else 1.0
    else:
        strength = coverage.get(rule.scene_class.value, 0.0)
    confidence = round(rule.weight * (0.5 + 0.5 * strength), 3)
    frame = geometry_frame(footprint)
    elements = [
        _evidence(c, decided=(i == 0), frame=frame) for i, c in enumerate(candidates[: MAX_OTHER_CANDIDATES + 1])
    ]
    return Decision(
        label=rule.scene_class,
        confidence=confidence,
        coverage=coverage,
        elements=elements,
        last_edit_at=chosen.feature.ref.edited_at,
    )


def geometry_frame(footprint: Bounds, margin: float = GEOMETRY_MARGIN) -> Bounds:
    """The footprint grown by `margin` of its width and height on every side: where evidence geometry is kept."""
    west, south, east, north = footprint
    dx, dy = (east - west) * margin, (north - south) * margin
    return (west - dx, south - dy, east + dx, north + dy)


def _evidence(candidate: _Candidate, *, decided: bool, frame: Bounds) -> dict[str, Any]:
    """The evidence dict of a candidate: identity, tags, class, distance or area, and its geometry in the frame
    (GeoJSON-like [lon, lat] lists, simplified well below a pixel; absent from evidence of older versions)."""
    out = candidate.feature.ref.as_evidence()
    out["class"] = candidate.feature.rule.scene_class.value
    out["decided"] = decided
    if candidate.feature.rule.match is Match.NEAR:
        out["distance_m"] = round(candidate.distance_m, 1)
    else:
        out["area_m2"] = round(candidate.feature.area_m2, 1)
    out["geometry"] = evidence_geometry(candidate.feature.geometry, frame)
    return out
