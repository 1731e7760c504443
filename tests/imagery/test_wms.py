"""WMS imagery against a loopback WMS that renders the requested BBOX of a known world: one GetMap per crop for
exactly the crop's frame, the crop on the tile path's pixel grid, service exceptions as clear per-pair failures
(or a source error when no point could work), the tile client's politeness, the TIME as the acquisition date."""

from __future__ import annotations

import io
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import ImageryError, ImagerySourceError
from annotator.imagery import fill_missing_images
from annotator.store import unit_of_work
from annotator.store.models import Pair
from annotator.vocabulary import ImageryFailure, ImageStatus
from dataset.imagery import geo
from dataset.imagery.crop import crop_at
from dataset.imagery.sources import open_source
from dataset.imagery.wms import WmsSource

from .pairs import add_pairs
from .rastergen import DiscWorld, disc_centroid, expected_position

CENTRE = (60.4, 26.8)
ZOOM = 18
COVERAGE_M = 2000.0  # the server has imagery within this many Mercator metres of the world's centre


@dataclass
class Wms:
    """A WMS 1.3.0 GetMap endpoint over ``world``; records every request's parameters and User-Agent."""

    world: DiscWorld
    url: str = ""
    requests: list[tuple[dict[str, str], str]] = field(default_factory=list)
    fail_first: int = 0  # 500s before answering
    transparent_outside: bool = False  # outside the coverage: a transparent PNG instead of an exception

    def template(self, layer: str = "ortho", extra: str = "") -> str:
        return (
            f"wms:{self.url}/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS={layer}&STYLES=&CRS=EPSG:3857"
            "&BBOX={bbox}&WIDTH={width}&HEIGHT={height}&FORMAT=image/png" + extra
        )


def _exception(code: str | None, text: str) -> bytes:
    attribute = f' code="{code}"' if code else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ServiceExceptionReport version="1.3.0" '
        f'xmlns="http://www.opengis.net/ogc"><ServiceException{attribute}>\n  {text}\n'
        "</ServiceException></ServiceExceptionReport>"
    ).encode()


def _wms_handler(state: Wms) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
            params = {key.upper(): values[0] for key, values in query.items()}
            state.requests.append((params, self.headers.get("User-Agent", "")))
            if state.fail_first > 0:
                state.fail_first -= 1
                return self._send(500, b"busy", "text/plain")
            if params.get("LAYERS") != "ortho":
                return self._send(200, _exception("LayerNotDefined", "no such layer"), "text/xml")
            west, south, east, north = (float(v) for v in params["BBOX"].split(","))
            width, height = int(params["WIDTH"]), int(params["HEIGHT"])
            cx, cy = geo.mercator_xy(state.world.lat, state.world.lon)
            if max(abs((west + east) / 2 - cx), abs((south + north) / 2 - cy)) > COVERAGE_M:
                if state.transparent_outside:
                    buffer = io.BytesIO()
                    Image.new("RGBA", (width, height), (0, 0, 0, 0)).save(buffer, format="PNG")
                    return self._send(200, buffer.getvalue(), "image/png")
                return self._send(
                    200, _exception(None, "Request outside the ortho coverage"), "application/vnd.ogc.se_xml"
                )
            pixels = state.world.render_mercator(west, north, (east - west) / width, width, height)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            return self._send(200, buffer.getvalue(), "image/png")

    return Handler


@pytest.fixture(scope="module")
def world_tiles(tmp_path_factory: pytest.TempPathFactory) -> tuple[DiscWorld, Path]:
    world = DiscWorld.seeded(*CENTRE, 5)
    return world, world.write_tiles(tmp_path_factory.mktemp("wms") / "tiles", ZOOM, radius_tiles=2)


@pytest.fixture
def wms(world_tiles) -> Iterator[Wms]:
    state = Wms(world_tiles[0])
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _wms_handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _point() -> tuple[float, float]:
    return geo.offset_point(*geo.offset_point(*CENTRE, "W", 3.7), "S", 6.2)


def test_wms_crop_is_one_request_for_the_frame_on_the_tile_grid(wms: Wms, world_tiles, tmp_path: Path) -> None:
    world, tiles = world_tiles
    point = _point()
    with open_source(wms.template(), cache_dir=tmp_path / "cache") as source:
        assert isinstance(source, WmsSource)
        crop = crop_at(source, *point)
    assert len(wms.requests) == 1
    params, agent = wms.requests[0]
    assert (params["WIDTH"], params["HEIGHT"]) == ("512", "512")
    bbox = [float(v) for v in params["BBOX"].split(",")]
    assert bbox == pytest.approx(geo.mercator_frame(*point, 512, 0.5), abs=1e-3)
    assert agent.startswith("annotator/")
    with open_source(str(tiles)) as source:
        reference = crop_at(source, *point)
    for disc in world.discs:
        expected = expected_position(world, disc, *point, 512, 0.5)
        got, want = (
            disc_centroid(crop.image, disc.colour, expected),
            disc_centroid(reference.image, disc.colour, expected),
        )
        assert np.hypot(got[0] - want[0], got[1] - want[1]) < 0.5, (disc, got, want)
        assert np.hypot(got[0] - expected[0], got[1] - expected[1]) < 0.5, (disc, got, expected)
    difference = np.abs(np.asarray(crop.image, dtype=np.float64) - np.asarray(reference.image, dtype=np.float64))
    assert difference.mean() < 2.0
    assert crop.footprint == pytest.approx(geo.footprint_bbox(*point))
    assert crop.resolution_m == crop.native_resolution_m == 0.5 and crop.acquired is None


def test_answers_are_cached_and_failures_retried_politely(wms: Wms, tmp_path: Path) -> None:
    wms.fail_first = 1
    with open_source(wms.template(), cache_dir=tmp_path / "cache", user_agent="lab (ops@example.org)") as source:
        assert isinstance(source, WmsSource)
        source.client.backoff_s = 0.01
        first = crop_at(source, *_point(), size_px=96)
    assert len(wms.requests) == 2 and {ua for _, ua in wms.requests} == {"lab (ops@example.org)"}
    with open_source(wms.template(), cache_dir=tmp_path / "cache") as source:
        second = crop_at(source, *_point(), size_px=96)
        assert isinstance(source, WmsSource) and source.cache_hits == 1
    assert len(wms.requests) == 2 and first.image.tobytes() == second.image.tobytes()


def test_service_exception_is_a_clear_per_pair_failure(wms: Wms, tmp_path: Path) -> None:
    far = geo.offset_point(*CENTRE, "N", 5000.0)
    with (
        open_source(wms.template(), cache_dir=tmp_path / "cache") as source,
        pytest.raises(ImageryError, match="WMS service exception: Request outside the ortho coverage") as info,
    ):
        crop_at(source, *far, size_px=64)
    assert info.value.reason == ImageryFailure.FETCH_FAILED and not isinstance(info.value, ImagerySourceError)
    assert not list((tmp_path / "cache").rglob("*.map"))  # an exception is never cached


def test_transparent_answer_is_a_missing_tile(wms: Wms, tmp_path: Path) -> None:
    wms.transparent_outside = True
    far = geo.offset_point(*CENTRE, "N", 5000.0)
    with (
        open_source(wms.template(), cache_dir=tmp_path / "cache") as source,
        pytest.raises(ImageryError, match="transparent") as info,
    ):
        crop_at(source, *far, size_px=64)
    assert info.value.reason == ImageryFailure.TILE_MISSING


def test_unknown_layer_makes_the_source_unusable(wms: Wms, tmp_path: Path) -> None:
    with (
        open_source(wms.template(layer="nope"), cache_dir=tmp_path) as source,
        pytest.raises(ImagerySourceError, match=r"\(LayerNotDefined\): no such layer; check the WMS URL template"),
    ):
        crop_at(source, *_point(), size_px=64)


def test_fill_from_wms_stores_time_as_acquisition_date(wms: Wms, engine, location) -> None:
    far = geo.offset_point(*CENTRE, "E", 9000.0)
    good, bad = add_pairs(engine, [_point(), far])
    spec = wms.template(extra="&TIME=2022-05-30")
    with unit_of_work(engine) as work:
        report = fill_missing_images(work, location, spec)
    assert report.filled == 1 and dict(report.failed_by_reason) == {ImageryFailure.FETCH_FAILED: 1}
    assert all(params["TIME"] == "2022-05-30" for params, _ in wms.requests)
    with Session(engine) as session:
        pairs = {p.id: p for p in session.scalars(select(Pair))}
    assert pairs[good].image_status == ImageStatus.PRESENT and pairs[good].image_acquired == "2022-05-30"
    assert pairs[good].image_source == spec
    assert pairs[bad].image_status == ImageStatus.FAILED
    assert "WMS service exception: Request outside the ortho coverage" in pairs[bad].image_error


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("wms:ftp://host/wms?BBOX={bbox}&WIDTH={width}&HEIGHT={height}", "http"),
        ("wms:https://host/wms?LAYERS=a&BBOX={bbox}&WIDTH=512&HEIGHT={height}", r"lacks \{width\}"),
        ("wms:https://host/wms?CRS=EPSG:4326&BBOX={bbox}&WIDTH={width}&HEIGHT={height}", "asks for EPSG:4326"),
    ],
)
def test_bad_wms_templates_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ImagerySourceError, match=message):
        open_source(spec)
