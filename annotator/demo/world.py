"""The offline demo world: one small made-up region whose ground truth every demo generator shares.

The region is a grid of square cells, each of one scene class (or of no class: parks and commercial land, which
OSM maps but ADVANCE has no class for). Recordings are placed inside cells and sound like their class; the tile
pyramid paints each cell in its class's colour and texture; the OSM extract maps each cell with the tags of its
class. A few cells are deliberately *stale*: OSM still shows what the tiles no longer do, so reviewers have
something to correct (exactly the situation ADVANCE's human verification exists for).
"""

from __future__ import annotations

from dataclasses import dataclass

from annotator.vocabulary import SceneClass

#: South-west corner of the grid (a quiet stretch of the Gulf of Finland coast, arbitrary but fixed).
ORIGIN_LAT = 60.4000
ORIGIN_LON = 26.8000
#: Cell size: about 670 m × 660 m at 60.4° N, so a 256 m image footprint fits well inside one cell.
CELL_LAT_DEG = 0.0060
CELL_LON_DEG = 0.0120
#: Rows from south to north; None is land OSM maps with tags no class uses (a park, commercial land).
#: Forest covers five cells, one of them stale: `annotator rank` can only tell a stale label from a current one
#: where most pairs that look like the stale cell's ground carry that class (with one forest cell beside the
#: stale one, half the forest-looking pairs would say farmland and the model could not tell which half is wrong).
GRID: tuple[tuple[SceneClass | None, ...], ...] = (
    (SceneClass.HARBOUR, SceneClass.BEACH, SceneClass.LAKE, SceneClass.BRIDGE, SceneClass.RESIDENTIAL),
    (SceneClass.AIRPORT, SceneClass.FARMLAND, SceneClass.ORCHARD, SceneClass.GRASSLAND, SceneClass.FOREST),
    (SceneClass.FOREST, SceneClass.SPARSE_SHRUB_LAND, None, SceneClass.RESIDENTIAL, SceneClass.FOREST),
    (SceneClass.SPORTS_LAND, SceneClass.TRAIN_STATION, None, SceneClass.FOREST, SceneClass.FOREST),
)
#: Cells where OSM is out of date: (row, col) -> the class OSM still claims. The tiles show GRID's class.
STALE_OSM: dict[tuple[int, int], SceneClass] = {
    (3, 3): SceneClass.FARMLAND,  # a forest planted on old farmland, joining the forest beside it
}

#: RGB base colour of each class in the demo tiles (roughly what it looks like from above).
CLASS_COLOURS: dict[SceneClass, tuple[int, int, int]] = {
    SceneClass.AIRPORT: (150, 150, 145),
    SceneClass.BEACH: (225, 205, 150),
    SceneClass.BRIDGE: (120, 110, 100),
    SceneClass.FARMLAND: (190, 170, 90),
    SceneClass.FOREST: (35, 85, 40),
    SceneClass.GRASSLAND: (120, 180, 90),
    SceneClass.HARBOUR: (70, 90, 120),
    SceneClass.LAKE: (40, 70, 140),
    SceneClass.ORCHARD: (90, 140, 60),
    SceneClass.RESIDENTIAL: (170, 120, 110),
    SceneClass.SPARSE_SHRUB_LAND: (140, 140, 95),
    SceneClass.SPORTS_LAND: (60, 160, 80),
    SceneClass.TRAIN_STATION: (110, 100, 120),
}
UNMAPPED_COLOUR = (128, 128, 128)

#: Fundamental frequency (Hz) of each class's demo sound (a harmonic tone plus class-coloured noise).
CLASS_TONES_HZ: dict[SceneClass, float] = {c: 180.0 * (1.19**i) for i, c in enumerate(SceneClass)}


@dataclass(frozen=True)
class Cell:
    """One grid cell: its row/column, true class, the class OSM claims, and its bounds in degrees."""

    row: int
    col: int
    truth: SceneClass | None
    osm: SceneClass | None
    south: float
    west: float
    north: float
    east: float

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.south + self.north) / 2, (self.west + self.east) / 2)


def cells() -> list[Cell]:
    """All cells, south to north, west to east."""
    out = []
    for r, row in enumerate(GRID):
        for c, truth in enumerate(row):
            south = ORIGIN_LAT + r * CELL_LAT_DEG
            west = ORIGIN_LON + c * CELL_LON_DEG
            out.append(
                Cell(r, c, truth, STALE_OSM.get((r, c), truth), south, west, south + CELL_LAT_DEG, west + CELL_LON_DEG)
            )
    return out


def bounds() -> tuple[float, float, float, float]:
    """(west, south, east, north) of the whole world."""
    rows, cols = len(GRID), len(GRID[0])
    return (ORIGIN_LON, ORIGIN_LAT, ORIGIN_LON + cols * CELL_LON_DEG, ORIGIN_LAT + rows * CELL_LAT_DEG)


def cell_at(lat: float, lon: float) -> Cell | None:
    """The cell containing (lat, lon), or None outside the world."""
    r = int((lat - ORIGIN_LAT) // CELL_LAT_DEG)
    c = int((lon - ORIGIN_LON) // CELL_LON_DEG)
    if 0 <= r < len(GRID) and 0 <= c < len(GRID[0]):
        return cells()[r * len(GRID[0]) + c]
    return None
