"""Every imagery failure carries its reason from where it is raised; a fill stores it as ``<reason>: <message>``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import ImageryError, ImagerySourceError
from annotator.imagery import fill_missing_images
from annotator.store import unit_of_work
from annotator.store.models import Pair
from annotator.vocabulary import ImageryFailure, ImageStatus
from dataset.imagery import geo
from dataset.imagery.crop import crop_at
from dataset.imagery.http import UrlTemplateSource
from dataset.imagery.sources import XYZFolderSource, open_source

from .pairs import add_pairs
from .tilegen import marker_tiles, png_bytes, tiles_around, write_folder

LAT, LON, ZOOM = 60.4, 26.8, 18


def _folder(root: Path) -> Path:
    px, py = geo.global_pixel(LAT, LON, ZOOM)
    return write_folder(root, marker_tiles(tiles_around(LAT, LON, ZOOM), (round(px), round(py))))


def _centre_tile(folder: Path) -> Path:
    x, y = geo.tile_of(LAT, LON, ZOOM)
    return folder / str(ZOOM) / str(x) / f"{y}.png"


def _reason_of(source: XYZFolderSource | UrlTemplateSource, lat: float, lon: float) -> ImageryFailure:
    with source, pytest.raises(ImageryError) as info:
        crop_at(source, lat, lon)
    return info.value.reason


@pytest.mark.parametrize(("lat", "lon"), [(86.0, 10.0), (math.nan, 10.0), (60.4, math.inf)])
def test_point_beyond_web_mercator_is_out_of_range(tmp_path: Path, lat: float, lon: float) -> None:
    source = open_source(str(_folder(tmp_path / "tiles")))
    assert _reason_of(source, lat, lon) is ImageryFailure.OUT_OF_RANGE


def test_missing_tile_is_tile_missing(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "tiles")
    _centre_tile(folder).unlink()
    assert _reason_of(open_source(str(folder)), LAT, LON) is ImageryFailure.TILE_MISSING


def test_corrupt_tile_is_bad_tile(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "tiles")
    _centre_tile(folder).write_bytes(b"not a png")
    assert _reason_of(open_source(str(folder)), LAT, LON) is ImageryFailure.BAD_TILE


def test_server_that_keeps_failing_is_fetch_failed(tile_server, tmp_path: Path) -> None:
    for (z, x, y), image in marker_tiles(tiles_around(LAT, LON, ZOOM), (0, 0)).items():
        tile_server.tiles[f"/{z}/{x}/{y}.png"] = png_bytes(image)
    x, y = geo.tile_of(LAT, LON, ZOOM)
    tile_server.fail_first[f"/{ZOOM}/{x}/{y}.png"] = 100
    source = UrlTemplateSource(
        tile_server.template, cache_dir=tmp_path / "cache", max_retries=1, backoff_s=0.01, max_zoom=ZOOM
    )
    assert _reason_of(source, LAT, LON) is ImageryFailure.FETCH_FAILED


def test_refused_access_is_source_unusable(tile_server, tmp_path: Path) -> None:
    tile_server.forbidden = True
    source = UrlTemplateSource(tile_server.template, cache_dir=tmp_path / "cache", max_zoom=ZOOM)
    assert _reason_of(source, LAT, LON) is ImageryFailure.SOURCE_UNUSABLE


def test_unusable_source_string_is_source_unusable(tmp_path: Path) -> None:
    with pytest.raises(ImagerySourceError) as info:
        open_source(str(tmp_path / "nowhere"))
    assert info.value.reason is ImageryFailure.SOURCE_UNUSABLE


def test_an_error_raised_without_a_reason_is_a_generic_imagery_error() -> None:
    assert ImageryError("something else").reason is ImageryFailure.IMAGERY_ERROR
    assert ImagerySourceError("bad").reason is ImageryFailure.SOURCE_UNUSABLE
    assert ImageryError("gone", reason=ImageryFailure.TILE_MISSING).reason is ImageryFailure.TILE_MISSING


def test_fill_stores_the_reason_before_the_message(engine, location, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "tiles")
    (missing,) = add_pairs(engine, [(10.0, 10.0)])
    with unit_of_work(engine) as work:
        report = fill_missing_images(work, location, str(folder))
    with open_source(str(folder)) as source, pytest.raises(ImageryError) as info:
        crop_at(source, 10.0, 10.0)
    with Session(engine) as session:
        pair = session.get(Pair, missing)
        assert pair is not None and pair.image_error == f"tile_missing: {info.value}"
    assert dict(report.failed_by_reason) == {ImageryFailure.TILE_MISSING: 1}


class _GivesOut(XYZFolderSource):
    """A folder source whose 'server' goes away when asked for a tile it lacks."""

    def read_tile_bytes(self, z: int, x: int, y: int) -> bytes | None:
        data = super().read_tile_bytes(z, x, y)
        if data is None:
            raise ImagerySourceError("the source went away")
        return data


def test_source_giving_out_mid_run_keeps_the_finished_pairs(engine, location, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "tiles")
    good, also_good, far = add_pairs(engine, [(LAT, LON), (LAT, LON), (10.0, 10.0)])
    with (
        _GivesOut(str(folder), folder) as source,
        pytest.raises(ImagerySourceError, match="went away"),
        unit_of_work(engine) as work,
    ):
        fill_missing_images(work, location, source)
    with Session(engine) as session:
        status = {pid: image_status for pid, image_status in session.execute(select(Pair.id, Pair.image_status))}
    assert status == {good: ImageStatus.PRESENT, also_good: ImageStatus.PRESENT, far: ImageStatus.NEEDS_IMAGERY}
    assert (location.media_dir / f"images/{good}.jpg").is_file()
