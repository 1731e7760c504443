"""A killed or partial import leaves a consistent store, and a rerun resumes without duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.store.models import Pair
from tests.data.generate import make_audio, write_csv_manifest
from tests.ingest.conftest import recordings_by_id

REPO = Path(__file__).resolve().parents[2]


def _rows(folder: Path, n: int) -> list[dict[str, object]]:
    rows = []
    for i in range(n):
        make_audio(folder / f"r{i}.wav", 2.5 + (i % 5), 8000 + 1000 * (i % 4), 1 + i % 2, seed=i)
        rows.append({"recording_id": f"r{i}", "lat": 10 + i / 1000, "lon": 20, "audio": f"r{i}.wav"})
    return rows


def test_rerun_after_a_partial_import_adds_only_the_rest(cli, engine, tmp_path):
    rows = _rows(tmp_path, 10)
    half = write_csv_manifest(tmp_path / "half.csv", rows[:4])
    full = write_csv_manifest(tmp_path / "full.csv", rows)
    assert "4 new, 0 unchanged" in cli("import", str(half)).stdout
    assert "6 new, 4 unchanged" in cli("import", str(full)).stdout
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Pair)) == 10


@pytest.mark.sqlite_only  # watches the SQLite file with raw sqlite3 while the import runs
def test_killed_import_resumes_to_the_same_store_as_an_uninterrupted_one(cli, engine, location, tmp_path):
    rows = _rows(tmp_path / "audio", 150)
    manifest = write_csv_manifest(tmp_path / "audio" / "m.csv", rows)
    db = location.sqlite_path
    cmd = [
        sys.executable,
        "-m",
        "annotator",
        "--db",
        str(db),
        "--media-dir",
        str(location.media_dir),
        "import",
        str(manifest),
        "--batch-size",
        "2",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    try:
        deadline = time.monotonic() + 120
        while committed < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                committed = con.execute("select count(*) from pairs").fetchone()[0]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(db) as con:
        at_kill = con.execute("select count(*) from pairs").fetchone()[0]
    assert 0 < at_kill < 150, "the import should have been killed part-way"

    result = cli("import", str(manifest))
    assert f"{150 - at_kill} new, {at_kill} unchanged" in result.stdout
    resumed = recordings_by_id(engine)
    assert len(resumed) == 150 and all(len(r.pairs) == 1 for r in resumed.values())

    # Byte-identical clips to an import that was never interrupted.
    from annotator.config import resolve_store
    from annotator.store import open_store
    from tests.conftest import Cli

    other = resolve_store(str(tmp_path / "other" / "s.db"))
    other_cli = Cli(location=other, db_path=other.sqlite_path)
    other_cli("init")
    other_cli("import", str(manifest))
    other_engine = open_store(other)
    clean = recordings_by_id(other_engine)
    other_engine.dispose()
    for rid, rec in resumed.items():
        a = (location.media_dir / rec.pairs[0].clip_path).read_bytes()
        b = (other.media_dir / clean[rid].pairs[0].clip_path).read_bytes()
        assert a == b, rid
