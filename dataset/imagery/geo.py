"""Web-Mercator tile maths and WGS84 metre offsets (see notes/osm.md "Web-Mercator and offsets").

Tiles are 256 px, XYZ numbering (y grows southwards). ``global_pixel`` gives the continuous pixel position of a
point in the whole-world image at a zoom, so a crop can be centred on it to a fraction of a pixel.
"""

from __future__ import annotations

import math
from typing import Literal

from annotator.errors import ImageryError
from annotator.vocabulary import ImageryFailure

TILE_SIZE = 256
EARTH_RADIUS_M = 6378137.0  # the sphere of Web-Mercator (EPSG:3857)
MAX_MERCATOR_LAT = 85.0511287798066  # atan(sinh(pi)) in degrees: the square world image's edge
EQUATOR_MPP_Z0 = 2 * math.pi * EARTH_RADIUS_M / TILE_SIZE  # 156543.034 m/px at zoom 0 on the equator
MAX_ZOOM = 30

# WGS84 ellipsoid
WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)

Direction = Literal["N", "E", "S", "W"]
DIRECTIONS: tuple[Direction, ...] = ("N", "E", "S", "W")


def check_latitude(lat: float) -> None:
    """Raise :class:`ImageryError` for a latitude Web-Mercator cannot show (beyond ±85.0511°) or not finite."""
    if not math.isfinite(lat) or abs(lat) > MAX_MERCATOR_LAT:
        raise ImageryError(
            f"latitude {lat} is outside Web-Mercator's ±{MAX_MERCATOR_LAT:.4f}°; no tile imagery exists there",
            reason=ImageryFailure.OUT_OF_RANGE,
        )


def global_pixel(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """Continuous pixel position of (lat, lon) in the world image at ``zoom`` (256-px tiles).

    Args:
        lat: Latitude in degrees, within ±MAX_MERCATOR_LAT.
        lon: Longitude in degrees; values outside [-180, 180) are wrapped.
        zoom: Tile zoom level.

    Returns:
        ``(px, py)``; ``int(px) // 256`` is the tile column, ``int(py) // 256`` the tile row.
    """
    check_latitude(lat)
    world = TILE_SIZE * 2**zoom
    lon = wrap_longitude(lon)
    sin_phi = math.sin(math.radians(lat))
    x = (lon + 180.0) / 360.0
    y = 0.5 - math.log((1 + sin_phi) / (1 - sin_phi)) / (4 * math.pi)
    return x * world, y * world


def pixel_to_lonlat(px: float, py: float, zoom: int) -> tuple[float, float]:
    """Inverse of :func:`global_pixel`: ``(lon, lat)`` in degrees of a global pixel position at ``zoom``."""
    world = TILE_SIZE * 2**zoom
    lon = px / world * 360.0 - 180.0
    n = math.pi * (1 - 2 * py / world)
    lat = math.degrees(math.atan(math.sinh(n)))
    return lon, lat


def mercator_xy(lat: float, lon: float) -> tuple[float, float]:
    """Web-Mercator (EPSG:3857) metres ``(x, y)`` of (lat, lon); the longitude is wrapped into [-180, 180)."""
    check_latitude(lat)
    sin_phi = math.sin(math.radians(lat))
    return EARTH_RADIUS_M * math.radians(wrap_longitude(lon)), EARTH_RADIUS_M * math.atanh(sin_phi)


def mercator_frame(
    lat: float, lon: float, size_px: int = 512, resolution_m: float = 0.5
) -> tuple[float, float, float, float]:
    """The pixel frame of a crop in Web-Mercator metres: ``(west, south, east, north)`` of its outer edges.

    This is the frame :func:`dataset.imagery.crop.crop_at` cuts from tiles — centred on the point, ``size_px``
    pixels of ``resolution_m`` ground metres, i.e. ``resolution_m / cos φ`` Mercator metres each (the tile path's
    zoom cancels out) — so a raster source warped into it lands on the same pixel grid. ``west`` may be below
    −20037508 m when the crop straddles the antimeridian.
    """
    x, y = mercator_xy(lat, lon)
    half = size_px * resolution_m / math.cos(math.radians(lat)) / 2
    return x - half, y - half, x + half, y + half


def tile_of(lat: float, lon: float, zoom: int) -> tuple[int, int]:
    """The XYZ tile ``(x, y)`` containing (lat, lon) at ``zoom`` (like ``mercantile.tile(lon, lat, zoom)``)."""
    px, py = global_pixel(lat, lon, zoom)
    n = 2**zoom
    return min(int(px // TILE_SIZE), n - 1), min(int(py // TILE_SIZE), n - 1)


def metres_per_pixel(lat: float, zoom: int) -> float:
    """Ground resolution in metres per pixel at ``lat`` and ``zoom`` (156543.034·cos φ / 2^z)."""
    return EQUATOR_MPP_Z0 * math.cos(math.radians(lat)) / (1 << zoom)


def zoom_for_resolution(lat: float, resolution_m: float, *, max_zoom: int = MAX_ZOOM) -> int:
    """The smallest zoom whose ground resolution at ``lat`` is at least as fine as ``resolution_m`` m/px.

    Capped at ``max_zoom`` (a source that cannot reach the resolution gives its finest level).
    """
    if resolution_m <= 0 or not math.isfinite(resolution_m):
        raise ValueError(f"resolution_m must be a positive number of metres per pixel, got {resolution_m}")
    check_latitude(lat)
    # Tiny tolerance so a zoom that exactly reaches the target (e.g. the equator) is not skipped by rounding.
    ideal = math.log2(EQUATOR_MPP_Z0 * math.cos(math.radians(lat)) / resolution_m) - 1e-9
    return max(0, min(max_zoom, math.ceil(ideal)))


def meridional_radius(lat: float) -> float:
    """WGS84 meridional radius of curvature M(φ) in metres."""
    s = math.sin(math.radians(lat))
    return float(WGS84_A * (1 - WGS84_E2) / (1 - WGS84_E2 * s * s) ** 1.5)  # float ** float types as Any


def prime_vertical_radius(lat: float) -> float:
    """WGS84 prime-vertical radius of curvature N(φ) in metres."""
    s = math.sin(math.radians(lat))
    return WGS84_A / math.sqrt(1 - WGS84_E2 * s * s)


def wrap_longitude(lon: float) -> float:
    """Wrap a longitude into [-180, 180)."""
    return (lon + 180.0) % 360.0 - 180.0


def offset_point(lat: float, lon: float, direction: Direction | str, metres: float) -> tuple[float, float]:
    """Move (lat, lon) by ``metres`` due north, east, south or west on the WGS84 ellipsoid.

    Δlat = d / M(φ) and Δlon = d / (N(φ)·cos φ); for north/south the radius is taken at the mid latitude, so the
    result agrees with ``pyproj.Geod(ellps="WGS84").fwd`` to well under 1e-6° for offsets of a few hundred metres.
    Crossing the antimeridian wraps the longitude into [-180, 180).

    Returns:
        The new ``(lat, lon)`` in degrees.
    """
    direction = str(direction).upper()
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of N, E, S, W, got {direction!r}")
    if direction in ("N", "S"):
        sign = 1.0 if direction == "N" else -1.0
        dlat = math.degrees(sign * metres / meridional_radius(lat))
        # one refinement with the radius at the mid latitude (second-order accurate)
        dlat = math.degrees(sign * metres / meridional_radius(lat + dlat / 2))
        return lat + dlat, wrap_longitude(lon)
    sign = 1.0 if direction == "E" else -1.0
    cos_phi = math.cos(math.radians(lat))
    if cos_phi < 1e-12:
        raise ValueError("cannot move east or west at a pole")
    dlon = math.degrees(sign * metres / (prime_vertical_radius(lat) * cos_phi))
    return lat, wrap_longitude(lon + dlon)


def footprint_bbox(
    lat: float, lon: float, size_px: int = 512, resolution_m: float = 0.5
) -> tuple[float, float, float, float]:
    """Ground footprint ``(west, south, east, north)`` in degrees of a square crop centred on (lat, lon).

    The crop is ``size_px × resolution_m`` metres on a side (256 m for the defaults). Edges are computed in
    Web-Mercator pixel space, exactly as :func:`dataset.imagery.crop.crop_at` cuts the image, so the footprint
    matches the image. ``west`` may be greater than ``east`` when the crop straddles the antimeridian.
    """
    check_latitude(lat)
    zoom = zoom_for_resolution(lat, resolution_m)
    half = size_px * resolution_m / metres_per_pixel(lat, zoom) / 2
    px, py = global_pixel(lat, lon, zoom)
    west, north = pixel_to_lonlat(px - half, py - half, zoom)
    east, south = pixel_to_lonlat(px + half, py + half, zoom)
    return wrap_longitude(west), south, wrap_longitude(east), north
