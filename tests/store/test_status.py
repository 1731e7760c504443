"""`annotator status` counts, built from rows written straight into a real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from annotator.status import collect_status
from annotator.store import (
    ImportReject,
    LabelStudioProject,
    LabelStudioTask,
    OsmEvidence,
    Pair,
    Recording,
    Review,
    session_scope,
)
from annotator.vocabulary import (
    FinalReason,
    ImageStatus,
    RecordingSource,
    RecordingStatus,
    RejectReason,
    ReviewOutcome,
    SceneClass,
    Verdict,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _recording(session, n: int, status: RecordingStatus = RecordingStatus.ACCEPTED) -> Recording:
    rec = Recording(
        source=RecordingSource.MANIFEST,
        source_id=f"r{n}",
        lat=60.0 + n / 1000,
        lon=25.0,
        original_path=f"r{n}.wav",
        sha256=f"{n:064d}",
        sample_rate=16000,
        channels=1,
        frames=160000,
        duration_s=10.0,
        status=status,
        reject_reason=RejectReason.TOO_SHORT if status == RecordingStatus.REJECTED else None,
    )
    session.add(rec)
    session.flush()
    return rec


def _pair(session, rec: Recording, osm: SceneClass | None | str, final: str | None, reason: FinalReason | None):
    pair = Pair(
        recording_id=rec.id,
        lat=rec.lat,
        lon=rec.lon,
        clip_path=f"clips/{rec.id}.wav",
        image_status=ImageStatus.PRESENT,
        final_label=final,
        final_reason=reason,
    )
    session.add(pair)
    session.flush()
    if osm != "no-evidence":
        session.add(OsmEvidence(pair_id=pair.id, label=osm, confidence=0.8, source="test.osm"))
    return pair


def _build(session):
    project = LabelStudioProject(base_url="http://127.0.0.1:1", ls_project_id=1, title="t")
    session.add(project)
    session.flush()
    pairs = [
        _pair(session, _recording(session, 1), SceneClass.FOREST, SceneClass.FOREST, FinalReason.SINGLE_REVIEW),
        _pair(session, _recording(session, 2), SceneClass.FARMLAND, SceneClass.FOREST, FinalReason.MAJORITY),
        _pair(session, _recording(session, 3), None, SceneClass.LAKE, FinalReason.SINGLE_REVIEW),
        _pair(session, _recording(session, 4), SceneClass.BEACH, Verdict.UNUSABLE, FinalReason.SINGLE_REVIEW),
        _pair(session, _recording(session, 5), SceneClass.BEACH, None, FinalReason.CONFLICT),
        _pair(session, _recording(session, 6), SceneClass.HARBOUR, None, None),
        _pair(session, _recording(session, 7), "no-evidence", None, None),
    ]
    _recording(session, 8, status=RecordingStatus.REJECTED)
    session.add(
        ImportReject(manifest="m.csv", line=9, recording_ref="r8", reason=RejectReason.TOO_SHORT, detail="1.5 s")
    )
    session.add(
        ImportReject(manifest="m.csv", line=10, recording_ref="r9", reason=RejectReason.MISSING_FILE, detail="x")
    )
    for i, pair in enumerate(pairs[:6]):
        session.add(LabelStudioTask(project_id=project.id, pair_id=pair.id, ls_task_id=100 + i))
    verdicts = [SceneClass.FOREST, SceneClass.FOREST, SceneClass.LAKE, Verdict.UNUSABLE, SceneClass.BEACH]
    for i, (pair, verdict) in enumerate(zip(pairs, verdicts, strict=False)):
        session.add(
            Review(
                pair_id=pair.id,
                project_id=project.id,
                ls_task_id=100 + i,
                ls_annotation_id=i,
                annotator="a@x",
                verdict=verdict,
                outcome=ReviewOutcome.ACCEPTED,
                ls_updated_at=NOW,
            )
        )
    session.add(
        Review(
            pair_id=pairs[5].id,
            project_id=project.id,
            ls_task_id=105,
            ls_annotation_id=50,
            annotator="a@x",
            verdict=Verdict.SKIPPED,
            outcome=ReviewOutcome.SKIPPED,
            ls_updated_at=NOW,
        )
    )


def test_counts_per_stage_class_and_correction_matrix(engine):
    with session_scope(engine) as session:
        _build(session)
    with session_scope(engine) as session:
        status = collect_status(session)
    assert status.recordings == {"total": 8, "accepted": 7, "rejected": 1, "looped": 0}
    assert status.rejects_by_reason == {"missing_file": 1, "too_short": 1}
    assert status.pairs["original"] == 7 and status.pairs["with_image"] == 7
    stages = status.stages
    assert stages["prelabelled"] == 6 and stages["osm_unlabelled"] == 1
    assert stages["pushed"] == 6 and stages["not_pushed"] == 1
    assert stages["reviewed"] == 5 and stages["skipped"] == 1
    assert stages["accepted"] == 1  # forest kept forest
    assert stages["corrected"] == 2  # farmland → forest, none → lake
    assert stages["unusable"] == 1 and stages["conflicts"] == 1 and stages["final"] == 3
    assert status.per_class["forest"] == {"osm": 1, "final": 2}
    assert status.per_class["beach"] == {"osm": 2, "final": 0}
    rows, cols, counts = status.correction_rows, status.correction_columns, status.correction_counts
    assert counts[rows.index("farmland")][cols.index("forest")] == 1
    assert counts[rows.index("none")][cols.index("lake")] == 1
    assert counts[rows.index("beach")][cols.index("unusable")] == 1
    assert sum(map(sum, counts)) == 4  # the conflict is not a correction


def test_status_json_and_tables_through_the_cli(cli, engine):
    with session_scope(engine) as session:
        _build(session)
    payload = json.loads(cli("status", "--json").stdout)
    assert payload["stages"]["conflicts"] == 1
    assert payload["per_class"]["lake"]["final"] == 1
    assert payload["correction_matrix"]["columns"][-1] == "unusable"
    tables = cli("status").stdout
    assert "OSM label (rows)" in tables and "stage conflicts" in tables


def test_status_of_an_empty_store(cli, engine):
    payload = json.loads(cli("status", "--json").stdout)
    assert payload["pairs"]["total"] == 0 and payload["last_export"] is None
