"""A small store of reviews written straight through the models: three annotators, an adjudicator, control items
and blind tasks, with figures worked out by hand in tests/review/test_reviewers.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from annotator.review import refresh_final_labels
from annotator.store.models import LabelStudioProject, LabelStudioTask, OsmEvidence, Pair, Recording, Review
from annotator.vocabulary import (
    ImageStatus,
    ProjectPurpose,
    RecordingSource,
    RecordingStatus,
    ReviewOutcome,
    SceneClass,
    TaskKind,
    Verdict,
)

T0 = datetime(2026, 10, 1, tzinfo=UTC)
S = SceneClass
ALICE, BOB, CAROL, JUDGE = "alice@example.com", "bob@example.com", "carol@example.com", "judge@example.com"

#: OSM class and the year of the deciding element's last edit, per pair (1–6).
OSM = {
    1: (S.FOREST, 2024),
    2: (S.FARMLAND, 2012),
    3: (S.BEACH, 2021),
    4: (S.LAKE, 2010),
    5: (S.FOREST, 2019),
    6: (S.RESIDENTIAL, 2025),
}


@dataclass
class World:
    pairs: dict[int, int]  # 1–6 → pair id
    review_project: int
    adjudication_project: int


def _outcome(verdict: str, predicted: str | None) -> ReviewOutcome:
    if verdict == Verdict.SKIPPED:
        return ReviewOutcome.SKIPPED
    if verdict == Verdict.UNUSABLE:
        return ReviewOutcome.UNUSABLE
    if predicted is None:
        return ReviewOutcome.LABELLED
    return ReviewOutcome.ACCEPTED if verdict == predicted else ReviewOutcome.CORRECTED


def build(session: Session) -> World:
    """The reviews of the docstring; final labels set by :func:`annotator.review.refresh_final_labels`."""
    review = LabelStudioProject(base_url="http://127.0.0.1:1", ls_project_id=1, title="t")
    adjudication = LabelStudioProject(
        base_url="http://127.0.0.1:1", ls_project_id=2, title="t – adjudication", purpose=ProjectPurpose.ADJUDICATION
    )
    session.add_all([review, adjudication])
    session.flush()
    pairs: dict[int, int] = {}
    for n, (label, year) in OSM.items():
        rec = Recording(
            source=RecordingSource.MANIFEST,
            source_id=f"r{n}",
            lat=60.0 + n / 100,
            lon=25.0,
            original_path=f"r{n}.wav",
            sha256=f"{n:064d}",
            sample_rate=16000,
            channels=1,
            frames=160000,
            duration_s=10.0,
            status=RecordingStatus.ACCEPTED,
        )
        session.add(rec)
        session.flush()
        pair = Pair(recording_id=rec.id, lat=rec.lat, lon=rec.lon, image_status=ImageStatus.PRESENT)
        session.add(pair)
        session.flush()
        session.add(
            OsmEvidence(
                pair_id=pair.id,
                label=label.value,
                confidence=0.8,
                source="test.osm",
                last_edit_at=datetime(year, 6, 1, tzinfo=UTC),
            )
        )
        pairs[n] = pair.id
    # (task id, pair n, kind, preselected, project)
    tasks = {
        "r1": (101, 1, TaskKind.REVIEW, True, review),
        "r2": (102, 2, TaskKind.REVIEW, True, review),
        "r3": (103, 3, TaskKind.REVIEW, False, review),
        "r4": (104, 4, TaskKind.REVIEW, False, review),
        "r5": (105, 5, TaskKind.REVIEW, True, review),
        "r6": (106, 6, TaskKind.REVIEW, True, review),
        "c5": (205, 5, TaskKind.CONTROL, True, review),
        "c6": (206, 6, TaskKind.CONTROL, False, review),
        "a2": (302, 2, TaskKind.REVIEW, False, adjudication),
    }
    for task_id, n, kind, preselected, project in tasks.values():
        session.add(
            LabelStudioTask(
                project_id=project.id, pair_id=pairs[n], ls_task_id=task_id, kind=kind, preselected=preselected
            )
        )
    # (task, annotator, verdict, lead time, minutes after T0, retracted)
    reviews = [
        ("r1", ALICE, S.FOREST, 10.0, 1, False),
        ("r2", ALICE, S.LAKE, 20.0, 2, False),
        ("r3", ALICE, S.BEACH, 30.0, 3, False),
        ("r4", ALICE, S.LAKE, 99.0, 4, False),  # an older version of the next annotation: superseded
        ("r4", ALICE, S.HARBOUR, 40.0, 5, False),
        ("r5", ALICE, S.FOREST, 50.0, 6, False),
        ("c5", ALICE, S.FOREST, 60.0, 7, False),  # a control on a pair she reviewed herself: not graded
        ("r1", BOB, S.FOREST, 2.0, 1, False),
        ("r2", BOB, S.FARMLAND, 3.0, 2, False),
        ("r3", BOB, S.BEACH, 2.0, 3, False),
        ("r4", BOB, S.LAKE, 1.0, 4, False),
        ("c5", BOB, S.GRASSLAND, None, 5, False),  # a wrong control verdict: must not make pair 5 a conflict
        ("c6", BOB, S.RESIDENTIAL, 4.0, 6, False),
        ("r6", BOB, S.RESIDENTIAL, 100.0, 7, True),  # deleted in Label Studio
        ("r6", CAROL, S.RESIDENTIAL, 8.0, 1, False),
        ("r1", CAROL, Verdict.SKIPPED, 1.0, 2, False),
        ("a2", JUDGE, S.LAKE, 12.0, 30, False),
    ]
    annotation_ids: dict[tuple[str, str], int] = {}
    for i, (task, who, verdict, lead, minutes, retracted) in enumerate(reviews):
        task_id, n, _, _, project = tasks[task]
        annotation = annotation_ids.setdefault((task, who), 1000 + i)
        predicted = None if project is adjudication else OSM[n][0].value
        stamp = T0 + timedelta(minutes=minutes)
        session.add(
            Review(
                pair_id=pairs[n],
                project_id=project.id,
                ls_task_id=task_id,
                ls_annotation_id=annotation,
                annotator=who,
                verdict=verdict.value,
                outcome=_outcome(verdict, predicted),
                predicted_label=predicted,
                ls_created_at=T0,
                ls_updated_at=stamp,
                lead_time_s=lead,
                retracted_at=stamp if retracted else None,
            )
        )
    session.flush()
    refresh_final_labels(session, pairs.values())
    return World(pairs=pairs, review_project=review.id, adjudication_project=adjudication.id)


def add_corrections(session: Session, *, per_cell: int = 1) -> None:
    """Pairs decided by a human so that every row (OSM class, or none) and every column (class, or unusable) of
    the correction matrix has a count: OSM class i → human class i + 1, OSM none → lake, OSM beach → unusable."""
    from annotator.vocabulary import CLASS_ORDER, FinalReason

    cells: list[tuple[str | None, str]] = [
        (cls.value, CLASS_ORDER[(i + 1) % len(CLASS_ORDER)].value) for i, cls in enumerate(CLASS_ORDER)
    ]
    cells += [(None, S.LAKE.value), (S.BEACH.value, Verdict.UNUSABLE.value), (S.FOREST.value, S.FOREST.value)]
    n = 100
    for osm, final in cells:
        for _ in range(per_cell):
            n += 1
            rec = Recording(
                source=RecordingSource.MANIFEST,
                source_id=f"c{n}",
                lat=61.0 + n / 1000,
                lon=24.0,
                original_path=f"c{n}.wav",
                sha256=f"{n:064d}",
                sample_rate=16000,
                channels=1,
                frames=160000,
                duration_s=10.0,
                status=RecordingStatus.ACCEPTED,
            )
            session.add(rec)
            session.flush()
            pair = Pair(
                recording_id=rec.id,
                lat=rec.lat,
                lon=rec.lon,
                image_status=ImageStatus.PRESENT,
                final_label=final,
                final_reason=FinalReason.SINGLE_REVIEW,
            )
            session.add(pair)
            session.flush()
            session.add(
                OsmEvidence(
                    pair_id=pair.id,
                    label=osm,
                    confidence=0.7,
                    source="test.osm",
                    last_edit_at=datetime(2008 + n % 17, 3, 1, tzinfo=UTC),
                )
            )
    session.flush()
