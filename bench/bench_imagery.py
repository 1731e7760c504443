"""Benchmark: 1,000 crops (512 px at 0.5 m/px) from a local tile folder at random points.

Prints crops/s, tiles read (decoded) per crop, and the ratio to a bare loop that only decodes the same tiles
with Pillow (the floor any crop implementation pays). Usage:

    .venv/bin/python bench/bench_imagery.py [--crops 1000] [--seed 0] [--tiles DIR]

Without --tiles it writes a seeded random JPEG pyramid (zoom 18 around 60.4° N) to a temporary folder.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dataset.imagery import geo
from dataset.imagery.crop import crop_at
from dataset.imagery.sources import open_source

CENTRE = (60.41, 26.82)
ZOOM = 18
SPAN_TILES = 40  # 40×40 tiles ≈ 3 km × 3 km at 60.4° N


def write_random_pyramid(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    cx, cy = geo.tile_of(*CENTRE, ZOOM)
    for x in range(cx - SPAN_TILES // 2, cx + SPAN_TILES // 2):
        folder = root / str(ZOOM) / str(x)
        folder.mkdir(parents=True, exist_ok=True)
        for y in range(cy - SPAN_TILES // 2, cy + SPAN_TILES // 2):
            # smooth colour field + fine noise: compresses like real imagery, not like white noise
            coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((256, 256), Image.Resampling.BICUBIC)
            noise = rng.integers(-12, 13, (256, 256, 3))
            pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{y}.jpg", quality=85)
    return root


def random_points(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    cx, cy = geo.tile_of(*CENTRE, ZOOM)
    margin = 4  # tiles: a crop spans ~3.4 tiles at this zoom
    lo_x, hi_x = (cx - SPAN_TILES // 2 + margin) * 256, (cx + SPAN_TILES // 2 - margin) * 256
    lo_y, hi_y = (cy - SPAN_TILES // 2 + margin) * 256, (cy + SPAN_TILES // 2 - margin) * 256
    points = []
    for _ in range(n):
        lon, lat = geo.pixel_to_lonlat(rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y), ZOOM)
        points.append((lat, lon))
    return points


def _tile_file(root: Path, z: int, x: int, y: int) -> Path:
    return next(p for p in (root / str(z) / str(x)).glob(f"{y}.*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiles", type=Path, help="an existing tile folder (default: a generated one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tiles = args.tiles or write_random_pyramid(Path(tmp) / "tiles", args.seed)
        points = random_points(args.crops, args.seed)

        # The tiles each crop covers, for the tile counts and the bare-decode baseline.
        covered: list[list[Path]] = []
        with open_source(str(tiles)) as source:
            crop_s = 0.0  # only the crop_at calls are timed, not the bookkeeping of this bench
            for lat, lon in points:
                before = set(source._decoded)  # noqa: SLF001 - bench-only peek at the decoded-tile cache
                t0 = time.perf_counter()
                crop_at(source, lat, lon)
                crop_s += time.perf_counter() - t0
                covered.append([_tile_file(tiles, *key) for key in set(source._decoded) - before])
            decoded = source.tiles_decoded

        # Baseline 1: decode exactly the tiles the crop run decoded (same work minus stitching and resampling).
        files = [path for paths in covered for path in paths]
        t0 = time.perf_counter()
        for path in files:
            with Image.open(path) as image:
                image.convert("RGB")
        decode_s = time.perf_counter() - t0

    n = len(points)
    print(f"crops:                         {n}")
    print(f"crop time:                     {crop_s:.2f} s  ({n / crop_s:.1f} crops/s)")
    print(f"tiles decoded per crop:        {decoded / n:.2f}  (LRU cache of decoded tiles; {decoded} in all)")
    print(f"bare Pillow decode, same tiles: {decode_s:.2f} s  ({len(files)} tiles)")
    print(f"ratio crop / bare decode:      {crop_s / decode_s:.2f}  (time; throughput ratio {decode_s / crop_s:.2f})")


if __name__ == "__main__":
    main()
