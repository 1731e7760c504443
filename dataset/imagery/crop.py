"""A square aerial image centred on a coordinate at a target ground resolution, cut from an imagery source.

From a tile pyramid, the zoom is the coarsest one whose pixels are at least as fine as the target (capped at the
source's finest level, then upsampled); the covering tiles are stitched and the window is resampled with Lanczos
from a float box, so the point lands on the exact centre of the output, to a fraction of a pixel.

A :class:`FrameSource` (a GeoTIFF, a WMS) renders the same frame itself: ``geo.mercator_frame`` gives the crop's
pixel grid in Web-Mercator metres, and the source warps or requests exactly that grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from annotator.errors import ImageryError
from annotator.vocabulary import ImageryFailure
from dataset.imagery.base import TileSource
from dataset.imagery.geo import (
    EQUATOR_MPP_Z0,
    MAX_ZOOM,
    TILE_SIZE,
    check_latitude,
    footprint_bbox,
    global_pixel,
    metres_per_pixel,
    zoom_for_resolution,
)

DEFAULT_SIZE_PX = 512
DEFAULT_RESOLUTION_M = 0.5


@dataclass(frozen=True)
class Crop:
    """An image cut at a point.

    Attributes:
        image: ``size_px × size_px`` RGB image, north up, the point at its centre.
        footprint: Ground covered, ``(west, south, east, north)`` in degrees.
        zoom: The tile zoom level the pixels came from.
        resolution_m: Metres per pixel of ``image`` (the target resolution).
        native_resolution_m: Metres per pixel of the source at ``zoom``; larger than ``resolution_m`` when the
            source could not reach the target and the image was upsampled.
        acquired: When the imagery was taken (ISO 8601 date or date-time), where the source says it.

    For a :class:`FrameSource`, ``zoom`` is the Web-Mercator zoom whose resolution at the point is nearest the
    source's own (for the record: no tiles were read).
    """

    image: Image.Image
    footprint: tuple[float, float, float, float]
    zoom: int
    resolution_m: float
    native_resolution_m: float
    acquired: str | None = None

    @property
    def upsampled(self) -> bool:
        return self.native_resolution_m > self.resolution_m * (1 + 1e-9)


class FrameSource(TileSource):
    """A source that renders a crop's frame in one go (a GeoTIFF warped into it, a WMS asked for it), not from
    XYZ tiles; :func:`crop_at` hands such a source the frame. It is a :class:`TileSource` by type only, so every
    caller that opens a SOURCE keeps one type; it has no tiles to give.
    """

    def read_tile_bytes(self, z: int, x: int, y: int) -> bytes | None:
        return None

    def crop(self, lat: float, lon: float, *, size_px: int, resolution_m: float) -> Crop:
        """The ``size_px`` square image of :func:`geo.mercator_frame` at (lat, lon); the point is checked already.

        Raises:
            ImageryError: The source has no image there (its ``reason`` says why).
        """
        raise NotImplementedError


def equivalent_zoom(lat: float, native_resolution_m: float) -> int:
    """The Web-Mercator zoom whose ground resolution at ``lat`` is nearest ``native_resolution_m`` (metres/px)."""
    ideal = math.log2(EQUATOR_MPP_Z0 * math.cos(math.radians(lat)) / native_resolution_m)
    return max(0, min(MAX_ZOOM, round(ideal)))


def choose_zoom(source: TileSource, lat: float, resolution_m: float) -> int:
    """The zoom to read for ``resolution_m`` at ``lat``, within the source's zoom range."""
    return max(source.min_zoom, min(source.max_zoom, zoom_for_resolution(lat, resolution_m)))


def crop_at(
    source: TileSource,
    lat: float,
    lon: float,
    *,
    size_px: int = DEFAULT_SIZE_PX,
    resolution_m: float = DEFAULT_RESOLUTION_M,
) -> Crop:
    """Cut a ``size_px`` square image centred on (lat, lon) at ``resolution_m`` metres per pixel.

    Raises:
        ImageryError: The point is beyond Web-Mercator's ±85.0511° or not a number, a covering tile is missing
            at the source, or a tile cannot be read.
    """
    if size_px < 1:
        raise ValueError(f"size_px must be positive, got {size_px}")
    if not math.isfinite(lon):
        raise ImageryError(f"longitude {lon} is not a number", reason=ImageryFailure.OUT_OF_RANGE)
    check_latitude(lat)
    if isinstance(source, FrameSource):
        return source.crop(lat, lon, size_px=size_px, resolution_m=resolution_m)
    zoom = choose_zoom(source, lat, resolution_m)
    native = metres_per_pixel(lat, zoom)
    window_m = size_px * resolution_m

    # The first tile tells the source's tile size (256, or 512 for "retina" pyramids): work in its pixels.
    px, py = global_pixel(lat, lon, zoom)
    tile_size = source.tile_size or _probe_tile_size(source, zoom, px, py)
    scale = tile_size / TILE_SIZE
    cx, cy = px * scale, py * scale
    half = window_m / native * scale / 2
    window = (cx - half, cy - half, cx + half, cy + half)
    image = _stitch_window(source, zoom, tile_size, window).resize(
        (size_px, size_px), Image.Resampling.LANCZOS, box=_window_in_canvas(window, tile_size)
    )
    return Crop(
        image=image,
        footprint=footprint_bbox(lat, lon, size_px, resolution_m),
        zoom=zoom,
        resolution_m=resolution_m,
        native_resolution_m=native,
    )


def _tile_span(lo: float, hi: float, tile_size: int) -> tuple[int, int]:
    """First and last tile index covering the pixel interval ``[lo, hi)``."""
    return math.floor(lo / tile_size), math.floor(math.nextafter(hi, -math.inf) / tile_size)


def _stitch_window(
    source: TileSource, zoom: int, tile_size: int, window: tuple[float, float, float, float]
) -> Image.Image:
    """The tiles covering ``window`` (x0, y0, x1, y1 in global pixels of the source at ``zoom``), pasted edge to edge.

    Raises:
        ImageryError: A covering tile is missing at the source (``tile_missing``) or unreadable.
    """
    x0, y0, x1, y1 = window
    n = 1 << zoom
    (tx0, tx1), (ty0, ty1) = _tile_span(x0, x1, tile_size), _tile_span(y0, y1, tile_size)
    # Columns wrap across the antimeridian; rows beyond the world's edge (only near ±85°) stay black.
    keys = {(tx, ty): (zoom, tx % n, ty) for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1) if 0 <= ty < n}
    tiles = source.tiles(keys.values())
    canvas = Image.new("RGB", ((tx1 - tx0 + 1) * tile_size, (ty1 - ty0 + 1) * tile_size))
    for (tx, ty), key in keys.items():
        tile = tiles[key]
        if tile is None:
            z, x, y = key
            raise ImageryError(f"tile {z}/{x}/{y} missing at {source.describe()}", reason=ImageryFailure.TILE_MISSING)
        canvas.paste(tile, ((tx - tx0) * tile_size, (ty - ty0) * tile_size))
    return canvas


def _window_in_canvas(window: tuple[float, float, float, float], tile_size: int) -> tuple[float, float, float, float]:
    """``window`` relative to the top-left corner of the stitched canvas (its first tile's corner)."""
    x0, y0, x1, y1 = window
    ox, oy = math.floor(x0 / tile_size) * tile_size, math.floor(y0 / tile_size) * tile_size
    return (x0 - ox, y0 - oy, x1 - ox, y1 - oy)


def _probe_tile_size(source: TileSource, zoom: int, px: float, py: float) -> int:
    n = 1 << zoom
    x, y = min(int(px // TILE_SIZE), n - 1), min(int(py // TILE_SIZE), n - 1)
    tile = source.tile(zoom, x, y)
    if tile is None:
        raise ImageryError(f"tile {zoom}/{x}/{y} missing at {source.describe()}", reason=ImageryFailure.TILE_MISSING)
    return tile.width
