"""The URL source against a real loopback HTTP tile server: 404, retries, timeouts, the cache, the User-Agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator import __version__
from annotator.errors import ImageryError, ImagerySourceError
from dataset.imagery import geo
from dataset.imagery.crop import crop_at
from dataset.imagery.http import UrlTemplateSource, _retry_after
from dataset.imagery.sources import open_source

from .tilegen import marker_centroid, marker_tiles, png_bytes, tiles_around

LAT, LON, ZOOM = 60.4, 26.8, 18


def _serve_marker(server, lat: float = LAT, lon: float = LON) -> tuple[float, float]:
    """Put a marker pyramid on the server; returns the point whose crop has the marker at its centre."""
    px, py = geo.global_pixel(lat, lon, ZOOM)
    corner = (round(px / 256) * 256, round(py / 256) * 256)
    lon_p, lat_p = geo.pixel_to_lonlat(*corner, ZOOM)
    for (z, x, y), image in marker_tiles(tiles_around(lat_p, lon_p, ZOOM), corner).items():
        server.tiles[f"/{z}/{x}/{y}.png"] = png_bytes(image)
    return lat_p, lon_p


def _source(server, tmp_path: Path, **options) -> UrlTemplateSource:
    options = {"timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01, "max_zoom": ZOOM} | options
    return UrlTemplateSource(server.template, cache_dir=tmp_path / "cache", **options)


def _centre_tile(lat: float, lon: float) -> str:
    x, y = geo.tile_of(lat, lon, ZOOM)
    return f"/{ZOOM}/{x}/{y}.png"


def test_crop_over_http_with_user_agent(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    with _source(tile_server, tmp_path) as source:
        crop = crop_at(source, lat, lon)
    cx, cy = marker_centroid(crop.image)
    assert abs(cx - 256) < 1 and abs(cy - 256) < 1
    agents = {agent for _, agent in tile_server.requests}
    assert len(agents) == 1 and agents.pop().startswith(f"annotator/{__version__} (")
    assert max(tile_server.count().values()) == 1  # no tile asked twice


def test_user_agent_is_configurable(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    agent = "annotator/0.1.0 (lab survey; ops@example.org)"
    with open_source(tile_server.template, cache_dir=tmp_path / "c", user_agent=agent) as source:
        source.max_zoom = ZOOM
        crop_at(source, lat, lon)
    assert {ua for _, ua in tile_server.requests} == {agent}


def test_second_crop_is_served_from_the_disk_cache(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    with _source(tile_server, tmp_path) as source:
        first = crop_at(source, lat, lon)
    requests_after_first = len(tile_server.requests)
    assert requests_after_first > 0
    with _source(tile_server, tmp_path) as source:  # a new source object: no decoded-tile cache to help
        second = crop_at(source, lat, lon)
        assert source.requests_made == 0 and source.cache_hits > 0
    assert len(tile_server.requests) == requests_after_first
    assert first.image.tobytes() == second.image.tobytes()


def test_missing_tile_404_is_not_retried(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    path = _centre_tile(lat, lon)
    del tile_server.tiles[path]
    with _source(tile_server, tmp_path) as source, pytest.raises(ImageryError, match="missing at http://127.0.0.1"):
        crop_at(source, lat, lon)
        with pytest.raises(ImageryError, match="missing"):  # asked again: remembered, not re-requested
            crop_at(source, lat, lon)
    assert tile_server.count()[path] == 1


def test_server_error_then_success_is_retried(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    path = _centre_tile(lat, lon)
    tile_server.fail_first[path] = 2
    with _source(tile_server, tmp_path, max_retries=2) as source:
        crop = crop_at(source, lat, lon)
    assert tile_server.count()[path] == 3
    cx, cy = marker_centroid(crop.image)
    assert abs(cx - 256) < 1 and abs(cy - 256) < 1


def test_throttling_honours_retry_after(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    path = _centre_tile(lat, lon)
    tile_server.throttle_first[path] = 1
    with _source(tile_server, tmp_path, backoff_s=30.0) as source:  # Retry-After: 0 overrides the long backoff
        crop_at(source, lat, lon)
    assert tile_server.count()[path] == 2


def test_persistent_server_errors_give_up_after_bounded_retries(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    path = _centre_tile(lat, lon)
    tile_server.fail_first[path] = 100
    with (
        _source(tile_server, tmp_path, max_retries=2) as source,
        pytest.raises(ImageryError, match=r"failed after 3 attempts \(HTTP 500\)"),
    ):
        crop_at(source, lat, lon)
    assert tile_server.count()[path] == 3
    assert not list((tmp_path / "cache").rglob("*.part"))  # nothing half-written in the cache


def test_stalled_response_times_out_with_a_clear_error(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    path = _centre_tile(lat, lon)
    tile_server.stall.add(path)
    with (
        _source(tile_server, tmp_path, timeout_s=0.2, max_retries=1) as source,
        pytest.raises(ImageryError, match=r"failed after 2 attempts \(timed out after 0.2 s\)"),
    ):
        crop_at(source, lat, lon)
    assert tile_server.count()[path] == 2


def test_forbidden_is_a_source_error(tile_server, tmp_path: Path) -> None:
    lat, lon = _serve_marker(tile_server)
    tile_server.forbidden = True
    with _source(tile_server, tmp_path) as source, pytest.raises(ImagerySourceError, match="HTTP 403"):
        crop_at(source, lat, lon)


def test_subdomains_share_one_cache_entry(tile_server, tmp_path: Path) -> None:
    source = UrlTemplateSource("https://{s}.tiles.example.org/{z}/{x}/{y}.png?key=SECRET", cache_dir=tmp_path)
    assert source.url_for(1, 0, 1) == "https://b.tiles.example.org/1/0/1.png?key=SECRET"
    assert source.url_for(1, 1, 1) == "https://c.tiles.example.org/1/1/1.png?key=SECRET"
    assert "SECRET" not in source.describe()
    tms = UrlTemplateSource("https://t.example.org/{z}/{x}/{-y}.png", cache_dir=tmp_path)
    assert tms.url_for(3, 2, 1).endswith("/3/2/6.png")


def test_retry_after_parsing() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert _retry_after("soon") is None
    assert _retry_after(None) is None
