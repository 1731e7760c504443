"""Seeded builders for export tests: a store of labelled pairs with real media, and a small XYZ tile pyramid.

The store is built directly through the models (as import, imagery, pre-labelling and review would leave it),
with real WAV originals beside the database, real 10 s clips and 512×512 JPEGs in the media directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import Engine

from annotator.config import StoreLocation
from annotator.export import ExportOptions, ExportReport, export_dataset
from annotator.files import sha256_file
from annotator.store import session_scope, unit_of_work
from annotator.store.media import clip_relpath, image_relpath
from annotator.store.models import OsmEvidence, Pair, Recording
from annotator.vocabulary import (
    IMAGE_SOURCE_MANIFEST,
    FinalReason,
    ImageStatus,
    PairOrigin,
    RecordingSource,
    RecordingStatus,
    SceneClass,
)
from dataset.audio import clip_window_start, cut_clip, loop_to_min_duration, read_mono, write_wav_pcm16
from dataset.imagery.geo import TILE_SIZE, global_pixel
from dataset.images import save_jpeg
from tests.data.generate import make_audio

CENTRE = (60.4030, 26.8060)
TILE_ZOOM = 16
AUDIO_RATE = 8000
IMPORT_SEED = 0


@dataclass(frozen=True)
class PairSpec:
    """One original pair to plant: its recording id, human verdict and OSM suggestion."""

    source_id: str
    final_label: str | None = None  # a SceneClass value or "unusable"
    final_reason: str | None = FinalReason.SINGLE_REVIEW.value
    osm_label: SceneClass | None = None
    duration_s: float = 14.0
    with_image: bool = True


def write_pattern_tiles(root: Path, zoom: int = TILE_ZOOM, radius: int = 3, centre: tuple[float, float] = CENTRE):
    """A (2·radius+1)² block of PNG tiles around `centre` whose pixels depend on their global position.

    Any two crops at different places differ, so four offsets give four distinct images.
    """
    px, py = global_pixel(*centre, zoom)
    cx, cy = int(px // TILE_SIZE), int(py // TILE_SIZE)
    local = np.arange(TILE_SIZE)
    for x in range(cx - radius, cx + radius + 1):
        for y in range(cy - radius, cy + radius + 1):
            gx = (x * TILE_SIZE + local)[None, :]
            gy = (y * TILE_SIZE + local)[:, None]
            pixels = np.stack(
                np.broadcast_arrays((gx * 3) % 256, (gy * 5) % 256, ((gx // 16) * 37 + (gy // 16) * 11) % 256),
                axis=-1,
            ).astype(np.uint8)
            path = root / str(zoom) / str(x) / f"{y}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, "RGB").save(path, format="PNG")
    return root


def plant_pairs(
    engine: Engine, location: StoreLocation, specs: list[PairSpec], *, tiles: Path | None = None
) -> list[int]:
    """Plant recordings + original pairs (+ OSM evidence) with real media; returns the pair ids in order.

    Originals are written under ``recordings/`` beside the media directory (the store's folder, where the import
    manifest is recorded, so export finds them on either backend), clips and images under the media directory as
    import and imagery would.
    """
    root = location.media_dir.parent
    originals = root / "recordings"
    rng_positions = np.random.default_rng(1)
    ids = []
    with session_scope(engine) as session:
        for n, spec in enumerate(specs):
            original = make_audio(
                originals / f"{spec.source_id}.wav", spec.duration_s, AUDIO_RATE, 1, seed=n, freq=200.0 + 7 * n
            )
            dlat, dlon = rng_positions.uniform(-0.0004, 0.0004, size=2)
            recording = Recording(
                source=RecordingSource.MANIFEST,
                source_id=spec.source_id,
                lat=CENTRE[0] + dlat,
                lon=CENTRE[1] + dlon,
                original_path=f"recordings/{spec.source_id}.wav",
                sha256=sha256_file(original),
                file_format="WAV",
                sample_rate=AUDIO_RATE,
                channels=1,
                frames=round(spec.duration_s * AUDIO_RATE),
                duration_s=spec.duration_s,
                looped=spec.duration_s < 10,
                license="CC-BY 4.0",
                author=f"author {n}",
                status=RecordingStatus.ACCEPTED,
                manifest=str(root / "manifest.csv"),
            )
            samples, rate = read_mono(original)
            looped = loop_to_min_duration(samples, rate, 10.0)
            key = f"manifest:{spec.source_id}"
            start = clip_window_start(len(looped) / rate, IMPORT_SEED, key)
            pair = Pair(
                recording=recording,
                origin=PairOrigin.ORIGINAL,
                lat=recording.lat,
                lon=recording.lon,
                clip_start_s=start,
                clip_seed=IMPORT_SEED,
                clip_sample_rate=rate,
                final_label=spec.final_label,
                final_reason=spec.final_reason if spec.final_label else None,
            )
            session.add_all([recording, pair])
            session.flush()
            pair.clip_path = clip_relpath(pair.id)
            write_wav_pcm16(location.media_dir / pair.clip_path, cut_clip(looped, rate, start), rate)
            if spec.with_image:
                pair.image_path = image_relpath(pair.id)
                colour = np.random.default_rng(n).integers(0, 256, size=3)
                image = Image.new("RGB", (512, 512), tuple(int(c) for c in colour))
                save_jpeg(image, location.media_dir / pair.image_path)
                pair.image_status = ImageStatus.PRESENT
                pair.image_source = str(tiles) if tiles is not None else IMAGE_SOURCE_MANIFEST
                pair.image_resolution_m = 0.5
            if spec.osm_label is not None:
                session.add(OsmEvidence(pair=pair, label=spec.osm_label.value, confidence=0.9, source="test.osm"))
            ids.append(pair.id)
    return ids


def labelled(cls: SceneClass, n: int, prefix: str | None = None, **kwargs) -> list[PairSpec]:  # type: ignore[no-untyped-def]
    """`n` pairs reviewed as `cls`, recording ids ``<prefix>1…``."""
    prefix = prefix or cls.name.lower()[:4]
    return [PairSpec(f"{prefix}{i}", final_label=cls.value, **kwargs) for i in range(1, n + 1)]


def run_export(engine: Engine, location: StoreLocation, out: Path, options: ExportOptions) -> ExportReport:
    """`export_dataset` in its own unit of work, as the CLI runs it."""
    with unit_of_work(engine) as work:
        return export_dataset(work, location, out, options)
