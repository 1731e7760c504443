"""Tile maths against mercantile and published numbers; metre offsets against pyproj.Geod (WGS84)."""

from __future__ import annotations

import random

import mercantile
import pytest
from pyproj import Geod

from annotator.errors import ImageryError
from dataset.imagery import geo

GEOD = Geod(ellps="WGS84")


def test_tiles_match_mercantile_at_random_points() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        lat = rng.uniform(-85.0, 85.0)
        lon = rng.uniform(-180.0, 179.999)
        zoom = rng.randint(0, 22)
        expected = mercantile.tile(lon, lat, zoom)  # mercantile takes lon first
        assert geo.tile_of(lat, lon, zoom) == (expected.x, expected.y), (lat, lon, zoom)


def test_global_pixel_matches_mercantile_tile_bounds() -> None:
    # The north-west corner of a tile is a whole multiple of 256 px.
    tile = mercantile.Tile(x=74695, y=37943, z=17)
    west, _, _, north = mercantile.bounds(tile)
    px, py = geo.global_pixel(north, west, tile.z)
    assert px == pytest.approx(tile.x * 256, abs=1e-6)
    assert py == pytest.approx(tile.y * 256, abs=1e-6)


def test_published_tile_numbers_and_resolutions() -> None:
    # OSM wiki "Slippy map tilenames"/"Zoom levels": zoom 0 is one tile of 156543.03 m/px at the equator,
    # z18 is 0.597 m/px; notes/osm.md: 0.74 m/px at z17, 51.5° N.
    assert geo.tile_of(0.0, 0.0, 0) == (0, 0)
    assert geo.tile_of(40.0, -105.0, 1) == (0, 0)
    assert geo.tile_of(-40.0, 105.0, 1) == (1, 1)
    assert geo.metres_per_pixel(0.0, 0) == pytest.approx(156543.034, abs=1e-3)
    assert geo.metres_per_pixel(0.0, 18) == pytest.approx(0.597, abs=1e-3)
    assert geo.metres_per_pixel(51.5, 17) == pytest.approx(0.74, abs=0.005)


def test_zoom_for_resolution_is_the_coarsest_zoom_reaching_the_target() -> None:
    for lat in (0.0, 30.0, 51.5, 60.4, -70.0):
        for resolution in (0.3, 0.5, 1.0, 10.0):
            zoom = geo.zoom_for_resolution(lat, resolution)
            assert geo.metres_per_pixel(lat, zoom) <= resolution
            assert geo.metres_per_pixel(lat, zoom - 1) > resolution
    assert geo.zoom_for_resolution(60.4, 0.5) == 18
    assert geo.zoom_for_resolution(0.0, 0.01, max_zoom=19) == 19
    # exactly reaching the target counts: z18 at the equator is 0.597 m/px
    assert geo.zoom_for_resolution(0.0, geo.metres_per_pixel(0.0, 18)) == 18


def test_pixel_round_trip() -> None:
    for lat, lon in [(0.0, 0.0), (60.4, 26.8), (-33.9, 151.2), (85.0, -179.99), (-85.0, 179.99)]:
        for zoom in (0, 10, 18, 22):
            px, py = geo.global_pixel(lat, lon, zoom)
            back_lon, back_lat = geo.pixel_to_lonlat(px, py, zoom)
            assert back_lat == pytest.approx(lat, abs=1e-9)
            assert back_lon == pytest.approx(lon, abs=1e-9)


@pytest.mark.parametrize("lat", [85.06, -85.06, 90.0, float("nan")])
def test_latitude_beyond_web_mercator_is_an_imagery_error(lat: float) -> None:
    with pytest.raises(ImageryError, match="Web-Mercator"):
        geo.global_pixel(lat, 0.0, 10)
    with pytest.raises(ImageryError):
        geo.footprint_bbox(lat, 0.0)


AZIMUTH = {"N": 0.0, "E": 90.0, "S": 180.0, "W": 270.0}


@pytest.mark.parametrize(
    ("lat", "lon"), [(0.0, 0.0), (60.0, 24.9), (60.4, 26.8), (-60.0, -70.0), (0.0, 179.9995), (10.0, -179.9995)]
)
@pytest.mark.parametrize("metres", [64.0, 128.0, 500.0])
def test_offsets_match_pyproj_geod(lat: float, lon: float, metres: float) -> None:
    for direction, azimuth in AZIMUTH.items():
        new_lat, new_lon = geo.offset_point(lat, lon, direction, metres)
        ref_lon, ref_lat, _ = GEOD.fwd(lon, lat, azimuth, metres)
        assert new_lat == pytest.approx(ref_lat, abs=1e-6), direction
        assert (new_lon - ref_lon + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-6), direction
        assert -180.0 <= new_lon < 180.0


def test_offsets_wrap_across_the_antimeridian_and_round_trip() -> None:
    lat, lon = 0.0, 179.9995  # ~56 m west of the antimeridian
    east_lat, east_lon = geo.offset_point(lat, lon, "E", 100.0)
    assert east_lon < -179.99  # wrapped to the western hemisphere
    back = geo.offset_point(east_lat, east_lon, "W", 100.0)
    assert back == pytest.approx((lat, lon), abs=1e-9)
    for start in [(0.0, 0.0), (60.0, 10.0), (-45.0, -179.9999)]:
        north = geo.offset_point(*start, "N", 250.0)
        assert geo.offset_point(*north, "S", 250.0) == pytest.approx(start, abs=1e-8)


def test_offsets_are_the_distance_asked_for() -> None:
    lat, lon = 60.4, 26.8
    for direction, azimuth in AZIMUTH.items():
        new_lat, new_lon = geo.offset_point(lat, lon, direction, 64.0)
        fwd_az, _, distance = GEOD.inv(lon, lat, new_lon, new_lat)
        assert distance == pytest.approx(64.0, abs=1e-3)
        assert (fwd_az - azimuth + 180) % 360 - 180 == pytest.approx(0.0, abs=0.01)


def test_bad_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="N, E, S, W"):
        geo.offset_point(0.0, 0.0, "NE", 10.0)


def test_footprint_is_the_crop_size_on_the_ground() -> None:
    west, south, east, north = geo.footprint_bbox(60.4, 26.8, 512, 0.5)
    width_m = GEOD.inv(west, 60.4, east, 60.4)[2]
    height_m = GEOD.inv(26.8, south, 26.8, north)[2]
    # Web-Mercator scale varies by cos φ across 256 m, so allow a fraction of a percent.
    assert width_m == pytest.approx(256.0, rel=0.005)
    assert height_m == pytest.approx(256.0, rel=0.005)
    assert west < 26.8 < east and south < 60.4 < north
    w2, _, e2, _ = geo.footprint_bbox(0.0, 179.9999)
    assert w2 > e2  # straddles the antimeridian
