"""fill_missing_images and `annotator imagery …` on a real store, from a real tile folder (the demo pyramid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.demo import world
from annotator.demo.tiles import write_demo_tiles
from annotator.errors import ImagerySourceError
from annotator.imagery import FillReport, fill_missing_images
from annotator.store import unit_of_work
from annotator.store.models import Pair
from annotator.vocabulary import ImageStatus
from dataset.imagery import geo
from dataset.imagery.crop import crop_at
from dataset.imagery.sources import open_source

from .pairs import add_pairs


@pytest.fixture(scope="module")
def demo_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo world's pyramid, written once for this module (a couple of thousand small PNGs)."""
    return write_demo_tiles(tmp_path_factory.mktemp("demo") / "tiles")


def _fill(engine, location, source, **options) -> FillReport:
    with unit_of_work(engine) as work:
        return fill_missing_images(work, location, source, **options)


def test_fill_gives_every_good_pair_an_image_and_marks_the_bad_one(engine, location, demo_tiles: Path) -> None:
    good = [cell.centre for cell in world.cells()[:5]]
    bad = [(10.0, 10.0), (86.0, 26.8)]  # no tiles there; beyond Web-Mercator
    ids = add_pairs(engine, good[:2] + bad[:1] + good[2:] + bad[1:])
    present = add_pairs(engine, [good[0]], status=ImageStatus.PRESENT)
    calls = []
    report = _fill(engine, location, str(demo_tiles), progress=calls.append)
    assert report.filled == 5
    assert dict(report.failed_by_reason) == {"tile_missing": 1, "out_of_range": 1}
    assert report.skipped == 1 and sum(calls) == 7
    with Session(engine) as session:
        pairs = {p.id: p for p in session.scalars(select(Pair))}
    for pid in ids:
        pair = pairs[pid]
        if (pair.lat, pair.lon) in bad:
            assert pair.image_status == "failed" and pair.image_path is None
            assert pair.image_error and ("missing at" in pair.image_error or "Web-Mercator" in pair.image_error)
            continue
        assert pair.image_status == "present" and pair.image_error is None
        assert pair.image_path == f"images/{pid}.jpg"
        assert pair.image_source == str(demo_tiles)
        assert pair.image_zoom == 18 and pair.image_resolution_m == 0.5
        assert pair.footprint == pytest.approx(geo.footprint_bbox(pair.lat, pair.lon))
        with Image.open(location.media_dir / pair.image_path) as image:
            assert image.size == (512, 512) and image.mode == "RGB" and image.format == "JPEG"
            stored = np.asarray(image, dtype=np.float64)
        with open_source(str(demo_tiles)) as source:
            direct = np.asarray(crop_at(source, pair.lat, pair.lon).image, dtype=np.float64)
        assert np.abs(stored - direct).mean() < 3.0  # the crop, through JPEG
    assert pairs[present[0]].image_path is None  # a pair that already had an image is left alone


def test_failed_pairs_are_retried_only_when_asked(engine, location, demo_tiles: Path) -> None:
    add_pairs(engine, [(10.0, 10.0)])
    first = _fill(engine, location, str(demo_tiles))
    assert first.failed == 1
    again = _fill(engine, location, str(demo_tiles), retry_failed=False)
    assert again.failed == 0 and again.filled == 0 and again.skipped == 1
    retried = _fill(engine, location, str(demo_tiles), retry_failed=True)
    assert retried.failed == 1


def test_fill_is_idempotent_and_byte_stable(engine, location, demo_tiles: Path) -> None:
    (pid,) = add_pairs(engine, [world.cells()[6].centre])
    _fill(engine, location, str(demo_tiles))
    path = location.media_dir / f"images/{pid}.jpg"
    first = path.read_bytes()
    assert _fill(engine, location, str(demo_tiles)).filled == 0  # nothing left to do
    with Session(engine) as session, session.begin():
        session.get(Pair, pid).image_status = ImageStatus.NEEDS_IMAGERY
    _fill(engine, location, str(demo_tiles))
    assert path.read_bytes() == first


def test_unusable_source_stops_the_run_with_a_clear_error(engine, location, tmp_path: Path) -> None:
    add_pairs(engine, [(60.4, 26.8)])
    with pytest.raises(ImagerySourceError, match="does not exist"):
        _fill(engine, location, str(tmp_path / "no-such-tiles"))
    with Session(engine) as session:
        assert session.scalars(select(Pair.image_status)).all() == ["needs_imagery"]


def test_cli_fill_prints_a_summary(cli, engine, location, demo_tiles: Path) -> None:
    add_pairs(engine, [world.cells()[1].centre, world.cells()[2].centre, (10.0, 10.0)])
    result = cli("imagery", "fill", "--imagery", str(demo_tiles))
    assert "filled" in result.stdout and "2" in result.stdout
    assert "tile_missing" in result.stdout
    assert len(list((location.media_dir / "images").glob("*.jpg"))) == 2


def test_cli_fill_bad_source_is_one_sentence(cli, engine, tmp_path: Path) -> None:
    result = cli("imagery", "fill", "--imagery", str(tmp_path / "nope"), expect=2)
    assert result.stderr.startswith("Error: imagery SOURCE") and "Traceback" not in result.output


def test_cli_crop_writes_a_preview(cli, demo_tiles: Path, tmp_path: Path) -> None:
    lat, lon = world.cells()[0].centre
    out = tmp_path / "preview.jpg"
    result = cli("imagery", "crop", str(lat), str(lon), "--imagery", str(demo_tiles), "--out", str(out))
    assert "zoom" in result.stdout and "18" in result.stdout
    with Image.open(out) as image:
        assert image.size == (512, 512)


def test_demo_tiles_cover_the_world_and_tell_classes_apart(demo_tiles: Path) -> None:
    west, south, east, north = world.bounds()
    with open_source(str(demo_tiles)) as source:
        assert (source.min_zoom, source.max_zoom) == (17, 18)
        for zoom in (17, 18):  # the world's corners, pushed out by a crop's half-width and an export offset
            for lat, lon in [(south, west), (north, east)]:
                for direction in "NESW":
                    far = geo.offset_point(lat, lon, direction, 200.0)
                    assert source.tile(zoom, *geo.tile_of(*far, zoom)) is not None
        means = {}
        for cell in world.cells():
            if cell.truth is not None and cell.truth not in means:
                image = crop_at(source, *cell.centre).image
                means[cell.truth] = np.asarray(image, dtype=np.float64).mean(axis=(0, 1))
                texture = np.asarray(image.convert("L"), dtype=np.float64).std()
                assert texture > 2.0, cell.truth  # every class has a texture, not a flat colour
    classes = list(means)
    for i, a in enumerate(classes):
        for b in classes[i + 1 :]:
            assert np.abs(means[a] - means[b]).sum() > 10, (a, b)  # no two classes look alike on average


def test_demo_tile_rendering_is_deterministic() -> None:
    from annotator.demo.tiles import render_tile

    x, y = geo.tile_of(*world.cells()[5].centre, 18)
    assert render_tile(18, x, y).tobytes() == render_tile(18, x, y).tobytes()


@pytest.mark.parametrize("command", ["fill", "crop"])
def test_cli_help_has_an_example(cli, command: str) -> None:
    assert "Example" in cli("imagery", command, "--help").stdout
