"""The evidence overlay lands on the crop's pixels: a square painted into generated tiles, cropped with the real
crop code, and drawn from its lon/lat corners must coincide (within a pixel); holes stay clear; evidence without
geometry still renders, with its caption."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset.imagery import geo
from dataset.imagery.crop import crop_at
from dataset.imagery.sources import open_source
from dataset.overlay import OverlayShape, Projection, class_colour, render_overlay

from .tilegen import marker_tiles, tiles_around, write_folder

LAT, LON = 60.4, 26.8
ZOOM = 18  # the zoom a 0.5 m/px crop reads at 60.4° N
HALF = 40  # the painted square's half side, in tile pixels
OFFSET = (-150, 110)  # the square's centre from the point, in tile pixels (west and south of it)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    """A crop of generated tiles with a white square away from the centre, and the square's lon/lat ring."""
    px, py = geo.global_pixel(LAT, LON, ZOOM)
    centre = (round(px) + OFFSET[0], round(py) + OFFSET[1])
    tiles = marker_tiles(tiles_around(LAT, LON, ZOOM, radius=2), centre, half=HALF)
    folder = write_folder(tmp_path_factory.mktemp("tiles"), tiles)
    with open_source(str(folder)) as source:
        crop = crop_at(source, LAT, LON)
    x0, y0, x1, y1 = centre[0] - HALF, centre[1] - HALF, centre[0] + HALF, centre[1] + HALF
    ring = [list(geo.pixel_to_lonlat(x, y, ZOOM)) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    return crop, ring


def _bright_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Continuous bounds (left, top, right, bottom) of the pixels brighter than half."""
    grey = np.asarray(image.convert("L"))
    ys, xs = np.nonzero(grey > 128)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_projection_puts_the_square_where_the_crop_shows_it(scene) -> None:
    crop, ring = scene
    left, top, right, bottom = _bright_box(crop.image)
    assert right - left > 40 and left > 20 and bottom < 500  # the square is in the crop, away from its edges
    project = Projection.of(crop.footprint, 512)
    xs, ys = zip(*(project(lon, lat) for lon, lat in ring), strict=True)
    assert min(xs) == pytest.approx(left, abs=1.0) and max(xs) == pytest.approx(right, abs=1.0)
    assert min(ys) == pytest.approx(top, abs=1.0) and max(ys) == pytest.approx(bottom, abs=1.0)
    cx, cy = project(LON, LAT)
    assert cx == pytest.approx(256, abs=1e-6) and cy == pytest.approx(256, abs=1e-6)  # the point: the exact centre


def _decoded(jpeg: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (512, 512)
    return np.asarray(image.convert("RGB"), dtype=np.int32)


def _near(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 60) -> bool:
    return bool(np.abs(pixel - np.asarray(colour)).max() <= tol)


def test_outline_is_drawn_on_the_square_edges_in_the_class_colour(scene) -> None:
    crop, ring = scene
    left, top, right, bottom = _bright_box(crop.image)
    shape = OverlayShape({"type": "Polygon", "coordinates": [ring]}, "forest", decided=True)
    pixels = _decoded(render_overlay(crop.image, crop.footprint, [shape], (LON, LAT)))
    green = class_colour("forest")
    mid_y, mid_x = (top + bottom) // 2, (left + right) // 2
    for y, x in ((mid_y, left), (mid_y, right - 1), (top, mid_x), (bottom - 1, mid_x)):  # on each edge
        assert _near(pixels[y, x], green), (x, y, pixels[y, x])
    background = np.asarray(crop.image, dtype=np.int32)
    assert np.abs(pixels[mid_y, left - 12] - background[mid_y, left - 12]).max() < 30  # outside: untouched
    inside = pixels[mid_y, mid_x]
    assert inside[1] > inside[0] and inside[1] > inside[2]  # inside: tinted green over the white square


def test_holes_stay_clear_and_the_point_is_marked() -> None:
    bounds = geo.footprint_bbox(LAT, LON)
    west, south, east, north = bounds
    outer = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    mx, my = (west + east) / 2, (south + north) / 2
    dx, dy = (east - west) / 8, (north - south) / 8
    hole = [[mx - dx, my - dy], [mx + dx, my - dy], [mx + dx, my + dy], [mx - dx, my + dy], [mx - dx, my - dy]]
    grey = np.full((512, 512, 3), 100, dtype=np.uint8)
    geometry = {"type": "MultiPolygon", "coordinates": [[outer, hole]]}
    pixels = _decoded(render_overlay(grey, bounds, [OverlayShape(geometry, "lake")], (LON, LAT)))
    assert np.abs(pixels[256 + 40, 256 + 40] - 100).max() < 8  # in the hole, off the point marker: untouched
    tinted = pixels[40, 256]  # filled part: tinted towards cyan
    assert tinted[2] > 110 and tinted[0] < 95
    ring = pixels[256, 256 + 9]  # the point marker's ring, 9 px right of the centre: white or its black halo
    assert ring.min() > 200 or ring.max() < 60


def test_evidence_without_geometry_renders_footprint_point_and_caption(tmp_path: Path) -> None:
    bounds = geo.footprint_bbox(LAT, LON)
    grey = np.full((512, 512, 3), 100, dtype=np.uint8)
    plain = _decoded(render_overlay(grey, bounds, [OverlayShape(None, "forest", decided=True)], (LON, LAT)))
    captioned = _decoded(
        render_overlay(grey, bounds, [OverlayShape(None, "forest")], (LON, LAT), caption="no geometry stored")
    )
    assert np.abs(plain[100:400, 100:200] - 100).max() < 8  # nothing drawn but the point and the frame
    assert np.abs(captioned[8:24, 10:100] - plain[8:24, 10:100]).max() > 100  # the caption's text
    assert np.abs(plain[256, 240] - 100).max() > 50  # the point's cross arm
