"""Demo recordings: a few geotagged recordings per cell of the demo world, each sounding like its class.

Every class cell gets ``PER_CELL`` recordings placed uniformly inside it, at least ``MARGIN_M`` from its edges
(so a 256 m image footprint around the point stays in the cell). Each is a harmonic tone at its class's
frequency (:data:`annotator.demo.world.CLASS_TONES_HZ`) plus noise, in assorted formats, lengths, rates and
channel counts. Two points lie in the unmapped cells, and two rows are bad on purpose (a 1.5 s recording and
a missing file), so the demo's import shows its rejects. The manifest has no ``image`` column: the demo cuts
images from its tile pyramid.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import soundfile as sf

from annotator.demo.world import CLASS_TONES_HZ, Cell, cells

PER_CELL = 5
MARGIN_M = 160.0
LICENSE = "CC0-1.0"
AUTHOR = "annotator demo"
#: (suffix, soundfile format, subtype) cycled through the recordings.
FORMATS = (
    (".wav", "WAV", "PCM_16"),
    (".flac", "FLAC", "PCM_16"),
    (".ogg", "OGG", "VORBIS"),
    (".mp3", "MP3", "MPEG_LAYER_III"),
    (".aiff", "AIFF", "PCM_16"),
)
DURATIONS_S = (2.0, 4.5, 8.0, 10.0, 12.0, 20.0)
SAMPLE_RATES = (16000, 22050, 32000, 44100)
UNMAPPED_TONE_HZ = 150.0
_METRES_PER_DEG_LAT = 111_320.0


def _point_in_cell(cell: Cell, rng: np.random.Generator) -> tuple[float, float]:
    lat_margin = MARGIN_M / _METRES_PER_DEG_LAT
    lon_margin = MARGIN_M / (_METRES_PER_DEG_LAT * math.cos(math.radians(cell.north)))
    lat = rng.uniform(cell.south + lat_margin, cell.north - lat_margin)
    lon = rng.uniform(cell.west + lon_margin, cell.east - lon_margin)
    return round(lat, 7), round(lon, 7)


def _write_sound(
    path: Path, fmt: str, subtype: str, duration_s: float, sr: int, channels: int, freq: float, rng: np.random.Generator
) -> None:
    frames = round(duration_s * sr)
    t = np.arange(frames) / sr
    tone = sum(np.sin(2 * np.pi * freq * k * t + rng.uniform(0, np.pi)) / k for k in (1, 2, 3))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)  # a slow swell, so windows differ
    mono = 0.25 * tone * envelope
    samples = np.stack([mono * (1.0 - 0.3 * c) for c in range(channels)], axis=1)
    samples += rng.normal(0.0, 0.03, size=samples.shape)
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    # Written in blocks: libsndfile's Vorbis encoder crashes on one very large write.
    with sf.SoundFile(path, "w", sr, channels, subtype, format=fmt) as out:
        for start in range(0, frames, 1 << 14):
            out.write(samples[start : start + (1 << 14)])


def write_demo_recordings(out_dir: Path, seed: int = 0) -> Path:
    """Write the demo recordings under ``out_dir/audio`` and their manifest; returns ``out_dir/manifest.csv``."""
    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    n = 0

    def add(rid: str, cell: Cell, freq: float, duration_s: float | None = None) -> None:
        nonlocal n
        suffix, fmt, subtype = FORMATS[n % len(FORMATS)]
        duration = duration_s if duration_s is not None else DURATIONS_S[n % len(DURATIONS_S)]
        sr = SAMPLE_RATES[(n // 2) % len(SAMPLE_RATES)]
        channels = 1 if n % 3 else 2
        name = f"{rid}{suffix}"
        _write_sound(audio_dir / name, fmt, subtype, duration, sr, channels, freq, rng)
        lat, lon = _point_in_cell(cell, rng)
        rows.append(
            {
                "recording_id": rid,
                "lat": lat,
                "lon": lon,
                "audio": f"audio/{name}",
                "license": LICENSE,
                "author": AUTHOR,
                "source_url": "",
            }
        )
        n += 1

    unmapped = 0
    for cell in cells():
        if cell.truth is None:
            add(f"demo-unmapped-{unmapped}", cell, UNMAPPED_TONE_HZ)
            unmapped += 1
            continue
        slug = cell.truth.value.replace(" ", "-")
        for k in range(PER_CELL):
            add(f"demo-{slug}-r{cell.row}c{cell.col}-{k}", cell, CLASS_TONES_HZ[cell.truth])
    # Bad on purpose: too short to use, and a file that is not there.
    first = cells()[0]
    add("demo-too-short", first, 300.0, duration_s=1.5)
    lat, lon = _point_in_cell(first, rng)
    rows.append(
        {
            "recording_id": "demo-missing-file",
            "lat": lat,
            "lon": lon,
            "audio": "audio/not-recorded.wav",
            "license": LICENSE,
            "author": AUTHOR,
            "source_url": "",
        }
    )

    manifest = out_dir / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["recording_id", "lat", "lon", "audio", "license", "author", "source_url"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return manifest
