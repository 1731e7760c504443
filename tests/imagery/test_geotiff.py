"""GeoTIFF / COG imagery: crops from rasters in EPSG:3067, EPSG:32633 and EPSG:3857 land on the tile path's pixel
grid (disc centres within a pixel of the tile crop and of where the ground says), overviews are used, points off
the raster fail per pair, a COG is read over HTTP with Range requests, the acquisition date reaches the store."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import ImageryError, ImagerySourceError
from annotator.store.models import Pair
from annotator.vocabulary import ImageryFailure, ImageStatus
from dataset.imagery import geo, geotiff
from dataset.imagery.base import parse_acquisition_date
from dataset.imagery.crop import crop_at
from dataset.imagery.geotiff import GeoTiffSource
from dataset.imagery.sources import open_source

from .pairs import add_pairs
from .rastergen import DiscWorld, disc_centroid, expected_position

FINLAND = (60.4, 26.8)
POLAND = (52.0, 18.5)  # 3.5° east of UTM 33's central meridian: the grid is turned ~2.8° from north
ZOOM = 18
#: "Within a pixel", with room to spare: the crops agree to a few hundredths of a pixel, a half-pixel slip fails.
TOLERANCE_PX = 0.5


@dataclass(frozen=True)
class Place:
    world: DiscWorld
    tiles: Path
    point: tuple[float, float]  # where the crops are cut: off the world's centre, off any tile corner


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Place]:
    out = {}
    for name, (lat, lon), seed in [("finland", FINLAND, 7), ("poland", POLAND, 11)]:
        world = DiscWorld.seeded(lat, lon, seed)
        tiles = world.write_tiles(tmp_path_factory.mktemp(name) / "tiles", ZOOM, radius_tiles=2)
        point = geo.offset_point(*geo.offset_point(lat, lon, "E", 7.3), "N", 4.1)
        out[name] = Place(world, tiles, point)
    return out


def _tile_crop(place: Place, **options):
    with open_source(str(place.tiles)) as source:
        return crop_at(source, *place.point, **options)


def _assert_same_features(place: Place, crop, reference, size_px: int = 512, resolution_m: float = 0.5) -> None:
    """Every disc sits within half a pixel of where the tile crop has it and of where its coordinates put it."""
    for disc in place.world.discs:
        expected = expected_position(place.world, disc, *place.point, size_px, resolution_m)
        got = disc_centroid(crop.image, disc.colour, expected)
        want = disc_centroid(reference.image, disc.colour, expected)
        assert np.hypot(got[0] - want[0], got[1] - want[1]) < TOLERANCE_PX, (disc, got, want)
        assert np.hypot(got[0] - expected[0], got[1] - expected[1]) < TOLERANCE_PX, (disc, got, expected)


@pytest.mark.parametrize(
    ("crs", "place_name", "pixel", "warper"),
    [
        ("EPSG:3067", "finland", 0.4, "affine"),
        ("EPSG:32633", "poland", 0.35, "affine"),
        ("EPSG:32633", "poland", 0.35, "gdal"),  # the general path, forced: same grid
        ("EPSG:3857", "finland", 0.8, "affine"),
    ],
)
def test_geotiff_crop_agrees_with_the_tile_path(
    places, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crs: str, place_name: str, pixel: float, warper: str
):
    place = places[place_name]
    tif = place.world.write_geotiff(tmp_path / "ortho.tif", crs, pixel, half_m=150.0)
    if warper == "gdal":
        monkeypatch.setattr(geotiff, "AFFINE_TOLERANCE_PX", -1.0)  # no affine map is close enough
    with open_source(str(tif)) as source:
        assert isinstance(source, GeoTiffSource)
        crop = crop_at(source, *place.point)
        assert source.gdal_warps == (1 if warper == "gdal" else 0)
    reference = _tile_crop(place)
    assert crop.image.size == (512, 512) and crop.image.mode == "RGB"
    _assert_same_features(place, crop, reference)
    # the whole picture agrees too (a turned or stretched grid would smear the background waves)
    difference = np.abs(np.asarray(crop.image, dtype=np.float64) - np.asarray(reference.image, dtype=np.float64))
    assert difference.mean() < 2.0
    assert crop.footprint == pytest.approx(geo.footprint_bbox(*place.point))
    ground_pixel = pixel * (np.cos(np.radians(place.point[0])) if crs == "EPSG:3857" else 1.0)
    assert crop.native_resolution_m == pytest.approx(ground_pixel, rel=0.02)
    assert crop.resolution_m == 0.5 and crop.acquired is None


def test_overviews_serve_a_raster_much_finer_than_the_crop(places, tmp_path: Path) -> None:
    place = places["finland"]
    tif = place.world.write_geotiff(tmp_path / "fine.tif", "EPSG:3067", 0.05, half_m=45.0, overviews=(2, 4, 8, 16))
    with rasterio.open(tif, "r+") as dst:  # blank the full resolution: only the overviews still show the world
        dst.write(np.zeros((dst.count, dst.height, dst.width), dtype=np.uint8))
    with open_source(str(tif)) as source:
        crop = crop_at(source, *place.point, size_px=128)
    reference = _tile_crop(place, size_px=128)
    assert np.asarray(crop.image).mean() > 40  # not the blanked full resolution
    near = [d for d in place.world.discs if max(abs(d.east_m), abs(d.north_m)) < 25]
    near_world = DiscWorld(place.world.lat, place.world.lon, tuple(near))
    _assert_same_features(Place(near_world, place.tiles, place.point), crop, reference, size_px=128)
    assert crop.native_resolution_m == pytest.approx(0.05, rel=0.02)


def test_points_off_the_raster_fail_with_out_of_range(places, tmp_path: Path) -> None:
    place = places["finland"]
    tif = place.world.write_geotiff(tmp_path / "small.tif", "EPSG:3067", 1.0, half_m=100.0)
    lat, lon = FINLAND
    with open_source(str(tif)) as source:
        crop_at(source, lat, lon, size_px=128)  # 64 m around the centre: inside
        with pytest.raises(ImageryError, match="lies outside the raster") as far:
            crop_at(source, *geo.offset_point(lat, lon, "N", 2000.0), size_px=128)
        with pytest.raises(ImageryError, match="reaches beyond the edge of the raster") as edge:
            crop_at(source, *geo.offset_point(lat, lon, "E", 80.0), size_px=128)
    assert far.value.reason == edge.value.reason == ImageryFailure.OUT_OF_RANGE


def test_no_data_under_the_crop_is_a_missing_tile(places, tmp_path: Path) -> None:
    place = places["finland"]
    tif = place.world.write_geotiff(tmp_path / "alpha.tif", "EPSG:3067", 0.5, half_m=100.0, alpha_hole=True)
    lat, lon = FINLAND
    with open_source(str(tif)) as source:
        south_west = geo.offset_point(*geo.offset_point(lat, lon, "S", 50.0), "W", 50.0)
        assert crop_at(source, *south_west, size_px=64).image.size == (64, 64)
        north_east = geo.offset_point(*geo.offset_point(lat, lon, "N", 50.0), "E", 50.0)
        with pytest.raises(ImageryError, match="no data under the crop") as info:
            crop_at(source, *north_east, size_px=64)
    assert info.value.reason == ImageryFailure.TILE_MISSING


def test_sixteen_bit_grey_raster_is_stretched(places, tmp_path: Path) -> None:
    place = places["finland"]
    rgb = place.world.write_geotiff(tmp_path / "rgb.tif", "EPSG:3067", 0.5, half_m=100.0)
    with rasterio.open(rgb) as src:
        grey = (src.read().astype(np.uint32).sum(axis=0) * 4).astype(np.uint16)  # 0 … 3060, not 8-bit
        profile = src.profile | {"count": 1, "dtype": "uint16", "photometric": "MINISBLACK"}
    with rasterio.open(tmp_path / "grey.tif", "w", **profile) as dst:
        dst.write(grey[None])
    with open_source(str(tmp_path / "grey.tif")) as source:
        pixels = np.asarray(crop_at(source, *FINLAND, size_px=128).image)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert pixels.min() < 30 and pixels.max() > 225  # the 2–98 % stretch spans the 8-bit range


def test_acquisition_date_from_the_file(places, tmp_path: Path) -> None:
    world = places["finland"].world
    both = world.write_geotiff(
        tmp_path / "both.tif",
        "EPSG:3067",
        1.0,
        half_m=80.0,
        tags={"TIFFTAG_DATETIME": "2023:01:02 03:04:05", "ACQUISITIONDATE": "2021-06-15"},
    )
    stamp = world.write_geotiff(
        tmp_path / "stamp.tif", "EPSG:3067", 1.0, half_m=80.0, tags={"TIFFTAG_DATETIME": "2022:07:01 09:15:00"}
    )
    with open_source(str(both)) as source:
        assert crop_at(source, *FINLAND, size_px=64).acquired == "2021-06-15"  # the acquisition item wins
    with open_source(str(stamp)) as source:
        assert source.acquired == "2022-07-01T09:15:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021:06:15 10:30:00", "2021-06-15T10:30:00"),
        ("2021-06-15", "2021-06-15"),
        ("2021-06-15T10:30:00Z", "2021-06-15T10:30:00"),
        ("2020-05-01/2020-08-31", "2020-05-01/2020-08-31"),
        ("0000:00:00 00:00:00", None),
        ("unknown", None),
        (None, None),
    ],
)
def test_parse_acquisition_date(value, expected) -> None:
    assert parse_acquisition_date(value) == expected


# ------------------------------------------------------------------------------------------- over HTTP


@dataclass
class FileServer:
    """Serves one file at ``/ortho/<name>`` with HEAD and single-range GET (206), as object stores do."""

    path: Path | None = None
    url: str = ""
    requests: list[tuple[str, str | None, str]] = field(default_factory=list)  # (method, Range, User-Agent)
    bytes_sent: int = 0


def _range_handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, head: bool) -> None:
            asked = self.headers.get("Range")
            state.requests.append((self.command, asked, self.headers.get("User-Agent", "")))
            if state.path is None or self.path.split("?")[0] != f"/ortho/{state.path.name}":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = state.path.read_bytes()
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", asked or "")
            if match:
                start = int(match[1])
                end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
                body = data[start : end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "image/tiff")
            self.end_headers()
            if not head:
                self.wfile.write(body)
                state.bytes_sent += len(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(head=True)

    return Handler


@pytest.fixture
def file_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # curl (GDAL) must not send loopback requests to a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _range_handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_cog_over_http_reads_only_the_window(places, tmp_path: Path, file_server: FileServer) -> None:
    place = places["finland"]
    cog = place.world.write_geotiff(
        tmp_path / "cog.tif", "EPSG:3067", 0.25, half_m=120.0, driver="COG", noise_seed=3,
        tags={"ACQUISITIONDATE": "2020-08-14"},
    )  # fmt: skip
    file_server.path = cog
    url = f"{file_server.url}/ortho/cog.tif?sig=SECRET"
    agent = "annotator-test (ops@example.org)"
    with open_source(url, user_agent=agent) as source:
        assert isinstance(source, GeoTiffSource) and "SECRET" not in source.describe()
        remote = crop_at(source, *place.point, size_px=128)
    with open_source(str(cog)) as source:
        local = crop_at(source, *place.point, size_px=128)
    assert remote.image.tobytes() == local.image.tobytes()
    assert remote.acquired == "2020-08-14"
    gets = [rng for method, rng, _ in file_server.requests if method == "GET"]
    assert gets and all(rng is not None and rng.startswith("bytes=") for rng in gets)  # Range requests only
    assert file_server.bytes_sent < cog.stat().st_size / 5  # the window's tiles, not the file
    assert {ua for _, _, ua in file_server.requests} == {agent}


def test_missing_remote_geotiff_is_a_source_error(file_server: FileServer) -> None:
    with pytest.raises(ImagerySourceError, match=r"cannot open the GeoTIFF http://127\.0\.0\.1:\d+/ortho/none\.tif"):
        open_source(f"{file_server.url}/ortho/none.tif?token=SECRET")


# ------------------------------------------------------------------------------------------- opening


def test_unusable_geotiffs_say_why(tmp_path: Path) -> None:
    (tmp_path / "text.tif").write_text("not a tiff")
    with pytest.raises(ImagerySourceError, match="cannot open the GeoTIFF"):
        open_source(str(tmp_path / "text.tif"))
    plain = tmp_path / "plain.tif"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(plain)  # a TIFF with no georeferencing
    with pytest.raises(ImagerySourceError, match="no coordinate reference system"):
        open_source(str(plain))
    with pytest.raises(ImagerySourceError, match="no .tif/.tiff file"):
        open_source("https://example.org/ortho.png")


def test_geotiff_named_without_suffix_is_recognised(places, tmp_path: Path) -> None:
    tif = places["finland"].world.write_geotiff(tmp_path / "ortho.tif", "EPSG:3067", 1.0, half_m=80.0)
    renamed = tif.rename(tmp_path / "orthophoto-2021")
    with open_source(str(renamed)) as source:
        assert isinstance(source, GeoTiffSource)


# ------------------------------------------------------------------------------------------- the store


def test_cli_fill_from_a_geotiff_stores_the_acquisition_date(places, cli, engine, location, tmp_path: Path):
    place = places["finland"]
    tif = place.world.write_geotiff(
        tmp_path / "ortho.tif", "EPSG:3067", 0.5, half_m=150.0, tags={"ACQUISITION_DATE": "2021-06-15"}
    )
    inside, outside = add_pairs(engine, [place.point, geo.offset_point(*FINLAND, "S", 5000.0)])
    result = cli("imagery", "fill", "--imagery", str(tif))
    assert "out_of_range" in result.stdout
    with Session(engine) as session:
        pairs = {p.id: p for p in session.scalars(select(Pair))}
    good, bad = pairs[inside], pairs[outside]
    assert good.image_status == ImageStatus.PRESENT and good.image_source == str(tif)
    assert good.image_acquired == "2021-06-15" and good.image_resolution_m == 0.5
    assert good.footprint == pytest.approx(geo.footprint_bbox(*place.point))
    with Image.open(location.media_dir / good.image_path) as stored:
        reference = _tile_crop(place)
        first = place.world.discs[0]
        expected = expected_position(place.world, first, *place.point, 512, 0.5)
        got, want = (
            disc_centroid(stored, first.colour, expected),
            disc_centroid(reference.image, first.colour, expected),
        )
        assert np.hypot(got[0] - want[0], got[1] - want[1]) < 1.0  # through JPEG, still on the tile grid
    assert bad.image_status == ImageStatus.FAILED and bad.image_error.startswith("out_of_range: ")
    assert bad.image_acquired is None
