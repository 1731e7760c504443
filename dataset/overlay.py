"""The evidence overlay: an aerial crop with OSM geometries drawn on it, the recording point marked.

A pure function of its inputs (image, footprint, geometries, point, caption) → JPEG bytes, so it can be tested
pixel by pixel and rendered anywhere. Coordinates are projected to pixels exactly as
:func:`dataset.imagery.crop.crop_at` cuts the image: the crop is a square window of Web-Mercator pixels whose
corners are the footprint (:func:`dataset.imagery.geo.footprint_bbox`), so a lon/lat maps linearly, in
Web-Mercator pixel space (:func:`dataset.imagery.geo.global_pixel`), from the footprint's corners to the image's.

Geometries are GeoJSON-like dicts (``{"type": "Polygon", "coordinates": [[[lon, lat], …], …]}``; Point,
LineString, Polygon and their Multi forms). Each is drawn in its class's colour: polygons lightly filled with
their outline, lines as lines, points as dots; the deciding element's outline is thicker.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from annotator.vocabulary import SceneClass
from dataset.imagery.geo import global_pixel

OVERLAY_SIZE = 512
OVERLAY_QUALITY = 90  # as the export's images (dataset.images.JPEG_QUALITY)
#: Any zoom gives the same linear map; a high one keeps the numbers well-conditioned.
_ZOOM = 20
_WORLD = 256.0 * 2**_ZOOM
#: One colour per class, in SceneClass order; chosen to stay visible on aerial imagery and apart from each other.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    c.value: rgb
    for c, rgb in zip(
        SceneClass,
        [
            (255, 0, 255),  # airport: magenta
            (255, 235, 0),  # beach: yellow
            (255, 90, 0),  # bridge: orange
            (255, 180, 40),  # farmland: amber
            (0, 210, 60),  # forest: green
            (180, 255, 80),  # grassland: lime
            (0, 110, 255),  # harbour: blue
            (0, 235, 255),  # lake: cyan
            (200, 130, 255),  # orchard: lavender
            (255, 40, 40),  # residential: red
            (205, 150, 90),  # sparse shrub land: tan
            (255, 120, 200),  # sports land: pink
            (140, 70, 255),  # train station: violet
        ],
        strict=True,
    )
}
UNKNOWN_COLOUR = (200, 200, 200)
_FILL_ALPHA = 0.22
_HALO = (0, 0, 0)

Bounds = tuple[float, float, float, float]  # (west, south, east, north) in degrees


@dataclass(frozen=True)
class OverlayShape:
    """One geometry to draw: GeoJSON-like ``geometry`` (None: nothing stored), its class and whether it decided."""

    geometry: Mapping[str, Any] | None
    label: str | None
    decided: bool = False


def class_colour(label: str | None) -> tuple[int, int, int]:
    """The RGB colour a class is drawn in (grey for an unknown one)."""
    return CLASS_COLOURS.get(label or "", UNKNOWN_COLOUR)


@dataclass(frozen=True)
class Projection:
    """lon/lat → continuous pixel coordinates of a ``size`` square crop whose footprint is ``bounds``.

    ``(0, 0)`` is the top-left corner of the top-left pixel, ``(size, size)`` the bottom-right corner of the last;
    the pixel (i, j) covers ``[i, i+1) × [j, j+1)``.
    """

    x0: float
    y0: float
    sx: float
    sy: float

    @classmethod
    def of(cls, bounds: Bounds, size: int = OVERLAY_SIZE) -> Projection:
        west, south, east, north = bounds
        x0, y0 = global_pixel(north, west, _ZOOM)
        x1, y1 = global_pixel(south, east, _ZOOM)
        if x1 <= x0:  # the footprint straddles the antimeridian
            x1 += _WORLD
        return cls(x0=x0, y0=y0, sx=size / (x1 - x0), sy=size / (y1 - y0))

    def __call__(self, lon: float, lat: float) -> tuple[float, float]:
        gx, gy = global_pixel(lat, lon, _ZOOM)
        if gx < self.x0 - _WORLD / 2:
            gx += _WORLD
        return (gx - self.x0) * self.sx, (gy - self.y0) * self.sy

    def ring(self, coords: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
        """A coordinate list as PIL drawing coordinates (pixel centres are integers: continuous − 0.5)."""
        out = []
        for c in coords:
            x, y = self(float(c[0]), float(c[1]))
            out.append((x - 0.5, y - 0.5))
        return out


def _parts(geometry: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(simple type, coordinates) of each part of a GeoJSON-like geometry."""
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if coords is None:
        return
    if kind in ("Point", "LineString", "Polygon"):
        yield kind, coords
    elif kind in ("MultiPoint", "MultiLineString", "MultiPolygon"):
        for part in coords:
            yield kind[5:], part
    elif kind == "GeometryCollection":
        for sub in geometry.get("geometries") or []:
            yield from _parts(sub)


def _load(image: bytes | np.ndarray | Image.Image, size: int) -> Image.Image:
    img: Image.Image
    if isinstance(image, bytes | bytearray):
        img = Image.open(io.BytesIO(image))
    elif isinstance(image, np.ndarray):
        img = Image.fromarray(image)
    else:
        img = image
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return img


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fill_polygons(img: Image.Image, polygons: list[tuple[list[Any], tuple[int, int, int]]]) -> None:
    """Tint the inside of every polygon (holes left clear) with its colour, lightly, in place."""
    alpha = round(255 * _FILL_ALPHA)
    for rings, colour in polygons:
        if not rings or len(rings[0]) < 3:
            continue
        points = rings[0]  # holes lie inside the outer ring
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        left, top = max(0, int(min(xs))), max(0, int(min(ys)))
        right, bottom = min(img.width, int(max(xs)) + 2), min(img.height, int(max(ys)) + 2)
        if right <= left or bottom <= top:
            continue
        mask = Image.new("L", (right - left, bottom - top), 0)
        draw = ImageDraw.Draw(mask)
        for n, ring in enumerate(rings):
            if len(ring) >= 3:
                draw.polygon([(x - left, y - top) for x, y in ring], fill=alpha if n == 0 else 0)
        img.paste(colour, (left, top, right, bottom), mask)


def _line(
    draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour: tuple[int, int, int], width: int
) -> None:
    if len(points) < 2:
        return
    draw.line(points, fill=_HALO, width=width + 2, joint="curve")
    draw.line(points, fill=colour, width=width, joint="curve")


def _dot(draw: ImageDraw.ImageDraw, xy: tuple[float, float], radius: float, colour: tuple[int, int, int]) -> None:
    x, y = xy
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour, outline=_HALO, width=2)


def _mark_point(draw: ImageDraw.ImageDraw, xy: tuple[float, float]) -> None:
    """The recording point: a white ring with a cross, outlined in black so it shows on any ground."""
    x, y = xy
    for colour, width in ((_HALO, 5), ((255, 255, 255), 2)):
        draw.ellipse((x - 9, y - 9, x + 9, y + 9), outline=colour, width=width)
        draw.line((x - 15, y, x - 5, y), fill=colour, width=width)
        draw.line((x + 5, y, x + 15, y), fill=colour, width=width)
        draw.line((x, y - 15, x, y - 5), fill=colour, width=width)
        draw.line((x, y + 5, x, y + 15), fill=colour, width=width)


def _shade(img: Image.Image, box: tuple[int, int, int, int], alpha: int) -> None:
    """Darken `box` of `img` in place (a translucent black panel for text)."""
    left, top, right, bottom = (max(0, box[0]), max(0, box[1]), min(img.width, box[2]), min(img.height, box[3]))
    if right > left and bottom > top:
        img.paste((0, 0, 0), (left, top, right, bottom), Image.new("L", (right - left, bottom - top), alpha))


def _legend(img: Image.Image, entries: list[tuple[str, tuple[int, int, int]]], caption: str | None) -> None:
    """Class swatches bottom-left and the caption along the top, on translucent dark panels, in place."""
    if not entries and not caption:
        return
    font = _font(13)
    draw = ImageDraw.Draw(img)
    line_h = 17
    if entries:
        width = max(int(draw.textlength(text, font=font)) for text, _ in entries) + 30
        top = img.height - 8 - line_h * len(entries) - 6
        _shade(img, (6, top, 7 + width, img.height - 5), 150)
        for n, (text, colour) in enumerate(entries):
            y = top + 4 + n * line_h
            draw.rectangle((12, y + 2, 24, y + 13), fill=colour, outline=(255, 255, 255))
            draw.text((30, y), text, fill=(255, 255, 255), font=font)
    if caption:
        width = int(draw.textlength(caption, font=font)) + 12
        _shade(img, (6, 6, 7 + width, 7 + line_h + 4), 160)
        draw.text((12, 8), caption, fill=(255, 255, 255), font=font)


def render_overlay(
    image: bytes | np.ndarray | Image.Image,
    bounds: Bounds,
    shapes: Sequence[OverlayShape],
    point: tuple[float, float],
    *,
    caption: str | None = None,
    size: int = OVERLAY_SIZE,
    quality: int = OVERLAY_QUALITY,
) -> bytes:
    """The overlay JPEG: `image` (the crop whose footprint is `bounds`, resized to `size` if it is not) with
    `shapes` drawn in their class colours, the footprint framed, the recording `point` (lon, lat) marked, a
    legend of the classes drawn and `caption` along the top."""
    img = _load(image, size)
    project = Projection.of(bounds, size)
    fills: list[tuple[list[Any], tuple[int, int, int]]] = []
    strokes: list[tuple[str, list[tuple[float, float]], tuple[int, int, int], int]] = []
    legend: dict[str, tuple[int, int, int]] = {}
    for shape in shapes:
        if not shape.geometry:
            continue
        colour = class_colour(shape.label)
        width = 4 if shape.decided else 2
        drawn = False
        for kind, coords in _parts(shape.geometry):
            if kind == "Point":
                strokes.append(("dot", project.ring([coords]), colour, width))
            elif kind == "LineString":
                strokes.append(("line", project.ring(coords), colour, width))
            elif kind == "Polygon":
                rings = [project.ring(r) for r in coords]
                fills.append((rings, colour))
                strokes.extend(("line", r, colour, width) for r in rings)
            else:
                continue
            drawn = True
        if drawn:
            name = shape.label or "no class"
            key = f"{name} (decided)" if shape.decided else name
            legend.setdefault(key, colour)
    _fill_polygons(img, fills)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, size - 1, size - 1), outline=(255, 255, 255), width=1)  # the footprint's edge
    for kind, points, colour, width in strokes:
        if kind == "dot":
            _dot(draw, points[0], 3 + width, colour)
        else:
            _line(draw, points, colour, width)
    cx, cy = project(*point)
    _mark_point(draw, (cx - 0.5, cy - 0.5))
    _legend(img, list(legend.items()), caption)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality, subsampling=0, optimize=False)
    return out.getvalue()
