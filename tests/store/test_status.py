"""`annotator status` counts, built from rows written straight into a real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

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
from annotator.store.models import RankRun, RankScore
from annotator.vocabulary import (
    FinalReason,
    ImageStatus,
    LabelSource,
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
    assert payload["pairs"]["total"] == 0 and payload["last_export"] is None and payload["rank"] is None


def _rank_run(session, pairs: list[Pair], scored: list[tuple[float, LabelSource | None]]) -> RankRun:
    """A stored rank run scoring `pairs` with the given (suspicion, label origin), as `annotator rank` leaves it."""
    run = RankRun(params={"seed": 0}, counts={"scored": len(scored)}, model={})
    session.add(run)
    session.flush()
    for rank, (pair, (suspicion, origin)) in enumerate(zip(pairs, scored, strict=True), start=1):
        evidence = session.scalar(select(OsmEvidence.label).where(OsmEvidence.pair_id == pair.id))
        session.add(
            RankScore(
                run_id=run.id,
                pair_id=pair.id,
                current_label=evidence if origin == LabelSource.OSM else pair.final_label,
                label_origin=origin,
                suggested_label=SceneClass.LAKE.value,
                suggested_p=0.7,
                suspicion=suspicion,
                fold=rank % 2,
                rank=rank,
            )
        )
    return run


def test_rank_figures_measure_the_latest_run_on_the_verdicts_since(engine, cli):
    """Flagged (suspicion ≥ 0.5) vs unflagged OSM labels, each with reviewed, corrected, unusable and the share."""
    with session_scope(engine) as session:
        rec = [_recording(session, n) for n in range(1, 11)]
        osm, single = SceneClass.FARMLAND, FinalReason.SINGLE_REVIEW
        pairs = [
            _pair(session, rec[0], osm, SceneClass.FOREST, single),  # flagged, corrected
            _pair(session, rec[1], osm, SceneClass.LAKE, FinalReason.MAJORITY),  # flagged, corrected
            _pair(session, rec[2], osm, osm, single),  # flagged, accepted
            _pair(session, rec[3], osm, Verdict.UNUSABLE, single),  # flagged, unusable
            _pair(session, rec[4], osm, None, None),  # flagged, not reviewed
            _pair(session, rec[5], osm, SceneClass.BEACH, FinalReason.CONFLICT),  # flagged, conflict: not decided
            _pair(session, rec[6], osm, osm, single),  # unflagged, accepted
            _pair(session, rec[7], osm, SceneClass.FOREST, single),  # unflagged, corrected
            _pair(session, rec[8], osm, SceneClass.FOREST, single),  # flagged but judged on a human label
            _pair(session, rec[9], None, None, None),  # flagged, no label at all
        ]
        origins = [LabelSource.OSM] * 8 + [LabelSource.HUMAN, None]
        suspicion = [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.3, 0.1, 0.95, 0.6]
        _rank_run(session, pairs[:2], [(0.1, LabelSource.OSM)] * 2)  # an older run: not the one measured
        latest = _rank_run(session, pairs, list(zip(suspicion, origins, strict=True)))
    with session_scope(engine) as session:
        feedback = collect_status(session).rank
    assert feedback is not None and feedback.run_id == latest.id
    assert (feedback.scored, feedback.flagged) == (10, 8)
    flagged, unflagged = feedback.flagged_osm, feedback.unflagged_osm
    assert (flagged.pairs, flagged.reviewed, flagged.corrected, flagged.unusable) == (6, 4, 2, 1)
    assert flagged.share_corrected == pytest.approx(2 / 3)
    assert (unflagged.pairs, unflagged.reviewed, unflagged.corrected, unflagged.unusable) == (2, 2, 1, 0)
    assert unflagged.share_corrected == pytest.approx(0.5)
    payload = json.loads(cli("status", "--json").stdout)["rank"]
    assert payload["flagged"] == 8 and payload["flagged_reviewed"] == 4 and payload["threshold"] == 0.5
    assert payload["flagged_osm"]["share_corrected"] == pytest.approx(2 / 3)
    assert payload["unflagged_osm"] == {
        "pairs": 2,
        "reviewed": 2,
        "corrected": 1,
        "unusable": 0,
        "share_corrected": 0.5,
    }
    table = cli("status").stdout
    assert f"Rank run #{latest.id}" in table and "67%" in table and "50%" in table


def test_status_without_a_rank_run_shows_none(cli, engine):
    with session_scope(engine) as session:
        _build(session)
    assert json.loads(cli("status", "--json").stdout)["rank"] is None
    assert "Rank run" not in cli("status").stdout
