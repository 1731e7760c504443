"""Seeded generators of tile pyramids for the imagery tests (PNG tiles, an MBTiles file) — no binary fixtures."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw

from dataset.imagery.geo import TILE_SIZE, global_pixel

BACKGROUND = (20, 40, 60)
MARKER = (255, 255, 255)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def tiles_around(lat: float, lon: float, zoom: int, radius: int = 3) -> list[tuple[int, int, int]]:
    """Tile keys (z, x, y) of a square of (2·radius+1)² tiles around the point."""
    px, py = global_pixel(lat, lon, zoom)
    cx, cy = int(px // TILE_SIZE), int(py // TILE_SIZE)
    n = 1 << zoom
    return [
        (zoom, (cx + dx) % n, cy + dy)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if 0 <= cy + dy < n
    ]


def marker_tiles(
    keys: Iterable[tuple[int, int, int]], marker_px: tuple[int, int], half: int = 3, tile_size: int = TILE_SIZE
) -> dict[tuple[int, int, int], Image.Image]:
    """Tiles of a plain background with a white square of side 2·half centred on the global pixel corner
    ``marker_px`` (the square covers pixels marker-half … marker+half-1), drawn across tile edges.

    Each tile also gets a faint coordinate-dependent tint so a tile placed at the wrong spot shows.
    """
    out = {}
    mx, my = marker_px
    for z, x, y in keys:
        image = Image.new("RGB", (tile_size, tile_size), (BACKGROUND[0] + x % 7, BACKGROUND[1] + y % 7, BACKGROUND[2]))
        ox, oy = x * tile_size, y * tile_size
        draw = ImageDraw.Draw(image)
        world = tile_size << z
        for wrap in (-world, 0, world):  # the world repeats east-west: draw the marker's copies too
            left, top = mx + wrap - half - ox, my - half - oy
            draw.rectangle((left, top, left + 2 * half - 1, top + 2 * half - 1), fill=MARKER)
        out[(z, x, y)] = image
    return out


def write_folder(root: Path, tiles: dict[tuple[int, int, int], Image.Image], ext: str = "png") -> Path:
    for (z, x, y), image in tiles.items():
        path = root / str(z) / str(x) / f"{y}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=95) if ext in ("jpg", "jpeg") else image.save(path)
    return root


def write_mbtiles(
    path: Path, tiles: dict[tuple[int, int, int], Image.Image], *, with_zoom_metadata: bool = True
) -> Path:
    """An MBTiles 1.3 file: tiles in TMS row order (tile_row = 2^z − 1 − y)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    db.execute("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
    zooms = sorted({z for z, _, _ in tiles})
    meta = {"name": "test", "format": "png", "type": "baselayer"}
    if with_zoom_metadata:
        meta |= {"minzoom": str(zooms[0]), "maxzoom": str(zooms[-1])}
    db.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
    db.executemany(
        "INSERT INTO tiles VALUES (?, ?, ?, ?)",
        [(z, x, (1 << z) - 1 - y, png_bytes(image)) for (z, x, y), image in tiles.items()],
    )
    db.commit()
    db.close()
    return path


def marker_centroid(image: Image.Image, threshold: int = 128) -> tuple[float, float]:
    """Brightness-weighted centroid (continuous coordinates, pixel i covers [i, i+1)) of the bright marker."""
    import numpy as np

    grey = np.asarray(image.convert("L"), dtype=np.float64)
    weights = np.where(grey > threshold, grey, 0.0)
    total = weights.sum()
    assert total > 0, "no marker in the image"
    ys, xs = np.indices(grey.shape)
    return float((weights * (xs + 0.5)).sum() / total), float((weights * (ys + 0.5)).sum() / total)
