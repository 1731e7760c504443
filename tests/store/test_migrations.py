"""Alembic owns the schema: blank-database upgrade, models/migrations agreement, upgrades that keep rows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from annotator.errors import StoreError, StoreNotInitialised
from annotator.store import Base, Pair, Recording, session_scope, upgrade_to_head
from annotator.store.engine import current_revision, head_revision, make_engine, require_current_schema
from annotator.store.models import RankRun, RankScore

#: A real store at revision 0005, written by annotator 0.1.0 (see data/make_store_v0_1_0.sh).
STORE_0005 = Path(__file__).parent / "data" / "store-v0.1.0.sql"


def test_blank_database_upgrades_to_the_expected_schema(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'blank.db'}")
    before, after = upgrade_to_head(engine)
    assert before is None and after == head_revision(engine)
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == {
        "alembic_version",
        "recordings",
        "pairs",
        "import_rejects",
        "osm_evidence",
        "osm_responses",
        "ls_projects",
        "ls_tasks",
        "ls_pulls",
        "reviews",
        "exports",
        "training_runs",
        "rank_runs",
        "rank_scores",
    }
    pair_columns = {c["name"] for c in inspector.get_columns("pairs")}
    assert {"recording_id", "clip_path", "clip_start_s", "image_path", "footprint_west", "final_label"} <= pair_columns
    # Every constraint has a name (SQLite batch migrations need one to alter it).
    for table in inspector.get_table_names():
        for uq in inspector.get_unique_constraints(table):
            assert uq["name"], f"unnamed unique constraint on {table}"
        for fk in inspector.get_foreign_keys(table):
            assert fk["name"], f"unnamed foreign key on {table}"
    assert {u["name"] for u in inspector.get_unique_constraints("recordings")} == {"uq_recordings_source_source_id"}


def test_models_and_migrations_agree(tmp_path):
    """The equivalent of `alembic check`: autogenerate finds nothing to do at head."""
    engine = make_engine(f"sqlite:///{tmp_path / 'check.db'}")
    upgrade_to_head(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "render_as_batch": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'twice.db'}")
    upgrade_to_head(engine)
    before, after = upgrade_to_head(engine)
    assert before == after == head_revision(engine)


def test_upgrade_from_first_revision_keeps_rows(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_to_head(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO recordings (id, source, source_id, lat, lon, original_path, sha256, sample_rate, channels,"
                " frames, duration_s, looped, status, imported_at) VALUES (1, 'manifest', 'r1', 60.1, 24.9, 'a.wav',"
                " :sha, 44100, 2, 441000, 10.0, 0, 'accepted', '2026-01-01 00:00:00')"
            ),
            {"sha": "0" * 64},
        )
        conn.execute(
            text(
                "INSERT INTO pairs (id, recording_id, origin, lat, lon, clip_path, clip_start_s, image_status,"
                " created_at) VALUES (1, 1, 'original', 60.1, 24.9, 'clips/1.wav', 0.0, 'needs_imagery',"
                " '2026-01-01 00:00:00')"
            )
        )
    with pytest.raises(StoreError, match="annotator init"):
        require_current_schema(engine)
    upgrade_to_head(engine)
    require_current_schema(engine)
    with session_scope(engine) as session:
        recording = session.get(Recording, 1)
        assert recording is not None and recording.source_id == "r1" and recording.channels == 2
        assert recording.imported_at == datetime(2026, 1, 1, tzinfo=UTC)
        pair = session.get(Pair, 1)
        assert pair is not None and pair.clip_path == "clips/1.wav"
        assert pair.footprint is None and pair.final_label is None


def _rows_of(path: Path) -> dict[str, list[dict[str, object]]]:
    """Every row of every table, as {column: value}, in a stable order."""
    with sqlite3.connect(path) as con:
        con.row_factory = sqlite3.Row
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted((dict(r) for r in con.execute(f'SELECT * FROM "{t}"')), key=repr) for t in tables}


#: Columns added after revision 0005, with the value an upgraded row must hold (revision 0007: review quality).
ADDED_SINCE_0005 = {
    "ls_tasks": {"kind": "review", "preselected": 1, "overlap": None},
    "reviews": {"lead_time_s": None},
    "pairs": {"image_acquired": None},
}


@pytest.mark.sqlite_only
def test_upgrade_from_0005_keeps_every_row_and_adds_empty_rank_tables(tmp_path):
    path = tmp_path / "v0005.db"
    with sqlite3.connect(path) as con:
        con.executescript(STORE_0005.read_text(encoding="utf-8"))
    before = _rows_of(path)
    engine = make_engine(f"sqlite:///{path}")
    assert current_revision(engine) == "0005"
    upgrade_to_head(engine)
    head = head_revision(engine)
    assert current_revision(engine) == head
    with session_scope(engine) as session:  # the new models read the upgraded store
        assert session.scalars(select(RankRun)).all() == [] and session.scalars(select(RankScore)).all() == []
    engine.dispose()
    after = _rows_of(path)
    assert after.pop("rank_runs") == [] and after.pop("rank_scores") == []
    assert after.pop("alembic_version") == [{"version_num": head}]
    assert before.pop("alembic_version") == [{"version_num": "0005"}]
    assert set(after) == set(before) and len(after["pairs"]) == 280
    for table, rows in before.items():
        added = ADDED_SINCE_0005.get(table, {})
        # Every old value kept; every added column holds its default. (Same order: sorted by the old values.)
        upgraded = sorted(({k: v for k, v in r.items() if k not in added} for r in after[table]), key=repr)
        assert upgraded == rows, table
        for row in after[table]:
            assert {k: row[k] for k in added} == added, table
    assert any(after[t] for t in ADDED_SINCE_0005)  # the store had rows in the tables that grew


@pytest.mark.sqlite_only
def test_sqlite_connections_have_foreign_keys_wal_and_busy_timeout(engine):
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


def test_uninitialised_database_is_refused_with_a_hint(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(StoreNotInitialised, match="annotator init"):
        require_current_schema(engine)
