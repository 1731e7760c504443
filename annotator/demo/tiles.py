"""The demo world's aerial imagery: a small local XYZ pyramid ``out_dir/{z}/{x}/{y}.png``.

Each pixel is painted from the ground truth of :mod:`annotator.demo.world`: the class colour of the cell it falls
in, with a texture that tells the classes apart (crop rows for farmland, a tree grid for orchards, crowns for
forest, roofs and streets for residential land, tracks for stations, …). Textures are functions of ground metres,
so they line up across tiles and zoom levels. Everything is deterministic: the same call writes the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.demo import world
from annotator.vocabulary import SceneClass
from dataset.imagery.geo import TILE_SIZE, tile_of, zoom_for_resolution

#: Ground beyond the world's cells that still gets tiles: a crop's half-width (128 m) plus an export offset
#: (64 m) from a point on a cell's edge, and room to spare.
MARGIN_M = 300.0
TARGET_RESOLUTION_M = 0.5
METRES_PER_DEG_LAT = 111_320.0


def demo_zoom_levels() -> tuple[int, int]:
    """The zoom a 0.5 m/px crop needs at the demo world's latitude, and one coarser level."""
    _, south, _, north = world.bounds()
    finest = max(zoom_for_resolution(south, TARGET_RESOLUTION_M), zoom_for_resolution(north, TARGET_RESOLUTION_M))
    return finest - 1, finest


def write_demo_tiles(out_dir: Path) -> Path:
    """Write the demo pyramid under ``out_dir`` (the imagery SOURCE for ``annotator import --imagery``).

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    west, south, east, north = world.bounds()
    dlat = MARGIN_M / METRES_PER_DEG_LAT
    dlon = MARGIN_M / (METRES_PER_DEG_LAT * math.cos(math.radians(north)))
    coarse, fine = demo_zoom_levels()
    fx0, fy0 = tile_of(north + dlat, west - dlon, fine)
    fx1, fy1 = tile_of(south - dlat, east + dlon, fine)
    # Each coarse tile is its four fine children shrunk (one render per fine tile, and the levels agree).
    for cx in range(fx0 // 2, fx1 // 2 + 1):
        for cy in range(fy0 // 2, fy1 // 2 + 1):
            children = np.zeros((2 * TILE_SIZE, 2 * TILE_SIZE, 3), dtype=np.uint8)
            for dx in (0, 1):
                for dy in (0, 1):
                    x, y = 2 * cx + dx, 2 * cy + dy
                    pixels = render_tile(fine, x, y)
                    children[dy * TILE_SIZE : (dy + 1) * TILE_SIZE, dx * TILE_SIZE : (dx + 1) * TILE_SIZE] = pixels
                    if fx0 <= x <= fx1 and fy0 <= y <= fy1:
                        _save(Image.fromarray(pixels), out_dir / str(fine) / str(x) / f"{y}.png")
            shrunk = Image.fromarray(children).resize((TILE_SIZE, TILE_SIZE), Image.Resampling.LANCZOS)
            _save(shrunk, out_dir / str(coarse) / str(cx) / f"{cy}.png")
    return out_dir


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, compress_level=1)


def render_tile(zoom: int, x: int, y: int) -> np.ndarray:
    """The RGB pixels (256×256×3, uint8) of one tile."""
    world_px = TILE_SIZE << zoom
    gx = x * TILE_SIZE + np.arange(TILE_SIZE) + 0.5
    gy = y * TILE_SIZE + np.arange(TILE_SIZE) + 0.5
    lon = gx / world_px * 360.0 - 180.0  # per column
    lat = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * gy / world_px))))  # per row
    # Ground metres from the world's origin (an equirectangular approximation is plenty for textures).
    shape = (TILE_SIZE, TILE_SIZE)
    metres_per_deg_lon = METRES_PER_DEG_LAT * math.cos(math.radians(world.ORIGIN_LAT))
    xm = np.broadcast_to((lon - world.ORIGIN_LON) * metres_per_deg_lon, shape)
    ym = np.broadcast_to(((lat - world.ORIGIN_LAT) * METRES_PER_DEG_LAT)[:, None], shape)
    n_rows, n_cols = len(world.GRID), len(world.GRID[0])
    row = np.floor((lat - world.ORIGIN_LAT) / world.CELL_LAT_DEG).astype(np.int64)[:, None]
    col = np.floor((lon - world.ORIGIN_LON) / world.CELL_LON_DEG).astype(np.int64)[None, :]
    cell_id = np.where((row >= 0) & (row < n_rows) & (col >= 0) & (col < n_cols), row * n_cols + col, -1)
    truths = [cell.truth for cell in world.cells()]
    ids = np.unique(cell_id)
    if len(ids) == 1:  # most tiles lie in one cell: paint the whole tile at once
        rgb = _paint_or_ground(truths[ids[0]] if ids[0] >= 0 else None, xm, ym)
    else:
        rgb = np.empty((*shape, 3), dtype=np.float64)
        for cid in ids:
            mask = cell_id == cid
            rgb[mask] = _paint_or_ground(truths[cid] if cid >= 0 else None, xm[mask], ym[mask])
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _paint_or_ground(truth: SceneClass | None, xm: np.ndarray, ym: np.ndarray) -> np.ndarray:
    if truth is None:  # outside the world, or land no class uses: grey ground
        return _shade(world.UNMAPPED_COLOUR, 1 + 0.06 * (_noise(xm, ym, 3.0) - 0.5))
    return _paint(truth, xm, ym)


def _noise(xm: np.ndarray, ym: np.ndarray, cell_m: float, salt: int = 0) -> np.ndarray:
    """Deterministic blocky noise in [0, 1): one hashed value per ``cell_m`` square of ground."""
    i = np.floor(xm / cell_m).astype(np.int64)
    j = np.floor(ym / cell_m).astype(np.int64)
    h = (i * 73856093) ^ (j * 19349663) ^ (salt * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF) / 65536.0


def _mix(base: tuple[int, int, int], other: tuple[int, int, int], mask: np.ndarray) -> np.ndarray:
    a, b = np.asarray(base, dtype=np.float64), np.asarray(other, dtype=np.float64)
    return np.where(mask[..., None], b, a)


def _shade(colour: tuple[int, int, int], factor: np.ndarray) -> np.ndarray:
    return np.asarray(colour, dtype=np.float64) * factor[..., None]


def _paint(cls: SceneClass, xm: np.ndarray, ym: np.ndarray) -> np.ndarray:
    """Colours (N×3) of ground points of class ``cls`` at metres (xm, ym)."""
    base = world.CLASS_COLOURS[cls]
    grain = _noise(xm, ym, 1.5, salt=1) - 0.5
    if cls == SceneClass.FARMLAND:  # crop rows 12 m apart, in fields of alternating shade
        field = 0.9 + 0.2 * _noise(xm, ym, 160.0, salt=2)
        return _shade(base, field * (1 + 0.18 * np.sin(2 * np.pi * ym / 12.0) + 0.05 * grain))
    if cls == SceneClass.ORCHARD:  # tree crowns on a regular 8 m grid over lighter ground
        crown = ((xm % 8.0) - 4.0) ** 2 + ((ym % 8.0) - 4.0) ** 2 < 2.6**2
        return _mix((150, 170, 100), base, crown) * (1 + 0.05 * grain)[..., None]
    if cls == SceneClass.FOREST:  # dense crowns of varying shade
        return _shade(base, 0.7 + 0.6 * _noise(xm, ym, 3.0, salt=3) + 0.1 * grain)
    if cls == SceneClass.SPARSE_SHRUB_LAND:  # scattered dark shrubs on pale ground
        shrub = _noise(xm, ym, 3.0, salt=4) < 0.12
        return _mix(base, (70, 80, 45), shrub) * (1 + 0.08 * grain)[..., None]
    if cls == SceneClass.GRASSLAND:
        return _shade(base, 1 + 0.1 * (_noise(xm, ym, 6.0, salt=5) - 0.5) + 0.06 * grain)
    if cls == SceneClass.RESIDENTIAL:  # roofs in 30 m blocks, grey streets between
        bx, by = xm % 30.0, ym % 30.0
        street = (bx < 5.0) | (by < 5.0)
        roof = (bx > 9.0) & (bx < 24.0) & (by > 10.0) & (by < 22.0)
        out = _mix((110, 140, 80), base, roof)  # gardens around the houses
        out = np.where(street[..., None], np.asarray((95, 95, 95), dtype=np.float64), out)
        return out * (1 + 0.05 * grain)[..., None]
    if cls in (SceneClass.LAKE, SceneClass.HARBOUR, SceneClass.BRIDGE):
        water = _shade(base, 1 + 0.06 * np.sin(2 * np.pi * (xm + 0.5 * ym) / 9.0) + 0.02 * grain)
        if cls == SceneClass.HARBOUR:  # piers every 60 m with moored boats
            pier = ((ym % 60.0) < 6.0) & ((xm % 200.0) < 150.0)
            return np.where(pier[..., None], np.asarray((150, 140, 125), dtype=np.float64), water)
        if cls == SceneClass.BRIDGE:  # a deck across the water, along the cell's middle
            mid = (world.CELL_LAT_DEG / 2) * METRES_PER_DEG_LAT
            deck = np.abs((ym % (world.CELL_LAT_DEG * METRES_PER_DEG_LAT)) - mid) < 14.0
            rail = np.abs(np.abs((ym % (world.CELL_LAT_DEG * METRES_PER_DEG_LAT)) - mid) - 12.0) < 1.0
            out = np.where(deck[..., None], np.asarray(base, dtype=np.float64) * 1.4, _shade((40, 70, 140), 1 + 0 * xm))
            return np.where(rail[..., None], np.asarray((230, 230, 220), dtype=np.float64), out)
        return water
    if cls == SceneClass.BEACH:  # fine sand with wave lines
        return _shade(base, 1 + 0.05 * grain + 0.04 * np.sin(2 * np.pi * xm / 15.0))
    if cls == SceneClass.AIRPORT:  # runways 45 m wide with a dashed centre line, on mown grass
        r = ym % 250.0
        runway = np.abs(r - 125.0) < 22.5
        dash = (np.abs(r - 125.0) < 1.0) & ((xm % 40.0) < 20.0)
        out = _mix((120, 160, 95), base, runway)
        return np.where(dash[..., None], np.asarray((245, 245, 245), dtype=np.float64), out)
    if cls == SceneClass.SPORTS_LAND:  # pitches with white lines
        px, py = xm % 110.0, ym % 75.0
        line = (np.abs(px - 5.0) < 0.6) | (np.abs(px - 105.0) < 0.6) | (np.abs(px - 55.0) < 0.6)
        line |= (np.abs(py - 5.0) < 0.6) | (np.abs(py - 70.0) < 0.6)
        stripes = 1 + 0.08 * ((px // 10.0) % 2)
        out = _shade(base, stripes)
        return np.where(line[..., None], np.asarray((240, 240, 240), dtype=np.float64), out)
    if cls == SceneClass.TRAIN_STATION:  # parallel tracks on ballast, a platform roof
        t = ym % 20.0
        rail = (np.abs(t - 3.0) < 0.4) | (np.abs(t - 4.5) < 0.4) | (np.abs(t - 11.0) < 0.4) | (np.abs(t - 12.5) < 0.4)
        platform = (t > 15.0) & (t < 19.0)
        out = _mix(base, (180, 175, 165), platform)
        return np.where(rail[..., None], np.asarray((60, 55, 50), dtype=np.float64), out)
    return _shade(base, 1 + 0.05 * grain)
