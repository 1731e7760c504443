"""A small planted store for the `rank` tests: pairs with real media whose content follows a *true* class.

Each recording's image is a noisy flat colour of its true class and its clip a tone of its true class (seeded),
so a tiny model learns them in two epochs. The OSM label of a few pairs is stale (another class), one pair has no
OSM label, one a human ``unusable`` verdict (left out), one no image (left out), one a human label; some originals
have offset pairs (same recording, so the same fold). Everything is written through the store models, as import,
imagery, pre-labelling, review and export would leave it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from annotator.store import session_scope
from annotator.store.media import clip_relpath, image_relpath
from annotator.store.models import OsmEvidence, Pair, Recording
from annotator.vocabulary import (
    FinalReason,
    ImageStatus,
    OffsetDirection,
    PairOrigin,
    RecordingSource,
    RecordingStatus,
    SceneClass,
    Verdict,
)

CLASSES = (SceneClass.FOREST, SceneClass.LAKE, SceneClass.RESIDENTIAL)
COLOURS = {SceneClass.FOREST: (30, 120, 40), SceneClass.LAKE: (40, 60, 170), SceneClass.RESIDENTIAL: (180, 90, 80)}
TONES_HZ = {SceneClass.FOREST: 300.0, SceneClass.LAKE: 900.0, SceneClass.RESIDENTIAL: 2000.0}
RATE = 8000
IMAGE_PX = 48
QUERIED_AT = datetime(2025, 6, 1, tzinfo=UTC)
#: The special pairs: (class index in CLASSES, position within the class) → role; position 1 gets offsets.
ROLES = {
    (0, 2): "stale",
    (0, 4): "no_osm",
    (0, 5): "no_image",
    (1, 3): "stale",
    (1, 5): "human",
    (2, 2): "stale",
    (2, 5): "unusable",
}
MIN_PER_CLASS = 6


@dataclass(frozen=True)
class Planted:
    """What was planted: pair ids by role, and every scored pair's true class."""

    pair_ids: list[int]
    truth: dict[int, SceneClass]
    source_ids: dict[int, str]
    stale: list[int]
    no_osm: list[int]
    human: list[int]
    unusable: list[int]
    no_image: list[int]
    offsets: dict[int, list[int]] = field(default_factory=dict)  # parent pair id → its offset pair ids

    @property
    def scored(self) -> list[int]:
        left_out = set(self.unusable) | set(self.no_image)
        return [p for p in self.pair_ids if p not in left_out]


def _media(media_dir: Path, pair_id: int, cls: SceneClass, seed: int) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    image_rel, clip_rel = image_relpath(pair_id), clip_relpath(pair_id)
    (media_dir / image_rel).parent.mkdir(parents=True, exist_ok=True)
    (media_dir / clip_rel).parent.mkdir(parents=True, exist_ok=True)
    pixels = np.array(COLOURS[cls])[None, None, :] + rng.normal(0, 20, (IMAGE_PX, IMAGE_PX, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(media_dir / image_rel, quality=90)
    t = np.arange(10 * RATE) / RATE
    tone = 0.3 * np.sin(2 * np.pi * TONES_HZ[cls] * rng.uniform(0.98, 1.02) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(media_dir / clip_rel, tone.astype(np.float32), RATE, subtype="PCM_16")
    return image_rel, clip_rel


def _recording(n: int) -> Recording:
    return Recording(
        source=RecordingSource.MANIFEST,
        source_id=f"rec-{n:03d}",
        lat=60.4 + n * 1e-3,
        lon=26.8,
        original_path=f"recordings/rec-{n:03d}.wav",
        sha256=f"{n:064d}",
        file_format="WAV",
        sample_rate=RATE,
        channels=1,
        frames=10 * RATE,
        duration_s=10.0,
        status=RecordingStatus.ACCEPTED,
    )


def plant_store(engine: Engine, media_dir: Path, *, per_class: int = MIN_PER_CLASS) -> Planted:
    """Plant ``per_class`` (≥ 6) recordings per class of :data:`CLASSES`, with the special pairs of :data:`ROLES`."""
    assert per_class >= MIN_PER_CLASS
    truths = [cls for cls in CLASSES for _ in range(per_class)]
    ids: list[int] = []
    truth: dict[int, SceneClass] = {}
    source_ids: dict[int, str] = {}
    roles: dict[str, list[int]] = {"stale": [], "no_osm": [], "human": [], "unusable": [], "no_image": []}
    offsets: dict[int, list[int]] = {}
    with session_scope(engine) as session:
        for n, cls in enumerate(truths):
            recording = _recording(n)
            pair = Pair(recording=recording, origin=PairOrigin.ORIGINAL, lat=recording.lat, lon=recording.lon)
            session.add(pair)
            session.flush()
            role = _role(n, per_class)
            osm_label: SceneClass | None = cls
            if role == "stale":
                osm_label = CLASSES[(CLASSES.index(cls) + 1) % len(CLASSES)]
            elif role == "no_osm":
                osm_label = None
            if role == "human":
                pair.final_label, pair.final_reason = cls.value, FinalReason.SINGLE_REVIEW
            elif role == "unusable":
                pair.final_label, pair.final_reason = Verdict.UNUSABLE.value, FinalReason.SINGLE_REVIEW
            pair.image_path, pair.clip_path = _media(media_dir, pair.id, cls, seed=n)
            pair.image_status = ImageStatus.PRESENT
            if role == "no_image":
                pair.image_status, pair.image_path = ImageStatus.NEEDS_IMAGERY, None
            session.add(
                OsmEvidence(
                    pair_id=pair.id,
                    label=osm_label.value if osm_label else None,
                    confidence=0.9 if osm_label else 0.0,
                    coverage={osm_label.value: 0.8} if osm_label else {},
                    source="test.osm",
                    last_edit_at=datetime(2012 if role == "stale" else 2022, 1, 1, tzinfo=UTC),
                    queried_at=QUERIED_AT,
                )
            )
            ids.append(pair.id)
            truth[pair.id] = cls
            source_ids[pair.id] = recording.source_id
            if role:
                roles[role].append(pair.id)
            if n % per_class == 1:  # one original per class has two offset pairs (same recording, same fold)
                offsets[pair.id] = [
                    _offset(session, media_dir, pair, recording, direction, cls, seed=1000 + 10 * n + k)
                    for k, direction in enumerate((OffsetDirection.N, OffsetDirection.E))
                ]
                for offset_id in offsets[pair.id]:
                    ids.append(offset_id)
                    truth[offset_id] = cls
                    source_ids[offset_id] = recording.source_id
    return Planted(ids, truth, source_ids, offsets=offsets, **roles)


def _role(n: int, per_class: int) -> str:
    """Which special pair the n-th recording is (empty for an ordinary one)."""
    return ROLES.get((n // per_class, n % per_class), "")


def _offset(
    session: Session,
    media_dir: Path,
    parent: Pair,
    recording: Recording,
    direction: OffsetDirection,
    cls: SceneClass,
    seed: int,
) -> int:
    pair = Pair(
        recording=recording,
        origin=PairOrigin.OFFSET,
        parent_pair_id=parent.id,
        direction=direction,
        offset_m=64.0,
        offset_index=direction.index,
        lat=parent.lat,
        lon=parent.lon,
        image_status=ImageStatus.PRESENT,
    )
    session.add(pair)
    session.flush()
    pair.image_path, pair.clip_path = _media(media_dir, pair.id, cls, seed=seed)
    return pair.id
