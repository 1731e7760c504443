"""Benchmark `annotator export` on ADVANCE's size: 5,075 pairs with the paper's class counts (SPEC §2).

Usage: .venv/bin/python bench/bench_export.py [--scale 1.0] [--workers 2] [--pool 64] [--dir DIR] [--shard-size 1000]
       [--shards-only]

Setup (not timed): a store of 5,075 reviewed original pairs, class counts = ADVANCE_COUNTS, one recording each.
Media are small but real: a pool of `--pool` distinct 10 s mono PCM16 clips at 44.1 kHz and 512×512 RGB JPEGs
(textured, ~100 KB), generated with a seed; every pair gets its *own* path in the media directory
(``clips/<id>.wav``, ``images/<id>.jpg``) as a hard link to a pool file. So the export opens 5,075 distinct
paths, as it would on a real store, without writing 4.5 GB of input; all inputs are read once before timing so
both contenders start from a warm page cache.

Timed:
1. ``export_dataset`` with the default thresholds (every ADVANCE class has ≥ 150 pairs, so no offsets are made):
   selection, split, resample 44.1 → 22.05 kHz (soxr), PCM16 write + sha256 of every file, metadata.csv, the two
   figures, manifest.json, the rename, the exports row.
2. The bare loop: the same 5,075 pairs with the same number of worker processes, each only reading the clip,
   resampling it to the layout's rate and writing it as PCM16, and copying the image bytes, into
   ``vision/<class>/<id>.jpg`` / ``sound/<class>/<id>.wav``. Resampling is part of "writing to the layout":
   the layout's clips are 22,050 Hz. A plain byte copy of both files is printed too, as the I/O floor.

3. Shards (``export --format webdataset``): the folder export of step 1 packed into WebDataset tar shards by
   :func:`dataset.shards.pack_export` (``--shard-size``, default 1,000): read every file, write the tars, sha256
   each shard, copy the side files, write the shard manifest. A shard export is the folder export plus this
   pack, so the bench prints both times and the ratio shard export / folder export (and the pack alone in
   pairs/s). ``--shards-only`` skips the bare-loop contenders of step 2.

The contenders alternate for `--rounds` rounds (default 2) and each keeps its best time, so a burst of load
from other processes on a shared machine does not decide the ratio. Prints pairs/s of each and the ratio
export / bare loop (target ≥ 0.8).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotator.config import resolve_store  # noqa: E402
from annotator.store import open_store, session_scope, unit_of_work, upgrade_to_head  # noqa: E402
from annotator.store.media import clip_relpath, image_relpath  # noqa: E402
from annotator.store.models import Pair, Recording  # noqa: E402
from annotator.vocabulary import (  # noqa: E402
    ADVANCE_COUNTS,
    IMAGE_SOURCE_MANIFEST,
    FinalReason,
    ImageStatus,
    PairOrigin,
    RecordingSource,
    RecordingStatus,
)

SOURCE_RATE = 44100
OUT_RATE = 22050


def make_pool(folder: Path, n: int) -> list[tuple[Path, Path]]:
    """`n` distinct (clip, image) files: 10 s 44.1 kHz mono PCM16 tones + noise, 512×512 textured JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(10 * SOURCE_RATE) / SOURCE_RATE
    pool = []
    for i in range(n):
        clip = folder / f"clip{i}.wav"
        signal = 0.3 * np.sin(2 * np.pi * (150 + 20 * i) * t) + rng.normal(0, 0.05, t.shape)
        soundfile.write(clip, signal.astype(np.float32), SOURCE_RATE, subtype="PCM_16")
        image = folder / f"image{i}.jpg"
        base = rng.integers(0, 200, 3)
        pixels = np.clip(base + rng.integers(0, 56, (512, 512, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(image, format="JPEG", quality=90)
        pool.append((clip, image))
    return pool


def build_store(root: Path, scale: float, pool: list[tuple[Path, Path]]):  # type: ignore[no-untyped-def]
    location = resolve_store(str(root / "bench.db"), root / "media")
    engine = open_store(location, create=True)
    upgrade_to_head(engine)
    (location.media_dir / "clips").mkdir(parents=True)
    (location.media_dir / "images").mkdir(parents=True)
    n = 0
    with session_scope(engine) as session:
        for cls, count in ADVANCE_COUNTS.items():
            for _ in range(max(1, round(count * scale))):
                recording = Recording(
                    source=RecordingSource.FREESOUND,
                    source_id=str(100000 + n),
                    lat=60.0 + n * 1e-4,
                    lon=25.0,
                    original_path=f"{n}.wav",
                    sha256="0" * 64,
                    sample_rate=SOURCE_RATE,
                    channels=1,
                    frames=10 * SOURCE_RATE,
                    duration_s=10.0,
                    status=RecordingStatus.ACCEPTED,
                    license="CC0",
                    author="bench",
                )
                pair = Pair(
                    recording=recording,
                    origin=PairOrigin.ORIGINAL,
                    lat=recording.lat,
                    lon=recording.lon,
                    clip_start_s=0.0,
                    clip_seed=0,
                    clip_sample_rate=SOURCE_RATE,
                    image_status=ImageStatus.PRESENT,
                    image_source=IMAGE_SOURCE_MANIFEST,
                    final_label=cls.value,
                    final_reason=FinalReason.SINGLE_REVIEW.value,
                )
                session.add_all([recording, pair])
                n += 1
        session.flush()
        for pair in session.query(Pair).order_by(Pair.id):
            clip, image = pool[pair.id % len(pool)]
            pair.clip_path, pair.image_path = clip_relpath(pair.id), image_relpath(pair.id)
            os.link(clip, location.media_dir / pair.clip_path)
            os.link(image, location.media_dir / pair.image_path)
    return engine, location, n


def bare_pair(job: tuple[str, str, str, str, bool]) -> int:
    """Read one clip and image and write them into the layout (resampled clip, copied image bytes)."""
    import soxr

    clip, image, sound_dst, image_dst, resample = job
    if resample:
        samples, rate = soundfile.read(clip, dtype="float32")
        samples = soxr.resample(samples, rate, OUT_RATE, quality="HQ")
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, OUT_RATE, format="WAV", subtype="PCM_16")
        Path(sound_dst).write_bytes(buffer.getvalue())
    else:
        Path(sound_dst).write_bytes(Path(clip).read_bytes())
    Path(image_dst).write_bytes(Path(image).read_bytes())
    return 1


def bare_loop(engine, location, out: Path, workers: int, resample: bool) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    with session_scope(engine) as session:
        rows = session.query(Pair.id, Pair.final_label, Pair.clip_path, Pair.image_path).all()
    jobs = []
    for pair_id, label, clip, image in rows:
        for folder in ("sound", "vision"):
            (out / folder / label).mkdir(parents=True, exist_ok=True)
        jobs.append(
            (
                str(location.media_dir / clip),
                str(location.media_dir / image),
                str(out / "sound" / label / f"{pair_id}.wav"),
                str(out / "vision" / label / f"{pair_id}.jpg"),
                resample,
            )
        )
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = sum(pool.map(bare_pair, jobs, chunksize=16))
    assert done == len(jobs)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of ADVANCE's 5,075 pairs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", type=int, default=64, help="distinct media files behind the per-pair links")
    parser.add_argument("--dir", type=Path, default=None, help="work folder [default: a temp folder, removed]")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best time of each counts")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard of the webdataset export")
    parser.add_argument("--shards-only", action="store_true", help="time the folder export and the shards only")
    args = parser.parse_args()

    from annotator.export import ExportOptions, export_dataset
    from dataset.shards import pack_export

    root = Path(tempfile.mkdtemp(prefix="bench-export-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        pool = make_pool(root / "pool", args.pool)
        engine, location, n = build_store(root / "store", args.scale, pool)
        for path in location.media_dir.rglob("*"):  # warm the page cache for both contenders
            if path.is_file():
                path.read_bytes()
        print(f"setup: {n} pairs, {args.pool} distinct media files, {time.perf_counter() - t0:.1f} s", flush=True)

        # Defaults at full size (every class has >= 150 pairs: nothing dropped, nothing augmented); a scaled-down
        # run keeps every pair too, so both contenders always handle the same n pairs.
        options = ExportOptions(workers=args.workers)
        if args.scale != 1.0:
            options = ExportOptions(workers=args.workers, min_per_class=1, augment_below=0)
        export_s = bare_s = copy_s = pack_s = float("inf")
        shard_bytes = folder_bytes = 0
        for round_ in range(1, args.rounds + 1):
            start = time.perf_counter()
            with unit_of_work(engine) as work:
                report = export_dataset(work, location, root / "dataset", options)
            export_s = min(export_s, time.perf_counter() - start)
            assert report.total == n, (report.total, n)
            start = time.perf_counter()
            packed = pack_export(root / "dataset", root / "shards", shard_size=args.shard_size)
            pack_s = min(pack_s, time.perf_counter() - start)
            assert sum(packed.per_split().values()) == n
            shard_bytes = packed.total_bytes
            folder_bytes = sum(p.stat().st_size for p in (root / "dataset").rglob("*") if p.is_file())
            shutil.rmtree(root / "shards")
            shutil.rmtree(root / "dataset")
            if not args.shards_only:
                bare_s = min(bare_s, bare_loop(engine, location, root / "bare", args.workers, resample=True))
                shutil.rmtree(root / "bare")
                copy_s = min(copy_s, bare_loop(engine, location, root / "copy", args.workers, resample=False))
                shutil.rmtree(root / "copy")
            print(
                f"round {round_}: best so far export {export_s:.2f} s, pack {pack_s:.2f} s, bare {bare_s:.2f} s, "
                f"copy {copy_s:.2f} s",
                flush=True,
            )

        print(f"export        : {n} pairs in {export_s:7.2f} s = {n / export_s:7.1f} pairs/s (workers={args.workers})")
        shard_s = export_s + pack_s
        print(
            f"pack to shards: {n} pairs in {pack_s:7.2f} s = {n / pack_s:7.1f} pairs/s "
            f"(shard size {args.shard_size}; {shard_bytes / 1e6:.0f} MB of tars from {folder_bytes / 1e6:.0f} MB)"
        )
        print(
            f"shard export  : {n} pairs in {shard_s:7.2f} s = {n / shard_s:7.1f} pairs/s (folder export + pack); "
            f"ratio shard export / folder export time = {shard_s / export_s:.3f}"
        )
        if args.shards_only:
            return 0
        print(
            f"bare loop     : {n} pairs in {bare_s:7.2f} s = {n / bare_s:7.1f} pairs/s "
            "(read clip + image, soxr to 22,050 Hz, write PCM16 + JPEG bytes)"
        )
        print(f"byte copy     : {n} pairs in {copy_s:7.2f} s = {n / copy_s:7.1f} pairs/s (I/O floor, no resample)")
        print(
            f"ratio export / bare loop = {bare_s / export_s:.3f} (target >= 0.8); "
            f"export / byte copy = {copy_s / export_s:.3f}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
