"""Fill pairs' aerial images from an imagery SOURCE (issues 3, 15): a long batch job that commits as it goes.

``fill_missing_images`` is what ``annotator import --imagery SOURCE`` and ``annotator imagery fill`` call. A pair
that cannot get an image (beyond Web-Mercator, tiles missing, outside a GeoTIFF, a WMS service exception, a server
that keeps failing) is marked ``failed`` with the reason the error carries and the run goes on; a SOURCE that is
unusable as a whole stops the run after committing what was done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import ImageryError, ImagerySourceError
from annotator.store import UnitOfWork
from annotator.store.media import image_relpath
from annotator.store.models import Pair
from annotator.vocabulary import ImageryFailure, ImageStatus
from dataset.imagery.base import TileSource
from dataset.imagery.crop import DEFAULT_RESOLUTION_M, DEFAULT_SIZE_PX, Crop, crop_at
from dataset.imagery.sources import open_source
from dataset.images import save_jpeg

#: Pairs per committed batch: a killed fill keeps every finished batch.
COMMIT_EVERY = 100


@dataclass
class FillReport:
    """What a fill did: pairs given an image, failures by reason, pairs left alone."""

    filled: int = 0
    failed_by_reason: Counter[ImageryFailure] = field(default_factory=Counter)
    skipped: int = 0
    source: str = ""

    @property
    def failed(self) -> int:
        """Pairs that could not get an image, whatever the reason."""
        return sum(self.failed_by_reason.values())


@dataclass(frozen=True)
class _FillSettings:
    """What every pair of one fill shares."""

    tiles: TileSource
    location: StoreLocation
    spec: str
    resolution_m: float
    size_px: int


def default_tile_cache(location: StoreLocation) -> Path:
    """The tile cache of URL sources: ``.tile-cache`` beside the media directory."""
    return location.media_dir.parent / ".tile-cache"


def store_crop(pair: Pair, crop: Crop, location: StoreLocation, source_spec: str) -> None:
    """Save ``crop`` as the pair's image (atomic JPEG) and record its provenance and footprint on ``pair``.

    The caller commits. ``image_resolution_m`` is the image's metres per pixel; the source's native resolution
    follows from ``image_zoom`` (``geo.metres_per_pixel(lat, zoom)``; for a GeoTIFF or WMS, the zoom nearest its
    resolution). ``image_acquired`` is the imagery's acquisition date where the source states it, else None.
    """
    relpath = image_relpath(pair.id)
    save_jpeg(crop.image, location.media_dir / relpath)
    pair.image_path = relpath
    pair.image_status = ImageStatus.PRESENT
    pair.image_error = None
    pair.image_source = source_spec
    pair.image_zoom = crop.zoom
    pair.image_resolution_m = crop.resolution_m
    pair.image_acquired = crop.acquired
    pair.footprint_west, pair.footprint_south, pair.footprint_east, pair.footprint_north = crop.footprint


def _statuses_to_fill(retry_failed: bool) -> list[ImageStatus]:
    if retry_failed:
        return [ImageStatus.NEEDS_IMAGERY, ImageStatus.FAILED]
    return [ImageStatus.NEEDS_IMAGERY]


def count_pairs_to_fill(session: Session, *, retry_failed: bool = True) -> int:
    """How many pairs :func:`fill_missing_images` would work on (for a progress bar's total)."""
    wanted = Pair.image_status.in_(_statuses_to_fill(retry_failed))
    return session.scalar(select(func.count()).select_from(Pair).where(wanted)) or 0


def _pairs_to_fill(session: Session, retry_failed: bool, pair_ids: Sequence[int] | None) -> tuple[list[int], int]:
    """The ids of the pairs to fill, in id order, and how many pairs are left alone."""
    wanted = _statuses_to_fill(retry_failed)
    todo = list(session.scalars(select(Pair.id).where(Pair.image_status.in_(wanted)).order_by(Pair.id)))
    if pair_ids is not None:
        chosen = set(pair_ids)
        todo = [pid for pid in todo if pid in chosen]
        return todo, len(chosen) - len(todo)
    others = select(func.count()).select_from(Pair).where(Pair.image_status.not_in(wanted))
    return todo, session.scalar(others) or 0


def fill_missing_images(
    work: UnitOfWork,
    location: StoreLocation,
    source: str | TileSource,
    *,
    resolution_m: float = DEFAULT_RESOLUTION_M,
    size_px: int = DEFAULT_SIZE_PX,
    retry_failed: bool = True,
    pair_ids: Sequence[int] | None = None,
    cache_dir: Path | None = None,
    user_agent: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> FillReport:
    """Cut an image for every pair that has none, from the imagery ``source``.

    Calls ``work.commit_batch()`` after every 100 pairs, and also when the SOURCE gives out mid-run, so the
    images already written keep their rows.

    Args:
        work: The caller's unit of work on the store.
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
        ImagerySourceError: The SOURCE is unusable as a whole (pairs done so far are committed).
    """
    spec = source if isinstance(source, str) else source.spec
    report = FillReport(source=spec)
    todo, report.skipped = _pairs_to_fill(work.session, retry_failed, pair_ids)
    # Opened even when nothing is left to do, so a mistyped SOURCE is reported at once.
    tiles = (
        open_source(spec, cache_dir=cache_dir or default_tile_cache(location), user_agent=user_agent)
        if isinstance(source, str)
        else source
    )
    settings = _FillSettings(tiles, location, spec, resolution_m, size_px)
    try:
        for start in range(0, len(todo), COMMIT_EVERY):
            _fill_batch(work, todo[start : start + COMMIT_EVERY], settings, report, progress)
    finally:
        if isinstance(source, str):
            tiles.close()
    return report


def _fill_batch(
    work: UnitOfWork,
    ids: list[int],
    settings: _FillSettings,
    report: FillReport,
    progress: Callable[[int], None] | None,
) -> None:
    """Fill one batch of pairs and commit it, also when the source gives out part-way."""
    try:
        for pair in work.session.scalars(select(Pair).where(Pair.id.in_(ids)).order_by(Pair.id)).all():
            _fill_one(pair, settings, report)
            if progress is not None:
                progress(1)
    finally:
        work.commit_batch()  # images already written keep their rows, even when the source gives out


def _fill_one(pair: Pair, settings: _FillSettings, report: FillReport) -> None:
    """Give ``pair`` its image, or mark it failed with the reason the imagery error carries."""
    try:
        crop = crop_at(settings.tiles, pair.lat, pair.lon, size_px=settings.size_px, resolution_m=settings.resolution_m)
    except ImagerySourceError:
        raise
    except ImageryError as exc:
        pair.image_status = ImageStatus.FAILED
        pair.image_error = f"{exc.reason}: {exc}"
        pair.image_source = settings.spec
        report.failed_by_reason[exc.reason] += 1
        return
    store_crop(pair, crop, settings.location, settings.spec)
    report.filled += 1


def preview_crop(
    spec: str,
    lat: float,
    lon: float,
    out: Path,
    *,
    size_px: int = DEFAULT_SIZE_PX,
    resolution_m: float = DEFAULT_RESOLUTION_M,
    cache_dir: Path | None = None,
    user_agent: str | None = None,
) -> Crop:
    """Cut one image at (lat, lon) from the SOURCE ``spec`` and save it as JPEG at ``out`` (touches no store).

    Raises:
        ImageryError: The point has no image at the source, or the source is unusable.
    """
    with open_source(spec, cache_dir=cache_dir, user_agent=user_agent) as source:
        crop = crop_at(source, lat, lon, size_px=size_px, resolution_m=resolution_m)
    save_jpeg(crop.image, out)
    return crop
