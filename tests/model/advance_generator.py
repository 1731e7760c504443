"""Seeded generator of small ADVANCE-layout datasets with a planted signal in each modality.

Each class gets its own colour (hue i/13) and stripe frequency in the images and its own tone (a fundamental
plus two harmonics) in the sounds, under noise, so a classifier that learns anything beats chance clearly.
Recordings get 5-digit ids; some also get offset copies ``<recording>_1 … _4`` (as the export writes for rare
classes), so the grouped split has something to keep together.

Usage (also imported by the tests and bench/bench_train.py):
    python tests/model/advance_generator.py OUT [--per-class 6] [--layout export|release] [--image-size 512]
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import json
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from annotator.files import sha256_file
from annotator.vocabulary import CLASS_ORDER, LabelSource, OffsetDirection, PairOrigin, SceneClass
from dataset.layout import MANIFEST_FILE, METADATA_COLUMNS, METADATA_FILE, image_relpath, sound_relpath
from dataset.split import assign_splits, recording_of


def class_tone_hz(cls: SceneClass) -> float:
    return 220.0 * 1.17**cls.index


def make_image(path: Path, cls: SceneClass, rng: np.random.Generator, size: int) -> None:
    """A noisy class-coloured image with class-dependent diagonal stripes (JPEG)."""
    r, g, b = colorsys.hsv_to_rgb(cls.index / len(CLASS_ORDER), 0.7, 0.8)
    base = np.array([r, g, b]) * 255
    yy, xx = np.mgrid[0:size, 0:size] / size
    stripes = np.sin(2 * np.pi * (2 + cls.index) * (xx + yy) + rng.uniform(0, 2 * np.pi))
    pixels = base[None, None, :] * (0.8 + 0.2 * stripes[..., None]) + rng.normal(0, 25, (size, size, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_sound(path: Path, cls: SceneClass, rng: np.random.Generator, duration_s: float, sample_rate: int) -> None:
    """A class tone with two harmonics, a random phase and level, in white noise (mono PCM16 WAV)."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    f0 = class_tone_hz(cls) * rng.uniform(0.98, 1.02)
    tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    signal = rng.uniform(0.1, 0.3) * tone + rng.normal(0, 0.05, t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(signal, -1, 1).astype(np.float32), sample_rate, subtype="PCM_16")


def write_release(
    root: Path,
    *,
    per_class: int = 6,
    seed: int = 0,
    image_size: int = 512,
    duration_s: float = 10.0,
    sample_rate: int = 22_050,
    offsets_every: int = 3,
    classes: tuple[SceneClass, ...] = CLASS_ORDER,
) -> list[tuple[str, SceneClass]]:
    """Write ``vision/<class>/<id>.jpg`` and ``sound/<class>/<id>.wav``; every `offsets_every`-th recording
    also gets four offset copies. Returns (id, class) of every pair written."""
    rng = np.random.default_rng(seed)
    pairs: list[tuple[str, SceneClass]] = []
    recording = 10_000
    for cls in classes:
        for k in range(per_class):
            recording += 1
            ids = [f"{recording:05d}"]
            if offsets_every and k % offsets_every == offsets_every - 1:
                ids += [f"{recording:05d}_{j}" for j in range(1, 5)]
            for sample_id in ids:
                make_image(root / image_relpath(cls, sample_id), cls, rng, image_size)
                make_sound(root / sound_relpath(cls, sample_id), cls, rng, duration_s, sample_rate)
                pairs.append((sample_id, cls))
    return pairs


#: The fusion-only corpus: the image tells the first pair of classes from the second, the sound tells the first
#: of each pair from the second, so only both together name the class (A = image 0 + sound 0, B = 0 + 1, …).
FUSION_CLASSES = (SceneClass.AIRPORT, SceneClass.BEACH, SceneClass.BRIDGE, SceneClass.FARMLAND)


def write_fusion_release(
    root: Path,
    *,
    per_class: int = 24,
    seed: int = 0,
    image_size: int = 64,
    duration_s: float = 2.0,
    sample_rate: int = 16_000,
) -> list[tuple[str, SceneClass]]:
    """A release-layout corpus of the four :data:`FUSION_CLASSES` where neither modality alone names the class.

    Class k's image carries the signal of image group k // 2 and its sound the tone of sound group k % 2 (the
    planted signals of :func:`make_image` and :func:`make_sound`, borrowed from two far-apart classes), so an
    image-only model can reach at most 50 % accuracy, a sound-only one likewise, and fusion 100 %.
    """
    rng = np.random.default_rng(seed)
    image_signals = (CLASS_ORDER[0], CLASS_ORDER[6])
    sound_signals = (CLASS_ORDER[0], CLASS_ORDER[8])
    pairs: list[tuple[str, SceneClass]] = []
    recording = 20_000
    for k, cls in enumerate(FUSION_CLASSES):
        for _ in range(per_class):
            recording += 1
            sample_id = f"{recording:05d}"
            make_image(root / image_relpath(cls, sample_id), image_signals[k // 2], rng, image_size)
            make_sound(root / sound_relpath(cls, sample_id), sound_signals[k % 2], rng, duration_s, sample_rate)
            pairs.append((sample_id, cls))
    return pairs


def write_export(root: Path, *, split_seed: int = 0, **kwargs: object) -> list[tuple[str, SceneClass]]:
    """The release files plus ``metadata.csv`` and ``manifest.json`` as `annotator export` writes them."""
    pairs = write_release(root, **kwargs)  # type: ignore[arg-type]
    splits = assign_splits(((i, c, recording_of(i)) for i, c in pairs), split_seed)
    with (root / METADATA_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, METADATA_COLUMNS)
        writer.writeheader()
        for sample_id, cls in pairs:
            offset = "_" in sample_id
            writer.writerow(
                {
                    "id": sample_id,
                    "class": cls.value,
                    "recording": recording_of(sample_id),
                    "lat": "60.4",
                    "lon": "26.8",
                    "origin": PairOrigin.OFFSET if offset else PairOrigin.ORIGINAL,
                    "direction": OffsetDirection.N if offset else "",
                    "split": splits[sample_id].value,
                    "osm_label": cls.value,
                    "human_label": cls.value,
                    "label_source": LabelSource.HUMAN,
                    "reviewers": "1",
                    "license": "CC0",
                    "author": "generator",
                }
            )
    files = {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }
    manifest = {"tool_version": "test", "parameters": {"split_seed": split_seed}, "counts": {}, "files": files}
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--layout", choices=("export", "release"), default="export")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    writer = write_export if args.layout == "export" else write_release
    pairs = writer(args.out, per_class=args.per_class, image_size=args.image_size, seed=args.seed)
    print(f"wrote {len(pairs)} pairs to {args.out}")


if __name__ == "__main__":
    main()
