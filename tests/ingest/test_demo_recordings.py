"""The demo recordings: placed well inside their cells, and imported with exactly the two planned rejects."""

from __future__ import annotations

import math

from annotator.demo.recordings import MARGIN_M, PER_CELL, write_demo_recordings
from annotator.demo.world import cell_at, cells
from tests.ingest.conftest import read_rejects, recordings_by_id


def test_demo_recordings_import_with_only_the_planned_rejects(cli, engine, tmp_path):
    manifest = write_demo_recordings(tmp_path / "recordings", seed=0)
    assert manifest == tmp_path / "recordings" / "manifest.csv"
    result = cli("import", str(manifest), "--seed", "7", "--rejects", str(tmp_path / "r.csv"))
    class_cells = [c for c in cells() if c.truth is not None]
    n_good = PER_CELL * len(class_cells) + (len(cells()) - len(class_cells))
    assert f"{n_good} new, 0 unchanged, 2 rejected" in result.stdout
    assert {r["reason"] for r in read_rejects(tmp_path / "r.csv")} == {"too_short", "missing_file"}

    per_cell: dict[tuple[int, int], int] = {}
    for rec in recordings_by_id(engine).values():
        if rec.status != "accepted":
            continue
        cell = cell_at(rec.lat, rec.lon)
        assert cell is not None
        per_cell[(cell.row, cell.col)] = per_cell.get((cell.row, cell.col), 0) + 1
        metres_lat = 111_320.0
        metres_lon = metres_lat * math.cos(math.radians(rec.lat))
        edge = min(
            (rec.lat - cell.south) * metres_lat,
            (cell.north - rec.lat) * metres_lat,
            (rec.lon - cell.west) * metres_lon,
            (cell.east - rec.lon) * metres_lon,
        )
        assert edge >= MARGIN_M - 15 >= 150 - 5
    assert all(per_cell[(c.row, c.col)] == PER_CELL for c in class_cells)
