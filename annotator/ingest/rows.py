"""One manifest row into store rows and media files: check, look up, decode, store (SPEC §1, §5).

A row is handled in three steps so decoding can run ahead on worker threads: :meth:`RowImporter.plan` (cheap
checks and the store lookup, main thread), :meth:`RowImporter.prepare` (probe, hash, decode, image; touches no
session, any thread) and :meth:`RowImporter.store` (rows and media files, main thread). A bad row raises
:class:`~annotator.errors.BadManifestRow` with its reason from any step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import BadManifestRow
from annotator.files import sha256_file
from annotator.ingest.checks import parse_coordinates, resolve_in_root
from annotator.ingest.manifest import ManifestRow
from annotator.ingest.outcome import RowOutcome, RowResult
from annotator.store.media import clip_relpath, image_relpath
from annotator.store.models import Pair, Recording
from annotator.vocabulary import (
    IMAGE_SOURCE_MANIFEST,
    ImageStatus,
    PairOrigin,
    RecordingStatus,
    RejectReason,
)
from dataset.audio import AudioInfo, probe_audio, read_clip_source, write_wav_pcm16
from dataset.images import normalise_image, save_jpeg

if TYPE_CHECKING:
    from PIL import Image

MIN_DURATION_S = 2.0

#: Coordinates closer than this (degrees, ~1 cm) count as the same place on a re-import.
_SAME_PLACE_DEG = 1e-7


@dataclass
class PreparedRow:
    """A new recording, decoded off the main thread: its row, header, clip window and image (if any)."""

    recording: Recording
    info: AudioInfo
    clip: np.ndarray | None = None  # None: too short, no pair
    start_s: float = 0.0
    looped: bool = False
    image: Image.Image | None = None


@dataclass(frozen=True)
class CheckedRow:
    """A row whose fields passed the checks that need no file."""

    row: ManifestRow
    recording_id: str
    lat: float
    lon: float
    audio_path: Path
    audio_rel: str  # relative to the audio root, as the store keeps it
    image_path: Path | None


def _sha256_or_reject(path: Path) -> str:
    """The file's sha256; a file that is gone or cannot be read is the row's reject, not the import's end."""
    try:
        return sha256_file(path)
    except FileNotFoundError:
        raise BadManifestRow(RejectReason.MISSING_FILE, f"no file at {path}") from None
    except OSError as exc:
        raise BadManifestRow(RejectReason.UNREADABLE_FILE, f"cannot read {path}: {exc.strerror}") from None


class RowImporter:
    """Turns one manifest row into store rows and media files (inside the caller's session).

    Args:
        location: Where media files go (``clips/<pair_id>.wav``, ``images/<pair_id>.jpg``).
        manifest_name: The manifest's file name, kept on each recording.
        audio_root: Folder relative audio paths resolve against.
        image_root: Folder relative image paths resolve against.
        seed: Seeds every clip window together with the recording id.
    """

    def __init__(
        self, location: StoreLocation, manifest_name: str, audio_root: Path, image_root: Path, seed: int
    ) -> None:
        self.location = location
        self.manifest_name = manifest_name
        self.audio_root = audio_root
        self.image_root = image_root
        self.seed = seed

    def plan(self, session: Session, row: ManifestRow) -> RowResult | Callable[[], PreparedRow]:
        """Cheap checks and the store lookup, on the main thread.

        Returns:
            The result when the row needs no decoding (a re-imported recording), else the heavy work (probe,
            hash, decode, image) as a callable that touches no session and may run on a worker thread.

        Raises:
            BadManifestRow: the row cannot be imported.
        """
        checked = self._check(row)
        existing = session.scalar(
            select(Recording).where(Recording.source == row.source, Recording.source_id == checked.recording_id)
        )
        if existing is not None:
            return self._compare(existing, checked)
        return partial(self.prepare, checked)

    def _check(self, row: ManifestRow) -> CheckedRow:
        """The checks that need no file, in the order their reasons take precedence."""
        if row.problem is not None and row.problem[0] != RejectReason.MISSING_FILE:
            raise BadManifestRow(*row.problem)
        if row.recording_id is None:
            raise BadManifestRow(RejectReason.MISSING_ID, "no recording_id given")
        lat, lon = parse_coordinates(row.lat, row.lon)
        if row.problem is not None:  # the reader found no file for it (Freesound): coordinates were checked first
            raise BadManifestRow(*row.problem)
        if row.audio is None:
            raise BadManifestRow(RejectReason.MISSING_FILE, "no audio path given")
        audio_path, audio_rel = resolve_in_root(self.audio_root, row.audio, "audio")
        image_path = resolve_in_root(self.image_root, row.image, "image")[0] if row.image else None
        return CheckedRow(row, row.recording_id, lat, lon, audio_path, audio_rel, image_path)

    def prepare(self, checked: CheckedRow) -> PreparedRow:
        """The heavy, session-free part of a new row: probe, hash, decode the clip window, normalise the image."""
        row = checked.row
        info = probe_audio(checked.audio_path)
        sha256 = _sha256_or_reject(checked.audio_path)
        recording = Recording(
            source=row.source,
            source_id=checked.recording_id,
            lat=checked.lat,
            lon=checked.lon,
            original_path=checked.audio_rel,
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
            return PreparedRow(recording, info)
        image = normalise_image(checked.image_path) if checked.image_path is not None else None
        key = f"{recording.source}:{recording.source_id}"
        clip, start_s, looped = read_clip_source(checked.audio_path, info, seed=self.seed, key=key)
        return PreparedRow(recording, info, clip, start_s, looped, image)

    def store(self, session: Session, prepared: PreparedRow) -> RowResult:
        """Add the prepared rows to the session and write their media files (main thread)."""
        recording, info = prepared.recording, prepared.info
        if prepared.clip is None:
            # A real recording, kept so status can count it, but it gets no pair.
            recording.status, recording.reject_reason = RecordingStatus.REJECTED, RejectReason.TOO_SHORT
            session.add(recording)
            return RowResult.rejected(
                RejectReason.TOO_SHORT, f"{info.duration_s:.3f} s is shorter than {MIN_DURATION_S} s"
            )
        return self._add_pair(session, prepared, prepared.clip)

    def _compare(self, existing: Recording, checked: CheckedRow) -> RowResult:
        """A recording already in the store: unchanged, or reported (never overwritten) when it differs."""
        lat, lon, audio_path = checked.lat, checked.lon, checked.audio_path
        if abs(existing.lat - lat) > _SAME_PLACE_DEG or abs(existing.lon - lon) > _SAME_PLACE_DEG:
            raise BadManifestRow(
                RejectReason.CHANGED_METADATA,
                f"stored at ({existing.lat}, {existing.lon}), the manifest now says ({lat}, {lon}); "
                "the stored recording is kept",
            )
        sha256 = _sha256_or_reject(audio_path)
        if sha256 != existing.sha256:
            raise BadManifestRow(
                RejectReason.CHANGED_FILE,
                f"{audio_path.name} differs from the file imported before (sha256 {existing.sha256[:12]}…, "
                f"now {sha256[:12]}…); the stored recording is kept",
            )
        if existing.status is RecordingStatus.ACCEPTED:
            return RowResult(RowOutcome.UNCHANGED)
        return RowResult(RowOutcome.UNCHANGED_REJECTED)

    def _add_pair(self, session: Session, prepared: PreparedRow, clip: np.ndarray) -> RowResult:
        recording, info, image = prepared.recording, prepared.info, prepared.image
        recording.status = RecordingStatus.ACCEPTED
        recording.looped = prepared.looped
        pair = Pair(
            recording=recording,
            origin=PairOrigin.ORIGINAL,
            lat=recording.lat,
            lon=recording.lon,
            clip_start_s=prepared.start_s,
            clip_seed=self.seed,
            clip_sample_rate=info.sample_rate,
            image_status=ImageStatus.NEEDS_IMAGERY,
        )
        session.add(recording)
        session.add(pair)
        session.flush()  # the pair id names its files
        pair.clip_path = clip_relpath(pair.id)
        write_wav_pcm16(self.location.media_dir / pair.clip_path, clip, info.sample_rate)
        if image is not None:
            pair.image_path = image_relpath(pair.id)
            save_jpeg(image, self.location.media_dir / pair.image_path)
            pair.image_status, pair.image_source = ImageStatus.PRESENT, IMAGE_SOURCE_MANIFEST
        return RowResult(RowOutcome.NEW, looped=prepared.looped, with_image=image is not None)
