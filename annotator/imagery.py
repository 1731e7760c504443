"""Fill pairs' aerial images from an imagery SOURCE (issue 3): a long batch job that commits as it goes.

``fill_missing_images`` is what ``annotator import --imagery SOURCE`` and ``annotator imagery fill`` call. A pair
that cannot get an image (beyond Web-Mercator, tiles missing, a tile server that keeps failing) is marked
``failed`` with the reason and the run goes on; a SOURCE that is unusable as a whole stops the run after
committing what was done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import ImageryError, ImagerySourceError
from annotator.store.models import Pair
from dataset.imagery.crop import DEFAULT_RESOLUTION_M, DEFAULT_SIZE_PX, Crop, crop_at
from dataset.imagery.sources import TileSource, open_source
from dataset.images import save_jpeg

IMAGES_DIR = "images"
COMMIT_EVERY = 100
STATUS_PRESENT = "present"
STATUS_NEEDS = "needs_imagery"
STATUS_FAILED = "failed"


@dataclass
class FillReport:
    """What a fill did: pairs given an image, failures by reason, pairs left alone."""

    filled: int = 0
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    source: str = ""

    @property
    def failed(self) -> int:
        return sum(self.failed_by_reason.values())


def image_relpath(pair_id: int) -> str:
    """Where a pair's image lives, relative to the media directory."""
    return f"{IMAGES_DIR}/{pair_id}.jpg"


def default_tile_cache(location: StoreLocation) -> Path:
    """The tile cache of URL sources: ``.tile-cache`` beside the media directory."""
    return location.media_dir.parent / ".tile-cache"


def store_crop(pair: Pair, crop: Crop, location: StoreLocation, source_spec: str) -> None:
    """Save ``crop`` as the pair's image (atomic JPEG) and record its provenance and footprint on ``pair``.

    The caller commits. ``image_resolution_m`` is the image's metres per pixel; the source's native resolution
    follows from ``image_zoom`` (``geo.metres_per_pixel(lat, zoom)``).
    """
    relpath = image_relpath(pair.id)
    save_jpeg(crop.image, location.media_dir / relpath)
    pair.image_path = relpath
    pair.image_status = STATUS_PRESENT
    pair.image_error = None
    pair.image_source = source_spec
    pair.image_zoom = crop.zoom
    pair.image_resolution_m = crop.resolution_m
    pair.footprint_west, pair.footprint_south, pair.footprint_east, pair.footprint_north = crop.footprint


def failure_reason(exc: ImageryError) -> str:
    """A short machine-readable reason for a failed pair (the full message goes to ``image_error``)."""
    text = str(exc)
    if "Web-Mercator" in text or "not a number" in text:
        return "out_of_range"
    if " missing at " in text:
        return "tile_missing"
    if "failed after" in text or "HTTP" in text:
        return "fetch_failed"
    if "not a readable image" in text or "not square" in text or "cannot read tile" in text:
        return "bad_tile"
    return "imagery_error"


def count_pairs_to_fill(engine: Engine, *, retry_failed: bool = True) -> int:
    """How many pairs :func:`fill_missing_images` would work on."""
    wanted = [STATUS_NEEDS, STATUS_FAILED] if retry_failed else [STATUS_NEEDS]
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Pair).where(Pair.image_status.in_(wanted))) or 0


def fill_missing_images(
    engine: Engine,
    location: StoreLocation,
    source: str | TileSource,
    *,
    resolution_m: float = DEFAULT_RESOLUTION_M,
    size_px: int = DEFAULT_SIZE_PX,
    retry_failed: bool = True,
    pair_ids: list[int] | None = None,
    cache_dir: Path | None = None,
    user_agent: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> FillReport:
    """Cut an image for every pair that has none, from the imagery ``source``; commits every 100 pairs.

    Args:
        engine: The store.
        location: Store location (images go to ``<media_dir>/images/<pair_id>.jpg``).
        source: A SOURCE string (see :func:`dataset.imagery.sources.open_source`) or an open source.
        resolution_m: Target ground resolution of the image, metres per pixel.
        size_px: Side of the square image.
        retry_failed: Also retry pairs whose earlier fill failed (otherwise only ``needs_imagery`` ones).
        pair_ids: Restrict to these pairs (e.g. the ones an import just created).
        cache_dir: Tile cache of a URL source (default ``.tile-cache`` beside the media directory).
        user_agent: User-Agent for a URL source.
        progress: Called with the number of pairs done after each pair.

    Returns:
        A :class:`FillReport`.

    Raises:
        ImagerySourceError: The SOURCE is unusable as a whole (pairs done so far stay committed).
    """
    spec = source if isinstance(source, str) else source.spec
    report = FillReport(source=spec)
    with Session(engine) as session:
        query = select(Pair.id).order_by(Pair.id)
        wanted = [STATUS_NEEDS, STATUS_FAILED] if retry_failed else [STATUS_NEEDS]
        todo = list(session.scalars(query.where(Pair.image_status.in_(wanted))))
        others = select(Pair.id).where(Pair.image_status.not_in(wanted))
        if pair_ids is not None:
            chosen = set(pair_ids)
            todo = [pid for pid in todo if pid in chosen]
            report.skipped = len(chosen) - len(todo)
        else:
            report.skipped = len(session.scalars(others).all())
    # Opened even when nothing is left to do, so a mistyped SOURCE is reported at once.
    tiles = (
        open_source(spec, cache_dir=cache_dir or default_tile_cache(location), user_agent=user_agent)
        if isinstance(source, str)
        else source
    )
    try:
        with Session(engine) as session:
            for start in range(0, len(todo), COMMIT_EVERY):
                batch = session.scalars(select(Pair).where(Pair.id.in_(todo[start : start + COMMIT_EVERY])))
                try:
                    for pair in batch.all():
                        _fill_one(pair, tiles, location, spec, resolution_m, size_px, report)
                        if progress is not None:
                            progress(1)
                finally:
                    session.commit()  # images already written keep their rows, even when the source gives out
    finally:
        if isinstance(source, str):
            tiles.close()
    return report


def _fill_one(
    pair: Pair,
    tiles: TileSource,
    location: StoreLocation,
    spec: str,
    resolution_m: float,
    size_px: int,
    report: FillReport,
) -> None:
    try:
        crop = crop_at(tiles, pair.lat, pair.lon, size_px=size_px, resolution_m=resolution_m)
    except ImagerySourceError:
        raise
    except ImageryError as exc:
        reason = failure_reason(exc)
        pair.image_status = STATUS_FAILED
        pair.image_error = f"{reason}: {exc}"
        pair.image_source = spec
        report.failed_by_reason[reason] += 1
        return
    store_crop(pair, crop, location, spec)
    report.filled += 1
