"""Benchmark: crops (512 px at 0.5 m/px) at random points from a local tile folder and from a GeoTIFF.

Tiles: prints crops/s, tiles read (decoded) per crop, and the ratio to a bare loop that only decodes the same
tiles with Pillow (the floor any crop implementation pays).

GeoTIFF: prints crops/s from a JPEG-compressed, tiled GeoTIFF with overviews in EPSG:3067 (ETRS-TM35FIN, 0.25 m/px,
as national orthophotos come), and the bare windowed read — rasterio reading the very window (and decimation)
each crop reads, without reprojection — with the ratio: what the warp into the crop's Web-Mercator grid costs.
Both timed passes run with the windows already read once, so both see the same warm caches. Usage:

    .venv/bin/python bench/bench_imagery.py [--crops 1000] [--geotiff-crops 300] [--seed 0] [--tiles DIR]
        [--geotiff FILE] [--only tiles|geotiff]

Without --tiles it writes a seeded random JPEG pyramid (zoom 18 around 60.4° N) to a temporary folder; without
--geotiff a seeded 4096×4096 GeoTIFF (1 km², 0.25 m/px) around the same place.
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


GEOTIFF_CRS = "EPSG:3067"
GEOTIFF_PIXEL_M = 0.25
GEOTIFF_SIZE_PX = 4096


def write_random_geotiff(path: Path, seed: int) -> Path:
    """A seeded orthophoto-like GeoTIFF in EPSG:3067 centred on CENTRE: tiled, JPEG/YCbCr, with overviews."""
    import rasterio
    from pyproj import Transformer
    from rasterio.enums import Resampling

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((GEOTIFF_SIZE_PX,) * 2, Image.Resampling.BICUBIC))
    noise = rng.integers(-12, 13, smooth.shape)
    pixels = np.clip(smooth.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    x, y = Transformer.from_crs("EPSG:4326", GEOTIFF_CRS, always_xy=True).transform(CENTRE[1], CENTRE[0])
    half = GEOTIFF_SIZE_PX * GEOTIFF_PIXEL_M / 2
    profile = {
        "driver": "GTiff",
        "width": GEOTIFF_SIZE_PX,
        "height": GEOTIFF_SIZE_PX,
        "count": 3,
        "dtype": "uint8",
        "crs": GEOTIFF_CRS,
        "transform": rasterio.Affine(GEOTIFF_PIXEL_M, 0.0, x - half, 0.0, -GEOTIFF_PIXEL_M, y + half),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "jpeg",
        "photometric": "YCbCr",
        "jpeg_quality": 85,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(pixels, -1, 0))
        dst.build_overviews([2, 4, 8, 16], Resampling.average)
    return path


def geotiff_points(n: int, seed: int) -> list[tuple[float, float]]:
    """Points whose 256 m crop lies inside the generated raster (turned frames included)."""
    rng = random.Random(seed)
    reach = GEOTIFF_SIZE_PX * GEOTIFF_PIXEL_M / 2 - 200.0
    points = []
    for _ in range(n):
        lat, lon = geo.offset_point(*CENTRE, "E", rng.uniform(-reach, reach))
        points.append(geo.offset_point(lat, lon, "N", rng.uniform(-reach, reach)))
    return points


def bench_geotiff(args: argparse.Namespace, tmp: Path) -> None:
    from dataset.imagery.geotiff import GeoTiffSource

    tif = args.geotiff or write_random_geotiff(tmp / "ortho.tif", args.seed)
    points = geotiff_points(args.geotiff_crops, args.seed)
    with open_source(str(tif)) as source:
        assert isinstance(source, GeoTiffSource)
        plans = [source.plan(lat, lon, 512, 0.5) for lat, lon in points]
        for window, shape, _ in plans:  # warm-up: both timed passes then see the same caches
            source.read_window(window, shape)
        t0 = time.perf_counter()
        for window, shape, _ in plans:
            source.read_window(window, shape)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for lat, lon in points:
            crop_at(source, lat, lon)
        crop_s = time.perf_counter() - t0
    n = len(points)
    pixels = sum(shape[0] * shape[1] for _, shape, _ in plans) / n
    ratio = sum(r for _, _, r in plans) / n
    print(f"GeoTIFF:                       {tif if args.geotiff else 'generated'} ({GEOTIFF_CRS}, {n} crops)")
    print(f"source px per crop px:         {ratio:.2f}  (window read at {pixels:,.0f} px per crop)")
    print(f"bare windowed read:            {read_s:.2f} s  ({n / read_s:.1f} reads/s)")
    print(f"GeoTIFF crop (read + warp):    {crop_s:.2f} s  ({n / crop_s:.1f} crops/s)")
    print(f"ratio crop / bare read:        {crop_s / read_s:.2f}  (time; throughput ratio {read_s / crop_s:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=1000)
    parser.add_argument("--geotiff-crops", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiles", type=Path, help="an existing tile folder (default: a generated one)")
    parser.add_argument("--geotiff", type=Path, help="an existing GeoTIFF covering the points (default: generated)")
    parser.add_argument("--only", choices=["tiles", "geotiff"], help="run one of the two benchmarks")
    args = parser.parse_args()

    if args.only != "geotiff":
        bench_tiles(args)
    if args.only != "tiles":
        with tempfile.TemporaryDirectory() as tmp:
            bench_geotiff(args, Path(tmp))


def bench_tiles(args: argparse.Namespace) -> None:
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
