"""The audio an original's offset clips are cut from: the whole recording, or its stored clip as a stand-in.

The whole original recording is used when it can be found and is unchanged since import (same sha256);
otherwise the pair's stored 10 s clip, looped, stands in (noted in the report, so the curator can pass
``--audio-root`` and re-export).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.config import StoreLocation
from annotator.errors import AnnotatorError
from annotator.export.offset_report import OffsetNote, OffsetProblem, OffsetReport
from annotator.files import sha256_file
from annotator.store.models import Pair, Recording
from annotator.vocabulary import OffsetDirection
from dataset.audio import read_mono
from dataset.offset_clips import offset_clip_source, stored_clip_as_loop


@dataclass(frozen=True)
class OffsetAudio:
    """Audio to cut offset clips from, its loop period (None unless circular), and window starts already used."""

    samples: np.ndarray
    rate: int
    period_s: float | None
    taken: list[float]


@dataclass(frozen=True)
class _StandIn:
    """Why the stored clip stands in for the original recording, and the case that shows it."""

    note: OffsetNote
    detail: str


def resolve_original_audio(recording: Recording, location: StoreLocation, audio_root: Path | None) -> Path | None:
    """Find a recording's original file: absolute path, --audio-root, beside its manifest, media dir, store dir."""
    original = Path(recording.original_path)
    candidates: list[Path] = []
    if original.is_absolute():
        candidates.append(original)
    else:
        if audio_root is not None:
            candidates.append(audio_root / original)
        if recording.manifest:
            candidates.append(Path(recording.manifest).expanduser().parent / original)
        candidates.append(location.media_dir / original)
        if location.sqlite_path is not None:
            candidates.append(location.sqlite_path.parent / original)
    return next((c for c in candidates if c.is_file()), None)


def _read_original(
    recording: Recording, location: StoreLocation, audio_root: Path | None, label: str
) -> tuple[np.ndarray, int] | _StandIn:
    """The original recording's samples and rate, or why the stored clip must stand in."""
    original = resolve_original_audio(recording, location, audio_root)
    if original is None:
        return _StandIn(OffsetNote.ORIGINAL_AUDIO_MISSING, f"{label}: {recording.original_path}")
    if sha256_file(original) != recording.sha256:
        return _StandIn(OffsetNote.ORIGINAL_AUDIO_CHANGED, f"{label}: {original}")
    try:
        return read_mono(original)
    except (AnnotatorError, OSError, RuntimeError) as exc:
        return _StandIn(OffsetNote.ORIGINAL_AUDIO_UNREADABLE, f"{label}: {exc}")


def offset_audio(
    parent: Pair, location: StoreLocation, audio_root: Path | None, clip_s: float, report: OffsetReport, label: str
) -> OffsetAudio | None:
    """The audio to cut a parent's offset clips from; None (counted in `report`) when no audio can be read."""
    found = _read_original(parent.recording, location, audio_root, label)
    if not isinstance(found, _StandIn):
        samples, rate = found
        audio, period_s = offset_clip_source(samples, rate, clip_s)
        return OffsetAudio(audio, rate, period_s, [parent.clip_start_s] if parent.clip_start_s is not None else [])
    directions = len(OffsetDirection)
    try:
        clip, rate = read_mono(location.media_dir / str(parent.clip_path))
    except (AnnotatorError, OSError, RuntimeError) as exc:
        report.problem(OffsetProblem.CLIP_UNREADABLE, f"{label}: {exc}", directions)
        return None
    report.note(found.note, found.detail, n=directions)
    looped, period_s = stored_clip_as_loop(clip, rate)
    return OffsetAudio(looped, rate, period_s, [0.0])
