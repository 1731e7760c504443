"""The lifecycle enums changed no stored value: a store written by annotator 0.1.0 (before the enums) reads,
writes back and reports unchanged with today's code.

``data/store-v0.1.0.sql`` is a real store made by the 0.1.0 code (import with a reject, imagery, OSM pre-labels,
a Label Studio round trip with accepted / corrected / unusable / skipped verdicts, a majority and a conflict sent
to adjudication, an export with offset pairs), dumped as SQL; ``data/make_store_v0_1_0.sh`` regenerates it.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from annotator import vocabulary as v
from annotator.store import (
    ExportRecord,
    ImportReject,
    LabelStudioProject,
    LabelStudioPull,
    Pair,
    Recording,
    Review,
)
from annotator.store.engine import make_engine, upgrade_to_head

DUMP = Path(__file__).parent / "data" / "store-v0.1.0.sql"

#: Every lifecycle value annotator 0.1.0 wrote, as the literals it used (frozen here on purpose).
VALUES_OF_0_1_0: dict[type[StrEnum], set[str]] = {
    v.RecordingSource: {"manifest", "freesound"},
    v.RecordingStatus: {"accepted", "rejected"},
    v.PairOrigin: {"original", "offset"},
    v.OffsetDirection: {"N", "E", "S", "W"},
    v.ImageStatus: {"present", "needs_imagery", "failed"},
    v.LabelSource: {"human", "osm"},
    v.ReviewOutcome: {"accepted", "corrected", "labelled", "unusable", "skipped"},
    v.PullMode: {"incremental", "full"},
    v.ProjectPurpose: {"review", "adjudication"},
    v.FinalReason: {"single_review", "majority", "conflict", "osm_only"},
    v.Verdict: {"unusable", "skipped"},
    v.RejectReason: {
        "missing_id",
        "missing_file",
        "empty_file",
        "corrupt_audio",
        "not_audio",
        "too_short",
        "missing_coordinates",
        "bad_coordinates",
        "coordinates_out_of_range",
        "path_escapes_root",
        "duplicate_id",
        "changed_file",
        "changed_metadata",
        "missing_image",
        "bad_image",
        "bad_row",
    },
    v.ImageryFailure: {"out_of_range", "tile_missing", "fetch_failed", "bad_tile", "imagery_error", "source_unusable"},
}


#: Values added since 0.1.0 (new members only: an old value is never renamed).
ADDED_SINCE_0_1_0: dict[type[StrEnum], set[str]] = {
    v.RejectReason: {"unreadable_file", "bad_field", "implausible_audio"},
}


@pytest.mark.parametrize("enum", list(VALUES_OF_0_1_0), ids=lambda e: e.__name__)
def test_enum_values_are_the_strings_stored_before(enum: type[StrEnum]) -> None:
    assert {member.value for member in enum} == VALUES_OF_0_1_0[enum] | ADDED_SINCE_0_1_0.get(enum, set())


def _load(tmp_path: Path) -> Path:
    """The 0.1.0 store, upgraded to today's schema (later revisions only add columns and tables, so every stored
    lifecycle string is still the one 0.1.0 wrote)."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as con:
        con.executescript(DUMP.read_text(encoding="utf-8"))
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    engine.dispose()
    return path


def _raw_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


def test_old_store_reads_as_enums(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{_load(tmp_path)}")
    with Session(engine) as session:
        recordings = session.scalars(select(Recording)).all()
        pairs = session.scalars(select(Pair)).all()
        reviews = session.scalars(select(Review)).all()
        assert {r.status for r in recordings} == {v.RecordingStatus.ACCEPTED, v.RecordingStatus.REJECTED}
        assert all(type(r.source) is v.RecordingSource for r in recordings)
        assert {r.reject_reason for r in recordings} == {None, v.RejectReason.TOO_SHORT}
        rejects = session.scalars(select(ImportReject)).all()
        assert {r.reason for r in rejects} == {v.RejectReason.TOO_SHORT, v.RejectReason.MISSING_FILE}
        assert {p.origin for p in pairs} == set(v.PairOrigin)
        assert {p.direction for p in pairs if p.origin is v.PairOrigin.OFFSET} == set(v.OffsetDirection)
        assert all(type(p.image_status) is v.ImageStatus for p in pairs)
        assert {p.final_reason for p in pairs} >= {v.FinalReason.MAJORITY, v.FinalReason.CONFLICT}
        assert {r.outcome for r in reviews} >= {
            v.ReviewOutcome.ACCEPTED,
            v.ReviewOutcome.CORRECTED,
            v.ReviewOutcome.UNUSABLE,
            v.ReviewOutcome.SKIPPED,
        }
        assert {p.purpose for p in session.scalars(select(LabelStudioProject))} == set(v.ProjectPurpose)
        assert {p.mode for p in session.scalars(select(LabelStudioPull))} == set(v.PullMode)
        # Queries compare with enum members and find the old rows.
        offsets = session.scalars(select(Pair).where(Pair.origin == v.PairOrigin.OFFSET)).all()
        assert len(offsets) == sum(p.origin == "offset" for p in pairs) > 0
        assert session.scalars(select(ExportRecord)).one().counts["offsets"]
    engine.dispose()


def test_writing_back_changes_no_stored_value(tmp_path: Path) -> None:
    path = _load(tmp_path)
    before = _raw_rows(path)
    engine = make_engine(f"sqlite:///{path}")
    with Session(engine) as session:
        # Re-assign every lifecycle column from its enum (as today's code writes it) and flush it to disk.
        for pair in session.scalars(select(Pair)):
            pair.origin = v.PairOrigin(pair.origin)
            pair.image_status = v.ImageStatus(pair.image_status)
            pair.direction = v.OffsetDirection(pair.direction) if pair.direction else None
            pair.final_reason = v.FinalReason(pair.final_reason) if pair.final_reason else None
        for recording in session.scalars(select(Recording)):
            recording.status = v.RecordingStatus(recording.status)
            recording.source = v.RecordingSource(recording.source)
        for reject in session.scalars(select(ImportReject)):
            reject.reason = v.RejectReason(reject.reason)
            flag_modified(reject, "reason")
        for review in session.scalars(select(Review)):
            review.outcome = v.ReviewOutcome(review.outcome)
        for project in session.scalars(select(LabelStudioProject)):
            project.purpose = v.ProjectPurpose(project.purpose)
        for pull in session.scalars(select(LabelStudioPull)):
            pull.mode = v.PullMode(pull.mode)
        session.flush()
        # Force an UPDATE of every row even where SQLAlchemy sees no change.
        for pair in session.scalars(select(Pair)):
            flag_modified(pair, "origin")
            flag_modified(pair, "image_status")
        session.commit()
    engine.dispose()
    assert _raw_rows(path) == before


def test_today_cli_reads_the_old_store(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from annotator.cli import app

    path = _load(tmp_path)
    runner = CliRunner()
    init = runner.invoke(app, ["--db", str(path), "init"], catch_exceptions=False)
    assert init.exit_code == 0, init.output
    status = runner.invoke(app, ["--db", str(path), "status", "--json"], catch_exceptions=False)
    assert status.exit_code == 0, status.output
    import json

    report = json.loads(status.stdout)
    assert report["recordings"]["accepted"] == 72 and report["recordings"]["rejected"] == 1
    assert report["pairs"]["original"] == 72 and report["pairs"]["offset"] == 208
