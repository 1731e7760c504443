"""Benchmark `annotator import` against the I/O floor, and its peak memory at two manifest sizes.

    .venv/bin/python bench/bench_import.py                      # 5,075 rows, RSS at 5,075 and 50,000 rows
    .venv/bin/python bench/bench_import.py --n 300 --unique 100 --rss-rows 3000   # a quick run

Generated recordings (lengths uniform in 1–120 s; WAV, FLAC, OGG, MP3, AIFF; 16–44.1 kHz; mono/stereo) are kept
under bench/out/pool and reused between runs. ``--unique K`` makes only K distinct files and cycles them through
the manifest (every row is still probed, hashed, decoded and written). The bare loop reads each file with
soundfile and writes a 10 s mono PCM16 clip: the I/O floor. Each measurement runs in its own child process;
peak RSS is the child's own high-water mark (VmHWM).
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FORMATS = (".wav", ".flac", ".ogg", ".mp3", ".aiff")
RATES = (16000, 22050, 44100)


def make_pool(out: Path, unique: int, seed: int) -> list[str]:
    import numpy as np

    from tests.data.generate import make_audio

    rng = np.random.default_rng(seed)
    pool = out / "pool"
    names = []
    for i in range(unique):
        duration = float(rng.uniform(1.0, 120.0))
        name = f"p{i:05d}{FORMATS[i % len(FORMATS)]}"
        rate, channels = RATES[i % len(RATES)], 1 + (i // 5) % 2
        if not (pool / name).exists():
            make_audio(pool / name, duration, rate, channels, seed=i, freq=200.0 + i % 300)
        names.append(f"pool/{name}")
    return names


def write_manifest(path: Path, names: list[str], rows: int) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["recording_id", "lat", "lon", "audio"])
        for i in range(rows):
            writer.writerow([f"b{i}", 60 + (i % 1000) / 10000, 25 + (i // 1000) / 1000, names[i % len(names)]])
    return path


def child_import(manifest: Path, db: Path) -> dict[str, float]:
    from annotator.config import resolve_store
    from annotator.ingest import import_manifest
    from annotator.store import open_store, unit_of_work, upgrade_to_head

    location = resolve_store(str(db))
    engine = open_store(location, create=True)
    upgrade_to_head(engine)
    start = time.perf_counter()
    with unit_of_work(engine) as work:
        report = import_manifest(work, location, manifest, rejects_path=db.with_suffix(".rejects.csv"))
    elapsed = time.perf_counter() - start
    engine.dispose()
    return {"seconds": elapsed, "rows": report.rows, "pairs": report.new, "rejected": report.rejected_total}


def child_bare(manifest: Path, out: Path) -> dict[str, float]:
    import numpy as np
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = 0
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            data, sr = sf.read(manifest.parent / row["audio"], dtype="float32", always_2d=True)
            mono = data.mean(axis=1)
            clip = np.resize(mono, 10 * sr)  # repeats a short file, cuts a long one
            sf.write(out / f"{row['recording_id']}.wav", clip, sr, subtype="PCM_16")
            rows += 1
    return {"seconds": time.perf_counter() - start, "rows": rows}


def child_bare_window(manifest: Path, out: Path) -> dict[str, float]:
    """The tighter floor: decode only a 10 s window (the whole file when shorter, then tile it), write it."""
    import numpy as np
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = 0
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = manifest.parent / row["audio"]
            info = sf.info(path)
            sr, want = info.samplerate, 10 * info.samplerate
            if info.frames <= want:
                data, _ = sf.read(path, dtype="float32", always_2d=True)
            else:
                data, _ = sf.read(path, start=(info.frames - want) // 2, frames=want, dtype="float32", always_2d=True)
            clip = np.resize(data.mean(axis=1), want)
            sf.write(out / f"{row['recording_id']}.wav", clip, sr, subtype="PCM_16")
            rows += 1
    return {"seconds": time.perf_counter() - start, "rows": rows}


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(*args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5075, help="rows of the timed manifest")
    parser.add_argument("--unique", type=int, default=None, help="distinct files (default: n)")
    parser.add_argument("--rss-rows", type=int, default=50000, help="rows of the large-manifest memory run (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, manifest, target = args.child
        children = {"import": child_import, "bare": child_bare, "bare-window": child_bare_window}
        result = children[kind](Path(manifest), Path(target))
        result["maxrss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    names = make_pool(out, args.unique or args.n, args.seed)
    print(f"pool: {len(names)} files ready in {time.perf_counter() - t0:.0f} s", flush=True)
    manifest = write_manifest(out / f"manifest-{args.n}.csv", names, args.n)
    for stale in out.glob("run-*"):
        subprocess.run(["rm", "-rf", str(stale)], check=True)

    bare = run_child("bare", str(manifest), str(out / "run-bare"))
    window = run_child("bare-window", str(manifest), str(out / "run-bare-window"))
    imp = run_child("import", str(manifest), str(out / "run-import" / "bench.db"))
    bare_rate = bare["rows"] / bare["seconds"]
    import_rate = imp["rows"] / imp["seconds"]
    print(f"rows: {args.n} ({len(names)} distinct files); pairs: {imp['pairs']:.0f}; rejected: {imp['rejected']:.0f}")
    pair_rate = imp["pairs"] / imp["seconds"]
    print(f"import:    {import_rate:8.1f} rows/s  {pair_rate:8.1f} pairs/s  ({imp['seconds']:.1f} s)")
    print(f"bare loop: {bare_rate:8.1f} rows/s  ({bare['seconds']:.1f} s)")
    window_rate = window["rows"] / window["seconds"]
    print(f"bare loop, window only: {window_rate:8.1f} rows/s  ({window['seconds']:.1f} s)")
    print(f"ratio import/bare: {import_rate / bare_rate:.2f}  (target >= 0.8)")
    print(f"ratio import/bare window-only: {import_rate / window_rate:.2f}  (the tighter floor)")
    print(f"peak RSS import at {args.n} rows: {imp['maxrss_mb']:.0f} MB  (bare loop {bare['maxrss_mb']:.0f} MB)")
    if args.rss_rows:
        big = write_manifest(out / f"manifest-{args.rss_rows}.csv", names, args.rss_rows)
        large = run_child("import", str(big), str(out / "run-import-large" / "bench.db"))
        print(
            f"peak RSS import at {args.rss_rows} rows: {large['maxrss_mb']:.0f} MB  "
            f"({large['maxrss_mb'] / imp['maxrss_mb']:.2f}x of {args.n} rows; target <= 1.5x)"
        )


if __name__ == "__main__":
    main()
