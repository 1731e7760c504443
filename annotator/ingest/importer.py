"""Import a manifest of geotagged recordings into the store: one accepted recording → one pair (SPEC §1, §5).

The import streams the manifest row by row and commits every ``batch_size`` rows, so memory stays flat and a
killed import leaves a consistent store: media files are written before the rows that name them are committed
(an interrupted batch leaves at most unreferenced files, overwritten on the rerun), and a rerun skips what is
already there. A recording already in the store is compared by sha256 and coordinates: identical → unchanged;
different → reported (``changed_file`` / ``changed_metadata``), never overwritten.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import BadManifestRow
from annotator.ingest.checks import MISSING_ID, parse_coordinates, resolve_in_root
from annotator.ingest.manifest import Manifest, ManifestRow, open_manifest
from annotator.ingest.rejects import RejectsWriter
from annotator.store.models import ImportReject, Pair, Recording
from dataset.audio import MISSING_FILE, AudioInfo, probe_audio, read_clip_source, sha256_file, write_wav_pcm16
from dataset.images import normalise_image, save_jpeg

if TYPE_CHECKING:
    from PIL import Image

MIN_DURATION_S = 2.0
BATCH_SIZE = 200
CLIPS_DIR = "clips"
IMAGES_DIR = "images"

TOO_SHORT = "too_short"
DUPLICATE_ID = "duplicate_id"
CHANGED_FILE = "changed_file"
CHANGED_METADATA = "changed_metadata"

STATUS_ACCEPTED = "accepted"
STATUS_REJECTED = "rejected"
IMAGE_PRESENT = "present"
IMAGE_NEEDED = "needs_imagery"
IMAGE_SOURCE_MANIFEST = "manifest"
ORIGIN_ORIGINAL = "original"

#: Coordinates closer than this (degrees, ~1 cm) count as the same place on a re-import.
_SAME_PLACE_DEG = 1e-7


@dataclass
class ImportReport:
    """What one import did."""

    manifest: str
    format: str
    rejects_path: Path
    rows: int = 0
    new: int = 0
    unchanged: int = 0
    duplicates_skipped: int = 0  # identical repeated rows
    looped: int = 0  # new pairs whose recording was looped to reach 10 s
    with_image: int = 0  # new pairs with an image from the manifest
    rejected: Counter[str] = field(default_factory=Counter)
    needs_imagery: int = 0  # pairs in the whole store still without an image after the import

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class _Outcome:
    kind: str  # "new", "unchanged", "too_short", "duplicate"
    looped: bool = False
    with_image: bool = False
    detail: str = ""


@dataclass
class _Prepared:
    """A new recording, decoded off the main thread: its row, header, clip window and image (if any)."""

    recording: Recording
    info: AudioInfo
    clip: np.ndarray | None = None  # None: too short, no pair
    start_s: float = 0.0
    looped: bool = False
    image: Image.Image | None = None


class _RowImporter:
    """Turns one manifest row into store rows and media files (inside the caller's session)."""

    def __init__(
        self, location: StoreLocation, manifest: Manifest, audio_root: Path, image_root: Path, seed: int
    ) -> None:
        self.location = location
        self.manifest_name = manifest.path.name
        self.audio_root = audio_root
        self.image_root = image_root
        self.seed = seed

    def plan(self, session: Session, row: ManifestRow) -> _Outcome | Callable[[], _Prepared]:
        """Cheap checks and the store lookup, on the main thread.

        Returns the outcome when the row needs no decoding (a re-imported recording), else the heavy work
        (probe, hash, decode, image) as a callable that touches no session and may run on a worker thread.
        """
        if row.problem is not None and row.problem[0] != MISSING_FILE:
            raise BadManifestRow(*row.problem)
        if row.recording_id is None:
            raise BadManifestRow(MISSING_ID, "no recording_id given")
        lat, lon = parse_coordinates(row.lat, row.lon)
        if row.problem is not None:  # the reader found no file for it (Freesound): coordinates were checked first
            raise BadManifestRow(*row.problem)
        if row.audio is None:
            raise BadManifestRow(MISSING_FILE, "no audio path given")
        audio_path, audio_rel = resolve_in_root(self.audio_root, row.audio, "audio")
        image_path = resolve_in_root(self.image_root, row.image, "image")[0] if row.image else None

        existing = session.scalar(
            select(Recording).where(Recording.source == row.source, Recording.source_id == row.recording_id)
        )
        if existing is not None:
            return self._compare(existing, audio_path, lat, lon)
        return partial(self._prepare, row, audio_path, audio_rel, image_path, lat, lon)

    def _prepare(
        self, row: ManifestRow, audio_path: Path, audio_rel: str, image_path: Path | None, lat: float, lon: float
    ) -> _Prepared:
        """The heavy, session-free part of a new row: probe, hash, decode the clip window, normalise the image."""
        info = probe_audio(audio_path)
        sha256 = sha256_file(audio_path)
        recording = Recording(
            source=row.source,
            source_id=row.recording_id,
            lat=lat,
            lon=lon,
            original_path=audio_rel,
            sha256=sha256,
            file_format=info.format,
            sample_rate=info.sample_rate,
            channels=info.channels,
            frames=info.frames,
            duration_s=info.duration_s,
            license=row.license,
            author=row.author,
            source_url=row.source_url,
            manifest=self.manifest_name,
        )
        if info.duration_s < MIN_DURATION_S:
            return _Prepared(recording, info)
        image = normalise_image(image_path) if image_path is not None else None
        key = f"{recording.source}:{recording.source_id}"
        clip, start_s, looped = read_clip_source(audio_path, info, seed=self.seed, key=key)
        return _Prepared(recording, info, clip, start_s, looped, image)

    def store(self, session: Session, prepared: _Prepared) -> _Outcome:
        """Add the prepared rows to the session and write their media files (main thread)."""
        recording, info = prepared.recording, prepared.info
        if prepared.clip is None:
            # A real recording, kept so status can count it, but it gets no pair.
            recording.status, recording.reject_reason = STATUS_REJECTED, TOO_SHORT
            session.add(recording)
            return _Outcome("too_short", detail=f"{info.duration_s:.3f} s is shorter than {MIN_DURATION_S} s")
        return self._add_pair(session, prepared)

    def _compare(self, existing: Recording, audio_path: Path, lat: float, lon: float) -> _Outcome:
        if abs(existing.lat - lat) > _SAME_PLACE_DEG or abs(existing.lon - lon) > _SAME_PLACE_DEG:
            raise BadManifestRow(
                CHANGED_METADATA,
                f"stored at ({existing.lat}, {existing.lon}), the manifest now says ({lat}, {lon}); "
                "the stored recording is kept",
            )
        try:
            sha256 = sha256_file(audio_path)
        except OSError as exc:
            raise BadManifestRow(MISSING_FILE, f"cannot read {audio_path}: {exc.strerror}") from None
        if sha256 != existing.sha256:
            raise BadManifestRow(
                CHANGED_FILE,
                f"{audio_path.name} differs from the file imported before (sha256 {existing.sha256[:12]}…, "
                f"now {sha256[:12]}…); the stored recording is kept",
            )
        return _Outcome("unchanged", detail=existing.status)

    def _add_pair(self, session: Session, prepared: _Prepared) -> _Outcome:
        recording, info, image = prepared.recording, prepared.info, prepared.image
        recording.status = STATUS_ACCEPTED
        recording.looped = prepared.looped
        pair = Pair(
            recording=recording,
            origin=ORIGIN_ORIGINAL,
            lat=recording.lat,
            lon=recording.lon,
            clip_start_s=prepared.start_s,
            clip_seed=self.seed,
            clip_sample_rate=info.sample_rate,
            image_status=IMAGE_NEEDED,
        )
        session.add(recording)
        session.add(pair)
        session.flush()  # the pair id names its files
        pair.clip_path = f"{CLIPS_DIR}/{pair.id}.wav"
        write_wav_pcm16(self.location.media_dir / pair.clip_path, prepared.clip, info.sample_rate)
        if image is not None:
            pair.image_path = f"{IMAGES_DIR}/{pair.id}.jpg"
            save_jpeg(image, self.location.media_dir / pair.image_path)
            pair.image_status, pair.image_source = IMAGE_PRESENT, IMAGE_SOURCE_MANIFEST
        return _Outcome("new", looped=prepared.looped, with_image=image is not None)


def import_manifest(
    engine: Engine,
    location: StoreLocation,
    manifest_path: Path,
    *,
    rejects_path: Path,
    audio_root: Path | None = None,
    image_root: Path | None = None,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    workers: int = 2,
    on_start: Callable[[int | None], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every row of a manifest; long batch job: commits every `batch_size` rows.

    Args:
        engine: The store (at head).
        location: Where media files go (``clips/<pair_id>.wav``, ``images/<pair_id>.jpg``).
        manifest_path: CSV, JSON Lines or Freesound search-results JSON.
        rejects_path: The rejects CSV to write (line, recording_id, reason, detail); replaced atomically.
        audio_root: Folder relative audio paths resolve against (default: the manifest's folder).
        image_root: Folder relative image paths resolve against (default: the manifest's folder).
        seed: Seeds every clip window together with the recording id.
        batch_size: Rows per transaction.
        workers: Threads that probe, hash and decode new recordings ahead of the main thread.
        on_start: Called once with the (approximate) number of rows, before the first row.
        progress: Called with 1 after each row.

    Returns:
        An :class:`ImportReport`; ``needs_imagery`` counts the whole store.

    Raises:
        BadManifest: the manifest as a whole is unusable; nothing is written then.
    """
    manifest_path = Path(manifest_path)
    manifest = open_manifest(manifest_path, audio_root=audio_root)
    base = manifest_path.parent
    import_row = _RowImporter(location, manifest, audio_root or base, image_root or base, seed)
    report = ImportReport(manifest=manifest_path.name, format=manifest.format, rejects_path=Path(rejects_path))
    if on_start is not None:
        on_start(manifest.approx_rows)
    # id -> (fingerprint, line) of every row seen in this manifest: ~100 bytes per row, to spot duplicates.
    seen: dict[str, tuple[bytes, int]] = {}
    with Session(engine) as session, RejectsWriter(rejects_path) as rejects:
        earlier_rejects = {
            (line, reason)
            for line, reason in session.execute(
                select(ImportReject.line, ImportReject.reason).where(ImportReject.manifest == manifest_path.name)
            )
        }
        earlier_lines = {line for line, _ in earlier_rejects}
        cleared_lines: list[int] = []

        def reject(row: ManifestRow, reason: str, detail: str) -> None:
            report.rejected[reason] += 1
            rejects.write(row.line, row.recording_id, reason, detail)
            if (row.line, reason) not in earlier_rejects:
                earlier_rejects.add((row.line, reason))
                session.add(
                    ImportReject(
                        manifest=manifest_path.name,
                        line=row.line,
                        recording_ref=row.recording_id,
                        reason=reason,
                        detail=detail,
                    )
                )

        def commit() -> None:
            if cleared_lines:
                session.execute(
                    delete(ImportReject).where(
                        ImportReject.manifest == manifest_path.name, ImportReject.line.in_(cleared_lines)
                    )
                )
                cleared_lines.clear()
            session.commit()
            session.expunge_all()

        def finish(row: ManifestRow, work: Future[_Prepared] | _Outcome | BadManifestRow) -> None:
            try:
                if isinstance(work, BadManifestRow):
                    raise work
                outcome = work if isinstance(work, _Outcome) else import_row.store(session, work.result())
            except BadManifestRow as exc:
                reject(row, exc.reason, exc.detail)
            else:
                if outcome.kind == "duplicate":  # an identical repeated row: counted when it was met
                    pass
                elif outcome.kind == "too_short":
                    reject(row, TOO_SHORT, outcome.detail)
                elif outcome.kind == "unchanged":
                    report.unchanged += 1
                    if row.line in earlier_lines and outcome.detail == STATUS_ACCEPTED:
                        cleared_lines.append(row.line)
                else:
                    report.new += 1
                    report.looped += outcome.looped
                    report.with_image += outcome.with_image
                    if row.line in earlier_lines:
                        cleared_lines.append(row.line)
            report.rows += 1
            if report.rows % batch_size == 0:
                commit()
            _tick(progress)

        # Rows are finished strictly in manifest order; only decoding runs ahead, on `workers` threads
        # (libsndfile, hashlib and Pillow release the GIL), at most `window` rows ahead of the main thread.
        window = max(1, 2 * workers)
        pending: deque[tuple[ManifestRow, Future[_Prepared] | _Outcome | BadManifestRow]] = deque()
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="import") as pool:
            try:
                for row in manifest.rows():
                    if row.recording_id is not None and row.problem is None:
                        fingerprint = row.fingerprint()
                        first = seen.get(row.recording_id)
                        if first is not None:
                            if first[0] == fingerprint:
                                report.duplicates_skipped += 1
                                work: Future[_Prepared] | _Outcome | BadManifestRow = _Outcome("duplicate")
                            else:
                                work = BadManifestRow(
                                    DUPLICATE_ID, f"{row.recording_id} is already on line {first[1]} with other data"
                                )
                            pending.append((row, work))
                            continue
                        seen[row.recording_id] = (fingerprint, row.line)
                    try:
                        planned = import_row.plan(session, row)
                        work = planned if isinstance(planned, _Outcome) else pool.submit(planned)
                    except BadManifestRow as exc:
                        work = exc
                    pending.append((row, work))
                    while len(pending) > window:
                        finish(*pending.popleft())
                while pending:
                    finish(*pending.popleft())
            finally:
                for _, work in pending:  # interrupted: do not decode what will never be stored
                    if isinstance(work, Future):
                        work.cancel()
        commit()
        report.needs_imagery = count_pairs_needing_imagery(session)
    return report


def _tick(progress: Callable[[int], None] | None) -> None:
    if progress is not None:
        progress(1)


def count_pairs_needing_imagery(session: Session) -> int:
    """Pairs in the store whose image is not present yet."""
    return session.scalar(select(func.count()).select_from(Pair).where(Pair.image_status != IMAGE_PRESENT)) or 0
