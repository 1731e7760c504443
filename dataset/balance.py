"""Balancing as in the paper (SPEC §8): drop tiny classes, grow small ones with offset pairs.

A class with fewer than ``min_per_class`` selected pairs is dropped. For a class with fewer than
``augment_below`` pairs, every original location is moved ``offset_m`` metres north, east, south and west
(``offset_index`` 1–4 in that order): four new images cut from the imagery source, each with a new seeded 10 s
clip of the same recording that is never the original's window (nor another offset's). The offset pairs are
rows of the store (``origin="offset"`` with their parent, direction and metres), so a later export reuses them
and a reviewer can be shown them. Offset creation commits per batch of parents; a killed run keeps what it made.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import AnnotatorError, ImageryError
from annotator.store.engine import session_scope
from annotator.store.models import Pair, Recording
from annotator.vocabulary import SceneClass
from dataset.selection import SelectedPair

#: Offset directions in the order of their index k (export id ``<recording>_<k>``).
DIRECTIONS: tuple[str, ...] = ("N", "E", "S", "W")
CLIP_S = 10.0
#: Two clips of a recording count as "the same window" when their starts are closer than this.
MIN_WINDOW_SEPARATION_S = 0.25
#: A recording with less slack than this beyond one clip is treated as a loop, so windows can wrap around.
CIRCULAR_BELOW_SLACK_S = 2.0
PARENTS_PER_BATCH = 25

#: Why an original got fewer than four offsets, with the sentence the summary prints for each.
OFFSET_PROBLEMS: dict[str, str] = {
    "no_imagery_source": "its image came from the manifest and no --imagery SOURCE was given",
    "imagery_source_unusable": "its recorded imagery source cannot be opened (pass --imagery SOURCE)",
    "offset_imagery_failed": "the imagery source has no image at an offset point",
    "clip_unreadable": "neither the original recording nor the pair's stored clip can be decoded",
    "offset_unusable": "a reviewer marked the offset pair unusable",
    "offset_relabelled": "a reviewer gave the offset pair another class than its original",
}
#: Offsets made, but from a stand-in: the pair's stored 10 s clip, looped, instead of the whole recording.
OFFSET_NOTES: dict[str, str] = {
    "original_audio_missing": "original recording not found, offset clips cut from the stored clip "
    "(pass --audio-root DIR, the folder the import manifest's audio paths are relative to)",
    "original_audio_changed": "original recording changed since import (sha256 differs), offset clips cut "
    "from the stored clip",
    "original_audio_unreadable": "original recording cannot be decoded, offset clips cut from the stored clip",
}


@dataclass(frozen=True)
class BalancePlan:
    """Selected originals per class, and what balancing does with each class."""

    counts: dict[SceneClass, int]
    kept: tuple[SceneClass, ...]
    dropped: dict[SceneClass, int]
    augmented: tuple[SceneClass, ...]


def plan_balance(pairs: Iterable[SelectedPair], min_per_class: int, augment_below: int) -> BalancePlan:
    """Drop classes with fewer than `min_per_class` pairs; augment kept classes with fewer than `augment_below`."""
    counts = Counter(pair.label for pair in pairs)
    ordered = [c for c in SceneClass if counts[c] > 0]
    kept = tuple(c for c in ordered if counts[c] >= min_per_class)
    return BalancePlan(
        counts={c: counts[c] for c in ordered},
        kept=kept,
        dropped={c: counts[c] for c in ordered if counts[c] < min_per_class},
        augmented=tuple(c for c in kept if counts[c] < augment_below),
    )


@dataclass(frozen=True)
class OffsetSample:
    """A complete offset pair (image and clip present) as the export needs it."""

    pair_id: int
    parent_pair_id: int
    direction: str
    offset_index: int
    lat: float
    lon: float
    image_path: str
    clip_path: str
    final_label: str | None


@dataclass
class OffsetReport:
    """What :func:`ensure_offsets` did: offsets made now, reused from earlier runs, and problems per reason."""

    created: int = 0
    reused: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def problem(self, reason: str, detail: str, n: int = 1) -> None:
        """Count offsets not made for `reason` (`detail` names the first case)."""
        self.problems[reason] += n
        self.examples.setdefault(reason, detail)

    def note(self, reason: str, detail: str, n: int = 1) -> None:
        """Count offsets made with a stand-in for `reason` (`detail` names the first case)."""
        self.notes[reason] += n
        self.examples.setdefault(reason, detail)


# ------------------------------------------------------------------------------------------ clip windows


def window_distance(a: float, b: float, period_s: float | None) -> float:
    """Distance between two window starts; around the loop when the audio is circular."""
    if period_s is None:
        return abs(a - b)
    d = abs(a - b) % period_s
    return min(d, period_s - d)


def draw_offset_window(
    span_s: float, seed: int, key: str, taken: Sequence[float], period_s: float | None, clip_s: float = CLIP_S
) -> float:
    """A seeded window start in ``[0, span_s - clip_s]`` at least MIN_WINDOW_SEPARATION_S from every `taken`.

    Draws with :func:`dataset.audio.clip_window_start` under `key`, re-drawing under ``key:redraw:n`` while it
    lands on a taken window; after 64 draws (only for very short recordings) the first free position of a
    fine grid is used, still deterministically.
    """
    from dataset.audio import clip_window_start

    def free(start: float) -> bool:
        return all(window_distance(start, t, period_s) >= MIN_WINDOW_SEPARATION_S for t in taken)

    for attempt in range(64):
        start = clip_window_start(span_s, seed, key if attempt == 0 else f"{key}:redraw:{attempt}", clip_s)
        if free(start):
            return start
    room = max(span_s - clip_s, 0.0)
    for step in range(1, 1025):
        start = room * step / 1025
        if free(start):
            return start
    raise ValueError(f"no free 10 s window left in {span_s:.2f} s of audio for {key}")


def offset_clip_source(samples: Any, sample_rate: int, clip_s: float = CLIP_S) -> tuple[Any, float | None]:
    """The audio offset windows are drawn from, and its loop period (None unless it wraps around).

    As at import, a recording shorter than a clip is looped. When that leaves less than
    CIRCULAR_BELOW_SLACK_S of room for the window to move, the recording is treated as a loop, so four more
    distinct windows exist even for a 2 s or an exactly-10 s recording.
    """
    from dataset.audio import loop_to_min_duration

    looped = loop_to_min_duration(samples, sample_rate, min_s=clip_s)
    if len(looped) / sample_rate - clip_s >= CIRCULAR_BELOW_SLACK_S:
        return looped, None
    period = len(samples)
    repeats = -(-(period + round(clip_s * sample_rate) + 1) // period)
    return np.tile(samples, repeats), period / sample_rate


# ------------------------------------------------------------------------------------------ original audio


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _offset_audio(
    parent: Pair, location: StoreLocation, settings: OffsetSettings, report: OffsetReport, label: str
) -> tuple[Any, int, float | None, list[float]] | None:
    """(audio, rate, loop period or None, window starts already taken) to cut a parent's offset clips from.

    The whole original recording when it can be found and is unchanged; otherwise the parent's stored 10 s
    clip, looped (noted in the report, so the curator can pass --audio-root and re-export).
    """
    from dataset.audio import read_mono

    recording = parent.recording
    original = resolve_original_audio(recording, location, settings.audio_root)
    stand_in = None
    if original is None:
        stand_in = ("original_audio_missing", f"{label}: {recording.original_path}")
    elif _sha256(original) != recording.sha256:
        stand_in = ("original_audio_changed", f"{label}: {original}")
    else:
        try:
            samples, rate = read_mono(original)
        except (AnnotatorError, OSError, RuntimeError) as exc:
            stand_in = ("original_audio_unreadable", f"{label}: {exc}")
    if stand_in is None:
        audio, period_s = offset_clip_source(samples, rate, settings.clip_s)
        return audio, rate, period_s, ([parent.clip_start_s] if parent.clip_start_s is not None else [])
    try:
        samples, rate = read_mono(location.media_dir / str(parent.clip_path))
    except (AnnotatorError, OSError, RuntimeError) as exc:
        report.problem("clip_unreadable", f"{label}: {exc}", len(DIRECTIONS))
        return None
    report.note(*stand_in, n=len(DIRECTIONS))
    period = len(samples) / rate
    audio = np.tile(samples, 3)  # the clip as a loop: any start in [0, period) has a full window after it
    return audio, rate, period, [0.0]


# ------------------------------------------------------------------------------------------ offset pairs


def _has_image(pair: Pair, media_dir: Path) -> bool:
    return pair.image_status == "present" and bool(pair.image_path) and (media_dir / str(pair.image_path)).is_file()


def _complete(pair: Pair, media_dir: Path) -> bool:
    return _has_image(pair, media_dir) and bool(pair.clip_path) and (media_dir / str(pair.clip_path)).is_file()


def _offsets_of(session: Session, parent_ids: Sequence[int], offset_m: float) -> dict[tuple[int, str], Pair]:
    found: dict[tuple[int, str], Pair] = {}
    for start in range(0, len(parent_ids), 500):
        chunk = parent_ids[start : start + 500]
        rows = session.scalars(
            select(Pair).where(Pair.origin == "offset", Pair.parent_pair_id.in_(chunk), Pair.offset_m == offset_m)
        )
        for pair in rows:
            found[(int(pair.parent_pair_id or 0), str(pair.direction))] = pair
    return found


@dataclass(frozen=True)
class OffsetSettings:
    """The parameters offset pairs are made with."""

    offset_m: float
    seed: int
    imagery: str | None
    audio_root: Path | None
    clip_s: float = CLIP_S


class _Sources:
    """Imagery sources opened once per SOURCE string and closed together."""

    def __init__(self, stack: ExitStack, location: StoreLocation, explicit: str | None) -> None:
        self._stack, self._location, self._explicit = stack, location, explicit
        self._open: dict[str, Any] = {}
        self._broken: dict[str, str] = {}

    def get(self, spec: str) -> Any:
        """The open source for `spec`; raises ImageryError when it cannot be opened."""
        if spec in self._broken:
            raise ImageryError(self._broken[spec])
        if spec not in self._open:
            from annotator.imagery import default_tile_cache
            from dataset.imagery.sources import open_source

            try:
                source = open_source(spec, cache_dir=default_tile_cache(self._location))
            except ImageryError as exc:
                if spec == self._explicit:
                    raise  # the user's own --imagery is wrong: stop and say so
                self._broken[spec] = str(exc)
                raise
            self._open[spec] = self._stack.enter_context(source)
        return self._open[spec]


def _make_offsets_for_parent(
    session: Session,
    parent: Pair,
    existing: dict[tuple[int, str], Pair],
    settings: OffsetSettings,
    location: StoreLocation,
    sources: _Sources,
    report: OffsetReport,
) -> None:
    """Create or complete the four offset pairs of one original (within the caller's transaction)."""
    from annotator.imagery import store_crop
    from dataset.audio import cut_clip, write_wav_pcm16
    from dataset.imagery.crop import crop_at
    from dataset.imagery.geo import offset_point

    recording = parent.recording
    label = f"recording {recording.source_id!r} (pair {parent.id})"
    spec = settings.imagery or (parent.image_source if parent.image_source not in (None, "manifest") else None)
    if spec is None:
        report.problem("no_imagery_source", label, len(DIRECTIONS))
        return
    try:
        source = sources.get(spec)
    except ImageryError as exc:
        report.problem("imagery_source_unusable", f"{label}: {exc}", len(DIRECTIONS))
        return
    found = _offset_audio(parent, location, settings, report, label)
    if found is None:
        return
    audio, rate, period_s, taken = found
    span_s = len(audio) / rate if period_s is None else period_s + settings.clip_s
    siblings = [existing.get((parent.id, d)) for d in DIRECTIONS]
    taken += [s.clip_start_s for s in siblings if s is not None and s.clip_path and s.clip_start_s is not None]
    resolution = parent.image_resolution_m or 0.5
    for k, direction in enumerate(DIRECTIONS, start=1):
        pair = existing.get((parent.id, direction))
        if pair is not None and _complete(pair, location.media_dir):
            continue
        if pair is None:
            lat, lon = offset_point(parent.lat, parent.lon, direction, settings.offset_m)
            pair = Pair(
                recording_id=parent.recording_id,
                origin="offset",
                parent_pair_id=parent.id,
                direction=direction,
                offset_m=settings.offset_m,
                offset_index=k,
                lat=lat,
                lon=lon,
            )
            session.add(pair)
            session.flush()  # the media file names need the pair id
            existing[(parent.id, direction)] = pair
        if not (pair.clip_path and (location.media_dir / pair.clip_path).is_file()):
            key = f"{recording.source}:{recording.source_id}:offset:{k}"
            start = draw_offset_window(span_s, settings.seed, key, taken, period_s, settings.clip_s)
            taken.append(start)
            relpath = f"clips/{pair.id}.wav"
            write_wav_pcm16(location.media_dir / relpath, cut_clip(audio, rate, start, settings.clip_s), rate)
            pair.clip_path, pair.clip_start_s, pair.clip_sample_rate = relpath, start, rate
            pair.clip_seed = settings.seed
        if not _has_image(pair, location.media_dir):
            try:
                crop = crop_at(source, pair.lat, pair.lon, size_px=512, resolution_m=resolution)
            except ImageryError as exc:
                pair.image_status, pair.image_error = "failed", str(exc)
                report.problem("offset_imagery_failed", f"{label} {direction}: {exc}")
                continue
            store_crop(pair, crop, location, spec)
            pair.image_error = None
        report.created += 1


def ensure_offsets(
    engine: Engine,
    location: StoreLocation,
    parents: Sequence[SelectedPair],
    settings: OffsetSettings,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[int, list[OffsetSample]], OffsetReport]:
    """Make sure every parent has its four offset pairs; create or complete the missing ones.

    Commits once per batch of parents (a long job). Offsets that could not be made are counted in the report
    and left out; the next export retries them.

    Returns:
        The complete offset pairs per parent pair id (in N, E, S, W order), and the report.
    """
    report = OffsetReport()
    parent_ids = sorted(p.pair_id for p in parents)
    with session_scope(engine) as session:
        existing = _offsets_of(session, parent_ids, settings.offset_m)
        todo = [
            pid
            for pid in parent_ids
            if any(
                (pid, d) not in existing or not _complete(existing[(pid, d)], location.media_dir) for d in DIRECTIONS
            )
        ]
        report.reused = sum(_complete(p, location.media_dir) for p in existing.values())
    with ExitStack() as stack:
        sources = _Sources(stack, location, settings.imagery)
        if settings.imagery and todo:
            sources.get(settings.imagery)  # a wrong --imagery stops the export before anything is made
        for start in range(0, len(todo), PARENTS_PER_BATCH):
            batch = todo[start : start + PARENTS_PER_BATCH]
            with session_scope(engine) as session:
                batch_existing = _offsets_of(session, batch, settings.offset_m)
                for parent in session.scalars(select(Pair).where(Pair.id.in_(batch)).order_by(Pair.id)):
                    _make_offsets_for_parent(session, parent, batch_existing, settings, location, sources, report)
            if progress is not None:
                progress(len(batch))
    result: dict[int, list[OffsetSample]] = {pid: [] for pid in parent_ids}
    with session_scope(engine) as session:
        for (pid, _direction), pair in sorted(
            _offsets_of(session, parent_ids, settings.offset_m).items(),
            key=lambda item: (item[0][0], item[1].offset_index or 0),
        ):
            if _complete(pair, location.media_dir):
                result[pid].append(
                    OffsetSample(
                        pair_id=pair.id,
                        parent_pair_id=pid,
                        direction=str(pair.direction),
                        offset_index=int(pair.offset_index or DIRECTIONS.index(str(pair.direction)) + 1),
                        lat=pair.lat,
                        lon=pair.lon,
                        image_path=str(pair.image_path),
                        clip_path=str(pair.clip_path),
                        final_label=pair.final_label,
                    )
                )
    return result, report
