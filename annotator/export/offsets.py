"""Offset pairs (SPEC §8): four new pairs per original of a small class, made once and kept in the store.

Every original location of an augmented class is moved ``offset_m`` metres north, east, south and west
(``offset_index`` 1–4 in that order): four new images cut from the imagery source, each with a new seeded 10 s
clip of the same recording that is never the original's window nor another offset's
(:mod:`dataset.offset_clips`). The offset pairs are rows of the store (``origin = offset`` with their parent,
direction and metres), so a later export reuses them and a reviewer can be shown them.

Transactions: :func:`ensure_offsets` works in the caller's :class:`~annotator.store.UnitOfWork` and calls
``work.commit_batch()`` after every :data:`PARENTS_PER_BATCH` parents, so a killed export keeps what it made.
Two exports at once on one store may set out to make the same offset pairs; the one that commits second hits
the unique constraint, rolls its batch back (removing the media files it wrote for it) and redoes the batch,
which now finds and reuses the other's rows (at most :data:`BATCH_ATTEMPTS` times).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import ExportError, ImageryError
from annotator.export.offset_audio import OffsetAudio, offset_audio
from annotator.export.offset_report import OffsetProblem, OffsetReport
from annotator.export.selection import SelectedPair
from annotator.imagery import default_tile_cache, store_crop
from annotator.store import UnitOfWork
from annotator.store.media import clip_relpath
from annotator.store.models import Pair, Recording
from annotator.vocabulary import IMAGE_SOURCE_MANIFEST, ImageStatus, OffsetDirection, PairOrigin
from dataset.audio import CLIP_S, cut_clip, write_wav_pcm16
from dataset.imagery.crop import DEFAULT_RESOLUTION_M, DEFAULT_SIZE_PX, crop_at
from dataset.imagery.geo import offset_point
from dataset.imagery.sources import TileSource, open_source
from dataset.offset_clips import draw_offset_window, window_span_s

#: Parents whose offsets are made between two commits.
PARENTS_PER_BATCH = 25
#: Tries of one batch when another export commits the same offset pairs first.
BATCH_ATTEMPTS = 5
#: Parent ids per ``IN (...)`` query (below SQLite's variable limit).
IDS_PER_QUERY = 500
DIRECTIONS: tuple[OffsetDirection, ...] = tuple(OffsetDirection)

OffsetKey = tuple[int, OffsetDirection]
"""(parent pair id, direction): the identity of an offset pair at one ``offset_m``."""


@dataclass(frozen=True)
class OffsetSettings:
    """The parameters offset pairs are made with."""

    offset_m: float
    seed: int
    imagery: str | None
    audio_root: Path | None
    clip_s: float = CLIP_S


@dataclass(frozen=True)
class OffsetSample:
    """A complete offset pair (image and clip present) as the export needs it."""

    pair_id: int
    parent_pair_id: int
    direction: OffsetDirection
    offset_index: int
    lat: float
    lon: float
    image_path: str
    clip_path: str
    final_label: str | None
    image_source: str | None = None
    image_acquired: str | None = None
    footprint: tuple[float, float, float, float] | None = None  # (west, south, east, north), degrees


# ------------------------------------------------------------------------------------------ reading


def _has_image(pair: Pair, media_dir: Path) -> bool:
    return (
        pair.image_status == ImageStatus.PRESENT
        and bool(pair.image_path)
        and (media_dir / str(pair.image_path)).is_file()
    )


def _has_clip(pair: Pair, media_dir: Path) -> bool:
    return bool(pair.clip_path) and (media_dir / str(pair.clip_path)).is_file()


def _complete(pair: Pair, media_dir: Path) -> bool:
    return _has_image(pair, media_dir) and _has_clip(pair, media_dir)


def _offsets_of(session: Session, parent_ids: Sequence[int], offset_m: float) -> dict[OffsetKey, Pair]:
    """The stored offset pairs of `parent_ids` at `offset_m`, complete or not."""
    found: dict[OffsetKey, Pair] = {}
    for start in range(0, len(parent_ids), IDS_PER_QUERY):
        chunk = parent_ids[start : start + IDS_PER_QUERY]
        rows = session.scalars(
            select(Pair).where(
                Pair.origin == PairOrigin.OFFSET, Pair.parent_pair_id.in_(chunk), Pair.offset_m == offset_m
            )
        )
        for pair in rows:
            assert pair.parent_pair_id is not None and pair.direction is not None
            found[(pair.parent_pair_id, pair.direction)] = pair
    return found


def _as_sample(pair: Pair) -> OffsetSample:
    assert pair.parent_pair_id is not None and pair.direction is not None
    return OffsetSample(
        pair_id=pair.id,
        parent_pair_id=pair.parent_pair_id,
        direction=pair.direction,
        offset_index=pair.offset_index or pair.direction.index,
        lat=pair.lat,
        lon=pair.lon,
        image_path=str(pair.image_path),
        clip_path=str(pair.clip_path),
        final_label=pair.final_label,
        image_source=pair.image_source,
        image_acquired=pair.image_acquired,
        footprint=pair.footprint,
    )


def _complete_offsets(
    session: Session, parent_ids: Sequence[int], offset_m: float, media_dir: Path
) -> dict[int, list[OffsetSample]]:
    """The complete offset pairs per parent pair id, in N, E, S, W order."""
    result: dict[int, list[OffsetSample]] = {pid: [] for pid in parent_ids}
    stored = sorted(
        _offsets_of(session, parent_ids, offset_m).items(), key=lambda item: (item[0][0], item[1].offset_index or 0)
    )
    for (pid, _direction), pair in stored:
        if _complete(pair, media_dir):
            result[pid].append(_as_sample(pair))
    return result


# ------------------------------------------------------------------------------------------ making


class _Sources:
    """Imagery sources opened once per SOURCE string and closed together."""

    def __init__(self, stack: ExitStack, location: StoreLocation, explicit: str | None) -> None:
        self._stack, self._location, self._explicit = stack, location, explicit
        self._open: dict[str, TileSource] = {}
        self._broken: dict[str, str] = {}

    def get(self, spec: str) -> TileSource:
        """The open source for `spec`; raises ImageryError when it cannot be opened."""
        if spec in self._broken:
            raise ImageryError(self._broken[spec])
        if spec not in self._open:
            try:
                source = open_source(spec, cache_dir=default_tile_cache(self._location))
            except ImageryError as exc:
                if spec == self._explicit:
                    raise  # the user's own --imagery is wrong: stop and say so
                self._broken[spec] = str(exc)
                raise
            self._open[spec] = self._stack.enter_context(source)
        return self._open[spec]


def _imagery_spec(parent: Pair, settings: OffsetSettings) -> str | None:
    """The SOURCE to cut a parent's offset images from: --imagery, else the one its own image came from."""
    if settings.imagery:
        return settings.imagery
    return parent.image_source if parent.image_source not in (None, IMAGE_SOURCE_MANIFEST) else None


def _new_offset_pair(session: Session, parent: Pair, direction: OffsetDirection, settings: OffsetSettings) -> Pair:
    lat, lon = offset_point(parent.lat, parent.lon, direction, settings.offset_m)
    pair = Pair(
        recording_id=parent.recording_id,
        origin=PairOrigin.OFFSET,
        parent_pair_id=parent.id,
        direction=direction,
        offset_m=settings.offset_m,
        offset_index=direction.index,
        lat=lat,
        lon=lon,
    )
    session.add(pair)
    session.flush()  # the media file names need the pair id
    return pair


def _write_offset_clip(
    pair: Pair,
    direction: OffsetDirection,
    recording: Recording,
    audio: OffsetAudio,
    location: StoreLocation,
    settings: OffsetSettings,
) -> None:
    """Cut the offset's own window (away from every taken one), write it and record it on `pair`."""
    key = f"{recording.source}:{recording.source_id}:offset:{direction.index}"
    span_s = window_span_s(audio.samples, audio.rate, audio.period_s, settings.clip_s)
    start = draw_offset_window(span_s, settings.seed, key, audio.taken, audio.period_s, settings.clip_s)
    audio.taken.append(start)
    relpath = clip_relpath(pair.id)
    write_wav_pcm16(
        location.media_dir / relpath, cut_clip(audio.samples, audio.rate, start, settings.clip_s), audio.rate
    )
    pair.clip_path, pair.clip_start_s, pair.clip_sample_rate = relpath, start, audio.rate
    pair.clip_seed = settings.seed


def _crop_offset_image(
    pair: Pair, source: TileSource, spec: str, resolution_m: float, location: StoreLocation
) -> ImageryError | None:
    """Cut and store the offset's image; the error (the pair marked failed) when the source has none there."""
    try:
        crop = crop_at(source, pair.lat, pair.lon, size_px=DEFAULT_SIZE_PX, resolution_m=resolution_m)
    except ImageryError as exc:
        # As imagery fill does: the reason, then the message.
        pair.image_status, pair.image_error = ImageStatus.FAILED, f"{exc.reason}: {exc}"
        return exc
    store_crop(pair, crop, location, spec)
    pair.image_error = None
    return None


def _make_offsets_for_parent(
    session: Session,
    parent: Pair,
    existing: dict[OffsetKey, Pair],
    settings: OffsetSettings,
    location: StoreLocation,
    sources: _Sources,
    report: OffsetReport,
) -> None:
    """Create or complete the four offset pairs of one original (in the caller's open batch)."""
    recording = parent.recording
    label = f"recording {recording.source_id!r} (pair {parent.id})"
    spec = _imagery_spec(parent, settings)
    if spec is None:
        report.problem(OffsetProblem.NO_IMAGERY_SOURCE, label, len(DIRECTIONS))
        return
    try:
        source = sources.get(spec)
    except ImageryError as exc:
        report.problem(OffsetProblem.IMAGERY_SOURCE_UNUSABLE, f"{label}: {exc}", len(DIRECTIONS))
        return
    audio = offset_audio(parent, location, settings.audio_root, settings.clip_s, report, label)
    if audio is None:
        return
    siblings = [existing.get((parent.id, d)) for d in DIRECTIONS]
    audio.taken.extend(s.clip_start_s for s in siblings if s is not None and s.clip_path and s.clip_start_s is not None)
    resolution_m = parent.image_resolution_m or DEFAULT_RESOLUTION_M
    for direction in DIRECTIONS:
        pair = existing.get((parent.id, direction))
        if pair is not None and _complete(pair, location.media_dir):
            continue
        if pair is None:
            pair = existing[(parent.id, direction)] = _new_offset_pair(session, parent, direction, settings)
        if not _has_clip(pair, location.media_dir):
            _write_offset_clip(pair, direction, recording, audio, location, settings)
        if not _has_image(pair, location.media_dir):
            error = _crop_offset_image(pair, source, spec, resolution_m, location)
            if error is not None:
                report.problem(OffsetProblem.OFFSET_IMAGERY_FAILED, f"{label} {direction}: {error}")
                continue
        report.created += 1


def ensure_offsets(
    work: UnitOfWork,
    location: StoreLocation,
    parents: Sequence[SelectedPair],
    settings: OffsetSettings,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[int, list[OffsetSample]], OffsetReport]:
    """Make sure every parent has its four offset pairs; create or complete the missing ones.

    Commits the unit of work once per batch of :data:`PARENTS_PER_BATCH` parents. Offsets that could not be made
    are counted in the report and left out; the next export retries them.

    Args:
        work: the caller's unit of work.
        location: where the media directory is (clips and images are written there).
        parents: the originals to give offsets.
        settings: distance, seed, imagery source and where the original recordings are.
        progress: called with the number of parents just done, after every batch.

    Returns:
        The complete offset pairs per parent pair id (in N, E, S, W order), and the report.

    Raises:
        ImageryError: ``settings.imagery`` names a source that cannot be opened.
    """
    session, media_dir = work.session, location.media_dir
    report = OffsetReport()
    parent_ids = sorted(p.pair_id for p in parents)
    existing = _offsets_of(session, parent_ids, settings.offset_m)
    todo = [pid for pid in parent_ids if not all(_complete_at(existing, pid, d, media_dir) for d in DIRECTIONS)]
    done_before = {key for key, pair in existing.items() if _complete(pair, media_dir)}
    report.reused = len(done_before)
    with ExitStack() as stack:
        sources = _Sources(stack, location, settings.imagery)
        if settings.imagery and todo:
            sources.get(settings.imagery)  # a wrong --imagery stops the export before anything is made
        for start in range(0, len(todo), PARENTS_PER_BATCH):
            batch = todo[start : start + PARENTS_PER_BATCH]
            _make_batch(work, location, batch, done_before, settings, sources, report)
            if progress is not None:
                progress(len(batch))
    return _complete_offsets(session, parent_ids, settings.offset_m, media_dir), report


def _make_batch(
    work: UnitOfWork,
    location: StoreLocation,
    batch: Sequence[int],
    done_before: set[OffsetKey],
    settings: OffsetSettings,
    sources: _Sources,
    report: OffsetReport,
) -> None:
    """Make the offsets of one batch of parents and commit them; redone when another export committed them first.

    `done_before`: the offsets complete when this export started (already counted as reused in `report`).
    """
    session, media_dir = work.session, location.media_dir
    for _attempt in range(BATCH_ATTEMPTS):
        batch_existing = _offsets_of(session, batch, settings.offset_m)
        known = set(batch_existing)
        batch_report = OffsetReport()
        # Offsets another export completed since this one started are reused, not made.
        batch_report.reused = sum(
            key not in done_before and _complete(pair, media_dir) for key, pair in batch_existing.items()
        )
        try:
            for parent in session.scalars(select(Pair).where(Pair.id.in_(batch)).order_by(Pair.id)):
                _make_offsets_for_parent(session, parent, batch_existing, settings, location, sources, batch_report)
            work.commit_batch()
        except IntegrityError:
            # Remove this batch's new media files while its pair ids are still ours (before the rollback).
            _remove_media(media_dir, [p for key, p in batch_existing.items() if key not in known])
            session.rollback()
            continue
        report.merge(batch_report)
        return
    raise ExportError(
        f"another export kept making the same offset pairs ({BATCH_ATTEMPTS} tries); run export again when it is done"
    )


def _remove_media(media_dir: Path, pairs: Sequence[Pair]) -> None:
    """Remove the clip and image files written for `pairs` (new rows about to be rolled back)."""
    for pair in pairs:
        for relpath in (pair.clip_path, pair.image_path):
            if relpath:
                (media_dir / str(relpath)).unlink(missing_ok=True)


def _complete_at(existing: dict[OffsetKey, Pair], parent_id: int, direction: OffsetDirection, media_dir: Path) -> bool:
    pair = existing.get((parent_id, direction))
    return pair is not None and _complete(pair, media_dir)
