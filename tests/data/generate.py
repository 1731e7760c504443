"""Seeded generators of test data: recordings, bad files, images and manifests (in the spirit of torchgeo's data.py).

Nothing binary is committed: tests (and `python -m tests.data.generate OUT`) call these to make what they need.
The same seed always gives the same samples and pixels.

    make_audio(path, duration_s, sample_rate, channels, seed, freq=440.0)   # format from the suffix
    make_image(path, size=(w, h), seed=0, colour=None)                      # format from the suffix
    make_empty / make_truncated / make_text / make_png_named               # bad files
    make_wav_claiming_rate(path, claimed_rate)                              # a WAV whose header lies
    make_image_in_mode(path, mode, size)                                    # 16-bit, CMYK, P, LA, 1-bit, …
    write_csv_manifest / write_jsonl_manifest / write_freesound_json        # the three manifest formats
    build_corpus(root, seed)                                                # every case, with its expectation
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from annotator.ingest.outcome import RowOutcome
from annotator.vocabulary import RejectReason

#: soundfile (format, subtype) for each suffix the generators write.
AUDIO_FORMATS: dict[str, tuple[str, str | None]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aiff": ("AIFF", "PCM_16"),
}
MANIFEST_COLUMNS = ("recording_id", "lat", "lon", "audio", "image", "license", "author", "source_url")


def tone(duration_s: float, sample_rate: int, channels: int, seed: int, freq: float = 440.0) -> np.ndarray:
    """A harmonic tone plus a little seeded noise, shape (frames, channels); each channel has its own gain.

    Different gains per channel make a downmix checkable: the mono mean is the tone times the mean gain.
    """
    rng = np.random.default_rng(seed)
    frames = round(duration_s * sample_rate)
    t = np.arange(frames) / sample_rate
    signal = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3)) * 0.3
    gains = np.linspace(1.0, 0.4, channels)
    noise = rng.normal(0.0, 0.02, size=(frames, channels))
    return (signal[:, None] * gains[None, :] + noise).astype(np.float32)


def make_audio(
    path: Path,
    duration_s: float,
    sample_rate: int = 22050,
    channels: int = 1,
    seed: int = 0,
    *,
    freq: float = 440.0,
) -> Path:
    """Write a seeded recording; the format comes from the suffix (.wav .flac .ogg .mp3 .aiff)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt, subtype = AUDIO_FORMATS[path.suffix.lower()]
    samples = tone(duration_s, sample_rate, channels, seed, freq)
    # Written in blocks: libsndfile's Vorbis encoder crashes on one very large write (tens of seconds at 48 kHz).
    with sf.SoundFile(path, "w", sample_rate, channels, subtype, format=fmt) as out:
        for start in range(0, samples.shape[0], 1 << 14):
            out.write(samples[start : start + (1 << 14)])
    return path


def make_empty(path: Path) -> Path:
    """A zero-byte file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_truncated(path: Path, duration_s: float = 5.0, sample_rate: int = 16000, keep: float = 0.5) -> Path:
    """A real recording (format from the suffix) cut off after `keep` of its bytes."""
    path = Path(path)
    make_audio(path, duration_s, sample_rate, 1, seed=99)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_text(path: Path, text: str = "this is not audio, just text\n") -> Path:
    """A text file under any name (e.g. ``.wav`` or ``.jpg``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_png_named(path: Path) -> Path:
    """A valid PNG image saved under any name (e.g. ``.wav``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        Image.new("RGB", (16, 16), (200, 10, 10)).save(fh, format="PNG")
    return path


def make_wav_claiming_rate(path: Path, claimed_rate: int, duration_s: float = 8.1, real_rate: int = 8000) -> Path:
    """A real PCM WAV whose header then claims `claimed_rate` Hz (its sample rate and byte rate fields patched).

    With ``claimed_rate=1`` the 64,800 samples of 8.1 s at 8 kHz claim to last 18 hours.
    """
    path = make_audio(path, duration_s, real_rate, 1, seed=7)
    header = bytearray(path.read_bytes())
    assert header[:4] == b"RIFF" and header[12:16] == b"fmt ", "a plain PCM WAV has its fmt chunk first"
    block_align = int.from_bytes(header[32:34], "little")
    header[24:28] = claimed_rate.to_bytes(4, "little")
    header[28:32] = (claimed_rate * block_align).to_bytes(4, "little")
    path.write_bytes(bytes(header))
    return path


def make_image_in_mode(path: Path, mode: str, size: tuple[int, int] = (64, 64)) -> Path:
    """An image stored in Pillow `mode`, left half one colour and right half another (see :data:`MODE_COLOURS`).

    PNG for ``I;16``, ``P`` (with a transparent palette entry: the right half), ``LA``, ``RGBA`` and ``1``;
    TIFF for ``CMYK``. :data:`MODE_COLOURS` gives the RGB each half must become.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    left, right = MODE_PIXELS[mode]
    if mode == "I;16":
        pixels = np.full((height, width), left, dtype=np.uint16)
        pixels[:, width // 2 :] = right
        image = Image.fromarray(pixels)  # uint16 → mode I;16
    elif mode == "P":
        image = Image.new("P", size, 0)
        image.putpalette([200, 40, 10, 0, 255, 0] + [0] * (256 * 3 - 6))
        image.paste(1, (width // 2, 0, width, height))
        image.info["transparency"] = 1
    else:
        image = Image.new(mode, size, left)
        image.paste(right, (width // 2, 0, width, height))
    if mode == "CMYK":
        image.save(path, format="TIFF")
    else:
        image.save(path, format="PNG", **({"transparency": 1} if mode == "P" else {}))
    return path


#: The raw pixel values of the two halves of :func:`make_image_in_mode`, per mode.
MODE_PIXELS: dict[str, tuple[object, object]] = {
    "I;16": (0x8080, 0xFFFF),  # 16-bit grey: mid grey and white
    "CMYK": ((255, 0, 0, 0), (0, 255, 0, 128)),  # cyan; magenta at half black
    "P": (0, 1),  # palette index 0 (a red-brown), index 1 (transparent green)
    "LA": ((100, 255), (100, 0)),  # opaque grey; fully transparent grey
    "RGBA": ((10, 20, 200, 255), (10, 20, 200, 0)),  # opaque blue; fully transparent blue
    "1": (0, 1),  # black; white
}
#: The RGB colours the two halves must become: transparent pixels are white.
MODE_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "I;16": ((128, 128, 128), (255, 255, 255)),
    "CMYK": ((0, 255, 255), (127, 0, 127)),
    "P": ((200, 40, 10), (255, 255, 255)),
    "LA": ((100, 100, 100), (255, 255, 255)),
    "RGBA": ((10, 20, 200), (255, 255, 255)),
    "1": ((0, 0, 0), (255, 255, 255)),
}


def make_image(
    path: Path, size: tuple[int, int] = (640, 480), seed: int = 0, colour: tuple[int, int, int] | None = None
) -> Path:
    """A seeded image (format from the suffix): a colour field with a gradient and noise, or a flat colour."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    if colour is not None:
        image = Image.new("RGB", size, colour)
    else:
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 256, size=3)
        ramp = np.linspace(0, 60, width)[None, :, None]
        noise = rng.integers(0, 30, size=(height, width, 3))
        pixels = np.clip(base[None, None, :] + ramp + noise, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, "RGB")
    if path.suffix.lower() == ".png":
        image.save(path, format="PNG")
    else:
        image.save(path, format="JPEG", quality=92)
    return path


def write_csv_manifest(
    path: Path, rows: Iterable[dict[str, object]], columns: Sequence[str] = MANIFEST_COLUMNS
) -> Path:
    """A CSV manifest with `columns` (missing values written empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return path


def write_jsonl_manifest(path: Path, rows: Iterable[dict[str, object]]) -> Path:
    """A JSON Lines manifest, one object per row (keys with None values are left out)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
    return path


def write_freesound_json(path: Path, results: Iterable[dict[str, object]]) -> Path:
    """A Freesound API search-results document: ``{"count", "next", "previous", "results": [...]}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = list(results)
    path.write_text(json.dumps({"count": len(items), "next": None, "previous": None, "results": items}, indent=1))
    return path


def freesound_result(
    sound_id: int, lat: float | None, lon: float | None, username: str = "tester"
) -> dict[str, object]:
    """One result as the Freesound API returns it (fields=id,name,geotag,license,username,url)."""
    return {
        "id": sound_id,
        "name": f"field recording {sound_id}",
        "geotag": None if lat is None else f"{lat} {lon}",
        "license": "http://creativecommons.org/publicdomain/zero/1.0/",
        "username": username,
        "url": f"https://freesound.org/people/{username}/sounds/{sound_id}/",
    }


@dataclass(frozen=True)
class CorpusRow:
    """A manifest row of the standard corpus and what importing it must do (``new`` or a reject reason)."""

    row: dict[str, object]
    expect: RowOutcome | RejectReason
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None


def build_corpus(root: Path, seed: int = 0) -> list[CorpusRow]:
    """Files under `root` and one row per case: every format, rate, channel count and length, and every bad input.

    Paths in the rows are relative to `root`. Write them with one of the ``write_*_manifest`` functions.
    """
    root = Path(root)
    good = [  # (name, duration, rate, channels)
        ("wav_mono_10s.wav", 10.0, 22050, 1),
        ("flac_stereo_5s.flac", 5.0, 44100, 2),
        ("ogg_6ch_60s.ogg", 60.0, 48000, 6),
        ("mp3_stereo_9_99s.mp3", 9.99, 32000, 2),
        ("aiff_mono_2s.aiff", 2.0, 8000, 1),
        ("wav_6ch_2s.wav", 2.0, 16000, 6),
        ("flac_mono_60s.flac", 60.0, 11025, 1),
    ]
    rows: list[CorpusRow] = []
    for i, (name, duration, rate, channels) in enumerate(good):
        make_audio(root / "audio" / name, duration, rate, channels, seed + i, freq=220.0 + 40 * i)
        rows.append(
            CorpusRow(
                {
                    "recording_id": f"good{i}",
                    "lat": 60.1 + i / 100,
                    "lon": 24.9 + i / 100,
                    "audio": f"audio/{name}",
                    "license": "CC0",
                    "author": "generator",
                    "source_url": f"https://example.org/{i}",
                },
                RowOutcome.NEW,
                duration,
                rate,
                channels,
            )
        )
    make_image(root / "images" / "wide.jpg", (800, 600), seed)
    make_image(root / "images" / "tall.png", (300, 700), seed + 1)
    rows[0].row["image"] = "images/wide.jpg"
    rows[1].row["image"] = "images/tall.png"
    make_audio(root / "audio" / "short_1_5s.wav", 1.5, 22050, 1, seed + 20)
    make_empty(root / "audio" / "empty.wav")
    make_truncated(root / "audio" / "truncated.wav")
    make_text(root / "audio" / "text.wav")
    make_png_named(root / "audio" / "image.wav")
    make_text(root / "images" / "not_an_image.jpg", "no pixels here\n")
    make_audio(root / "audio" / "spare.wav", 3.0, 16000, 1, seed + 21)
    outside = root.parent / f"{root.name}-outside" / "outside.wav"  # beside the corpus, not inside it
    make_audio(outside, 3.0, 16000, 1, seed + 22)

    def bad(rid: str, expect: RejectReason, **fields: object) -> CorpusRow:
        row: dict[str, object] = {"recording_id": rid, "lat": 61.0, "lon": 25.0, "audio": "audio/spare.wav"}
        row.update(fields)
        return CorpusRow(row, expect)

    rows += [
        bad("short", RejectReason.TOO_SHORT, audio="audio/short_1_5s.wav"),
        bad("gone", RejectReason.MISSING_FILE, audio="audio/does_not_exist.wav"),
        bad("empty", RejectReason.EMPTY_FILE, audio="audio/empty.wav"),
        bad("trunc", RejectReason.CORRUPT_AUDIO, audio="audio/truncated.wav"),
        bad("text", RejectReason.NOT_AUDIO, audio="audio/text.wav"),
        bad("png", RejectReason.NOT_AUDIO, audio="audio/image.wav"),
        bad("nolat", RejectReason.MISSING_COORDINATES, lat=None),
        bad("words", RejectReason.BAD_COORDINATES, lat="north"),
        bad("nan", RejectReason.BAD_COORDINATES, lon="NaN"),
        bad("lat91", RejectReason.COORDINATES_OUT_OF_RANGE, lat=91.0),
        bad("lon181", RejectReason.COORDINATES_OUT_OF_RANGE, lon=-181.5),
        bad("badimg", RejectReason.BAD_IMAGE, image="images/not_an_image.jpg"),
        bad("noimg", RejectReason.MISSING_IMAGE, image="images/nowhere.jpg"),
        bad("dotdot", RejectReason.PATH_ESCAPES_ROOT, audio=f"../{outside.parent.name}/outside.wav"),
        bad("abs", RejectReason.PATH_ESCAPES_ROOT, audio=str(outside.resolve())),
        bad("good0", RejectReason.DUPLICATE_ID, lat=10.0),  # same id as the first good row, other data
    ]
    return rows


def main(argv: list[str]) -> int:
    """Write the standard corpus and its three manifests to OUT (default ./generated-corpus)."""
    out = Path(argv[1] if len(argv) > 1 else "generated-corpus")
    rows = build_corpus(out)
    write_csv_manifest(out / "manifest.csv", [r.row for r in rows])
    write_jsonl_manifest(out / "manifest.jsonl", [r.row for r in rows])
    for i in range(3):
        make_audio(out / "freesound" / f"{1000 + i}__tester__take.wav", 4.0 + i, 22050, 1, i)
    write_freesound_json(out / "freesound.json", [freesound_result(1000 + i, 60.2, 24.9 + i / 100) for i in range(3)])
    print(f"wrote {len(rows)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
