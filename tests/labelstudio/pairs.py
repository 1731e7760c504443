"""Pairs for the Label Studio tests and benchmark, written straight through the store models.

Media are real small files made here with a fixed seed: a 512×512 JPEG (Pillow) and a 10 s mono PCM16 WAV
(soundfile) per pair, at the media layout of the shared interfaces (``images/<id>.jpg``, ``clips/<id>.wav``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from sqlalchemy import Engine

from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence, Pair, Recording
from annotator.vocabulary import ImageStatus, RecordingSource, RecordingStatus, SceneClass

OSM_SOURCE = "/data/extracts/finland-test.osm.pbf"
OSM_DATE = "2024-05-01T00:00:00Z"


def write_media(
    media_dir: Path, name: str, seed: int, *, image_px: int = 512, seconds: float = 10.0
) -> tuple[str, str]:
    """Write images/<name>.jpg and clips/<name>.wav; return their paths relative to `media_dir`."""
    rng = np.random.default_rng(seed)
    image_rel, clip_rel = f"images/{name}.jpg", f"clips/{name}.wav"
    (media_dir / "images").mkdir(parents=True, exist_ok=True)
    (media_dir / "clips").mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(image_px, image_px, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(media_dir / image_rel, format="JPEG", quality=85)
    rate = 8000
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * (seed % 10)) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(media_dir / clip_rel, tone.astype(np.float32), rate, subtype="PCM_16")
    return image_rel, clip_rel


def make_pairs(
    engine: Engine,
    media_dir: Path,
    labels: list[SceneClass | None],
    *,
    shared_media: bool = False,
    confidence: float = 0.8,
) -> list[int]:
    """One recording + pair + OSM evidence per entry of `labels` (None: OSM matched nothing); returns pair ids.

    With `shared_media`, every pair points at one media pair (the benchmark: Label Studio never reads them).
    """
    shared = write_media(media_dir, "shared", 0, image_px=64, seconds=1.0) if shared_media else None
    ids: list[int] = []
    with session_scope(engine) as session:
        for index, label in enumerate(labels):
            recording = Recording(
                source=RecordingSource.MANIFEST,
                source_id=f"rec-{uuid.uuid4().hex}",
                lat=60.4 + index * 1e-4,
                lon=26.8,
                original_path=f"rec{index}.wav",
                sha256="0" * 64,
                file_format="WAV",
                sample_rate=8000,
                channels=1,
                frames=80000,
                duration_s=10.0,
                status=RecordingStatus.ACCEPTED,
            )
            pair = Pair(
                recording=recording,
                lat=recording.lat,
                lon=recording.lon,
                image_status=ImageStatus.PRESENT,
                clip_start_s=0.0,
                clip_seed=index,
                clip_sample_rate=8000,
            )
            session.add(pair)
            session.flush()
            image_rel, clip_rel = shared or write_media(media_dir, str(pair.id), seed=pair.id)
            pair.image_path, pair.clip_path = image_rel, clip_rel
            session.add(
                OsmEvidence(
                    pair_id=pair.id,
                    label=label.value if label else None,
                    confidence=confidence if label else 0.0,
                    coverage={label.value: confidence} if label else {},
                    source=OSM_SOURCE,
                    source_date=OSM_DATE,
                    elements=[
                        {
                            "type": "way",
                            "id": 1000 + index,
                            "version": 3,
                            "timestamp": "2016-04-02T10:00:00Z",
                            "tags": {"landuse": "forest"},
                            "class": label.value if label else None,
                        }
                    ],
                    last_edit_at=datetime(2016, 4, 2, 10, tzinfo=UTC),
                )
            )
            ids.append(pair.id)
    return ids
