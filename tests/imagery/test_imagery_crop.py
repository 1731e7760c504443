"""Crops from local sources: the marker at a known coordinate lands at the image centre; folder, template and
MBTiles (TMS y flip) sources agree; bad sources and points give clear errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from annotator.errors import ImageryError, ImagerySourceError
from dataset.imagery import geo
from dataset.imagery.crop import crop_at
from dataset.imagery.sources import MBTilesSource, PathTemplateSource, XYZFolderSource, open_source

from .tilegen import marker_centroid, marker_tiles, tiles_around, write_folder, write_mbtiles

LAT, LON = 60.4, 26.8
ZOOM = 18  # 0.295 m/px at 60.4° N: the zoom a 0.5 m/px crop needs


def _marker_setup(lat: float, lon: float, zoom: int, *, frac: tuple[float, float] = (5.5, -3.25)):
    """A point placed ``frac`` source pixels away from a marker that sits on a tile corner (4 tiles share it)."""
    px, py = geo.global_pixel(lat, lon, zoom)
    corner = (round(px / 256) * 256, round(py / 256) * 256)
    lon_p, lat_p = geo.pixel_to_lonlat(corner[0] + frac[0], corner[1] + frac[1], zoom)
    tiles = marker_tiles(tiles_around(lat_p, lon_p, zoom), corner)
    return (lat_p, lon_p), tiles


def _expected_marker(lat: float, zoom: int, frac: tuple[float, float], size: int = 512, res: float = 0.5):
    scale = geo.metres_per_pixel(lat, zoom) / res  # output px per source px
    return size / 2 - frac[0] * scale, size / 2 - frac[1] * scale


def test_marker_at_known_coordinate_lands_where_expected(tmp_path: Path) -> None:
    frac = (5.5, -3.25)
    (lat, lon), tiles = _marker_setup(LAT, LON, ZOOM, frac=frac)
    with open_source(str(write_folder(tmp_path / "tiles", tiles))) as source:
        crop = crop_at(source, lat, lon)
    assert crop.image.size == (512, 512) and crop.image.mode == "RGB"
    assert crop.zoom == ZOOM
    cx, cy = marker_centroid(crop.image)
    ex, ey = _expected_marker(lat, ZOOM, frac)
    assert abs(cx - ex) < 0.25 and abs(cy - ey) < 0.25, ((cx, cy), (ex, ey))


def test_point_on_the_marker_is_the_exact_centre(tmp_path: Path) -> None:
    (lat, lon), tiles = _marker_setup(LAT, LON, ZOOM, frac=(0.0, 0.0))
    with open_source(str(write_folder(tmp_path / "tiles", tiles))) as source:
        crop = crop_at(source, lat, lon, size_px=256, resolution_m=0.25)  # upsampled: the source stops at z18
    cx, cy = marker_centroid(crop.image)
    assert abs(cx - 128.0) < 1.0 and abs(cy - 128.0) < 1.0
    assert crop.upsampled and crop.native_resolution_m == pytest.approx(geo.metres_per_pixel(lat, ZOOM))
    assert crop.resolution_m == 0.25


def test_crop_across_the_antimeridian_stitches_both_sides(tmp_path: Path) -> None:
    frac = (2.0, 2.0)
    zoom = 17
    (lat, lon), tiles = _marker_setup(0.0, 179.9999, zoom, frac=frac)
    xs = {x for _, x, _ in tiles}
    assert 0 in xs and (1 << zoom) - 1 in xs  # the tile set really wraps
    with open_source(str(write_folder(tmp_path / "tiles", tiles))) as source:
        crop = crop_at(source, lat, lon)
    cx, cy = marker_centroid(crop.image)
    ex, ey = _expected_marker(lat, zoom, frac)
    assert abs(cx - ex) < 0.5 and abs(cy - ey) < 0.5
    west, _, east, _ = crop.footprint
    assert west > 0 > east


def test_footprint_and_provenance(tmp_path: Path) -> None:
    (lat, lon), tiles = _marker_setup(LAT, LON, ZOOM)
    with open_source(str(write_folder(tmp_path / "tiles", tiles))) as source:
        crop = crop_at(source, lat, lon)
        assert source.tiles_decoded > 0
    assert crop.footprint == pytest.approx(geo.footprint_bbox(lat, lon, 512, 0.5))
    assert crop.resolution_m == 0.5 and not crop.upsampled


def test_folder_template_and_mbtiles_give_the_same_pixels(tmp_path: Path) -> None:
    (lat, lon), tiles = _marker_setup(LAT, LON, ZOOM)
    folder = write_folder(tmp_path / "tiles", tiles)
    mbtiles = write_mbtiles(tmp_path / "t.mbtiles", tiles)
    template = str(folder) + "/{z}/{x}/{y}.png"
    sources = [open_source(str(folder)), open_source(template), open_source(str(mbtiles))]
    assert [type(s) for s in sources] == [XYZFolderSource, PathTemplateSource, MBTilesSource]
    images = []
    for source in sources:
        with source:
            assert (source.min_zoom, source.max_zoom) == (ZOOM, ZOOM)
            images.append(crop_at(source, lat, lon).image.tobytes())
    assert images[0] == images[1] == images[2]


def test_mbtiles_rows_are_flipped_tms(tmp_path: Path) -> None:
    tile = Image.new("RGB", (256, 256), (200, 10, 10))
    path = write_mbtiles(tmp_path / "one.mbtiles", {(3, 2, 1): tile}, with_zoom_metadata=False)
    with sqlite3.connect(path) as db:  # stored at the TMS row
        assert db.execute("SELECT tile_row FROM tiles").fetchone() == (6,)
    with open_source(str(path)) as source:
        assert (source.min_zoom, source.max_zoom) == (3, 3)  # from the tiles table when metadata lacks them
        got = source.tile(3, 2, 1)
        assert got is not None and got.getpixel((5, 5)) == (200, 10, 10)
        assert source.tile(3, 2, 6) is None  # the un-flipped row is not there


def test_folder_detects_jpeg_tiles(tmp_path: Path) -> None:
    (lat, lon), tiles = _marker_setup(LAT, LON, ZOOM)
    with open_source(str(write_folder(tmp_path / "jpg", tiles, ext="jpg"))) as source:
        crop = crop_at(source, lat, lon)
    ex, ey = _expected_marker(lat, ZOOM, (5.5, -3.25))
    cx, cy = marker_centroid(crop.image)
    assert abs(cx - ex) < 1.0 and abs(cy - ey) < 1.0


def test_retina_512px_tiles(tmp_path: Path) -> None:
    # 512-px tiles at zoom z hold the detail of 256-px tiles at z+1: the crop works in the source's pixels.
    frac = (4.0, 4.0)
    px, py = geo.global_pixel(LAT, LON, ZOOM)
    corner = (round(px / 256) * 256, round(py / 256) * 256)
    lon_p, lat_p = geo.pixel_to_lonlat(corner[0] + frac[0], corner[1] + frac[1], ZOOM)
    tiles = marker_tiles(tiles_around(lat_p, lon_p, ZOOM), (corner[0] * 2, corner[1] * 2), half=6, tile_size=512)
    with open_source(str(write_folder(tmp_path / "retina", tiles))) as source:
        crop = crop_at(source, lat_p, lon_p)
        assert source.tile_size == 512
    cx, cy = marker_centroid(crop.image)
    ex, ey = _expected_marker(lat_p, ZOOM, frac)
    assert abs(cx - ex) < 1.0 and abs(cy - ey) < 1.0


def test_missing_tile_is_an_error_naming_the_tile(tmp_path: Path) -> None:
    (lat, lon), tiles = _marker_setup(LAT, LON, ZOOM)
    folder = write_folder(tmp_path / "tiles", tiles)
    x, y = geo.tile_of(lat, lon, ZOOM)
    (folder / str(ZOOM) / str(x) / f"{y}.png").unlink()
    with open_source(str(folder)) as source, pytest.raises(ImageryError, match=f"tile {ZOOM}/{x}/{y} missing at"):
        crop_at(source, lat, lon)


def test_point_beyond_web_mercator_is_an_error(tmp_path: Path) -> None:
    (_, _), tiles = _marker_setup(LAT, LON, ZOOM)
    with (
        open_source(str(write_folder(tmp_path / "tiles", tiles))) as source,
        pytest.raises(ImageryError, match="85.05"),
    ):
        crop_at(source, 86.0, 10.0)


def test_adjacent_crops_share_decoded_tiles(tmp_path: Path) -> None:
    (lat, lon), tiles = _marker_setup(LAT, LON, ZOOM)
    with open_source(str(write_folder(tmp_path / "tiles", tiles))) as source:
        crop_at(source, lat, lon)
        first = source.tiles_decoded
        crop_at(source, *geo.offset_point(lat, lon, "E", 10.0))
        assert source.tiles_decoded - first < first  # most tiles came from the cache


def test_corrupt_tile_is_an_error(tmp_path: Path) -> None:
    (lat, lon), tiles = _marker_setup(LAT, LON, ZOOM)
    folder = write_folder(tmp_path / "tiles", tiles)
    x, y = geo.tile_of(lat, lon, ZOOM)
    (folder / str(ZOOM) / str(x) / f"{y}.png").write_bytes(b"not a png")
    with open_source(str(folder)) as source, pytest.raises(ImageryError, match="not a readable image"):
        crop_at(source, lat, lon)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: str(p / "nowhere"), "does not exist"),
        (lambda p: str(p / "nowhere.mbtiles"), "MBTiles file .* does not exist"),
        (lambda p: _empty_dir(p), "no zoom-level subfolders"),
        (lambda p: _text_file(p, "notes.txt"), "not an .mbtiles file"),
        (lambda p: _text_file(p, "bad.mbtiles"), "not a readable MBTiles"),
        (lambda p: "ftp://example.org/{z}/{x}/{y}.png", "unsupported scheme"),
        (lambda p: "https://tiles.example.org/{z}/{x}.png", "lacks {z}, {x} and {y}"),
        (lambda p: "  ", "empty"),
    ],
)
def test_unusable_sources_say_what_was_expected(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ImagerySourceError, match=message) as info:
        open_source(make(tmp_path))
    if message in ("empty", "does not exist"):
        assert "expected a tile folder" in str(info.value)


def _empty_dir(root: Path) -> str:
    (root / "empty").mkdir()
    return str(root / "empty")


def _text_file(root: Path, name: str) -> str:
    (root / name).write_text("hello")
    return str(root / name)
