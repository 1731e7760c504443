"""Batching: nearby points share one Overpass query (cluster by grid cell, query the union bbox).

Cells are ``cell_km`` on a side (longitude span widened with latitude so cells stay roughly square). A cluster's
query box is the union of what each of its points needs: the image footprint grown to the decision reach (the
proximity radius / station context), rounded outwards to 1e-6° so the query text — and its cache key — is stable.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from annotator.osm.decide import Bounds, reach_bounds

DEFAULT_CELL_KM = 8.0
_KM_PER_DEG_LAT = 111.32


@dataclass(frozen=True)
class PointTask:
    """One pair to pre-label: its id, position and image footprint (west, south, east, north)."""

    pair_id: int
    lat: float
    lon: float
    footprint: Bounds


@dataclass(frozen=True)
class Cluster:
    """Points of one cell and the box one query must cover for all of them."""

    cell: tuple[int, int]
    points: tuple[PointTask, ...]
    bounds: Bounds  # (west, south, east, north)


def cell_of(lat: float, lon: float, cell_km: float) -> tuple[int, int]:
    dlat = cell_km / _KM_PER_DEG_LAT
    row = math.floor(lat / dlat)
    row_lat = min(89.0, abs((row + 0.5) * dlat))
    dlon = dlat / math.cos(math.radians(row_lat))
    return row, math.floor(lon / dlon)


def _round_out(bounds: Bounds) -> Bounds:
    west, south, east, north = bounds
    q = 1e6
    return (math.floor(west * q) / q, math.floor(south * q) / q, math.ceil(east * q) / q, math.ceil(north * q) / q)


def cluster_points(points: Iterable[PointTask], *, cell_km: float = DEFAULT_CELL_KM, reach_m: float) -> list[Cluster]:
    """Group points by cell; clusters in cell order, points by pair id (deterministic queries)."""
    if cell_km <= 0:
        raise ValueError("cell_km must be positive")
    cells: dict[tuple[int, int], list[PointTask]] = defaultdict(list)
    for point in points:
        cells[cell_of(point.lat, point.lon, cell_km)].append(point)
    clusters = []
    for cell in sorted(cells):
        members = sorted(cells[cell], key=lambda p: p.pair_id)
        boxes = [reach_bounds(p.lat, p.lon, p.footprint, reach_m) for p in members]
        union = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        clusters.append(Cluster(cell=cell, points=tuple(members), bounds=_round_out(union)))
    return clusters
