"""Counts per stage and per class, and the OSM→human correction matrix (SPEC §5 `annotator status`).

Everything here is read-only and derived from the store with a handful of GROUP BY queries, so `status` answers
at once on a store of any size. With a rank run in the store, the latest run's flags are measured against the
verdicts that came back since (:func:`annotator.rank.rank_feedback`). The reviewers' figures (per annotator,
agreement, anchoring) come from :func:`annotator.reviewers.reviewer_figures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, distinct, exists, func, select
from sqlalchemy.orm import Session

from annotator.rank.scores import RankFeedback, rank_feedback
from annotator.reviewers import ReviewerFigures, reviewer_figures
from annotator.store.models import (
    ExportRecord,
    ImportReject,
    LabelStudioTask,
    OsmEvidence,
    Pair,
    Recording,
    Review,
)
from annotator.vocabulary import (
    CLASS_ORDER,
    FinalReason,
    ImageStatus,
    PairOrigin,
    RecordingStatus,
    ReviewOutcome,
    Verdict,
)

NONE_LABEL = "none"  # OSM matched nothing


@dataclass
class StoreStatus:
    """A snapshot of the store's counts; `to_json()` is what `status --json` prints."""

    recordings: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    correction_rows: list[str] = field(default_factory=list)
    correction_columns: list[str] = field(default_factory=list)
    correction_counts: list[list[int]] = field(default_factory=list)
    last_export: dict[str, Any] | None = None
    rank: RankFeedback | None = None  # the latest rank run against the verdicts since; None: `rank` never ran
    reviewers: ReviewerFigures = field(default_factory=ReviewerFigures)  # per annotator, agreement, anchoring

    def to_json(self) -> dict[str, Any]:
        return {
            "recordings": self.recordings,
            "rejects_by_reason": self.rejects_by_reason,
            "pairs": self.pairs,
            "stages": self.stages,
            "per_class": self.per_class,
            "correction_matrix": {
                "rows": self.correction_rows,
                "columns": self.correction_columns,
                "counts": self.correction_counts,
            },
            "last_export": self.last_export,
            "rank": self.rank.to_json() if self.rank is not None else None,
            "reviewers": self.reviewers.to_json(),
        }


def _count(session: Session, statement: Select[Any]) -> int:
    return int(session.scalar(statement) or 0)


def _grouped(session: Session, column: Any, *where: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).where(*where).group_by(column)).all()
    return {str(key): int(n) for key, n in rows if key is not None}


#: A human final label that counts (reviewed, not a conflict), as a WHERE clause on pairs.
_FINAL_OK = and_(
    Pair.final_label.is_not(None),
    Pair.final_reason != FinalReason.OSM_ONLY,
    Pair.final_reason != FinalReason.CONFLICT,
)
_ORIGINAL = Pair.origin == PairOrigin.ORIGINAL


def collect_status(session: Session) -> StoreStatus:
    """Gather every count `status` shows."""
    status = StoreStatus(
        recordings=_recording_counts(session),
        rejects_by_reason=dict(sorted(_grouped(session, ImportReject.reason).items())),
        pairs=_pair_counts(session),
        per_class=_per_class(session),
        last_export=_last_export(session),
        rank=rank_feedback(session),
        reviewers=reviewer_figures(session),
    )
    status.stages = _stage_counts(session, imported=status.pairs[PairOrigin.ORIGINAL.value])
    status.correction_rows, status.correction_columns, status.correction_counts = _correction_matrix(session)
    return status


def _recording_counts(session: Session) -> dict[str, int]:
    by_status = _grouped(session, Recording.status)
    return {
        "total": sum(by_status.values()),
        RecordingStatus.ACCEPTED.value: by_status.get(RecordingStatus.ACCEPTED, 0),
        RecordingStatus.REJECTED.value: by_status.get(RecordingStatus.REJECTED, 0),
        "looped": _count(session, select(func.count()).where(Recording.looped.is_(True))),
    }


def _pair_counts(session: Session) -> dict[str, int]:
    images = _grouped(session, Pair.image_status, _ORIGINAL)
    return {
        "total": _count(session, select(func.count(Pair.id))),
        PairOrigin.ORIGINAL.value: _count(session, select(func.count(Pair.id)).where(_ORIGINAL)),
        PairOrigin.OFFSET.value: _count(session, select(func.count(Pair.id)).where(Pair.origin == PairOrigin.OFFSET)),
        "with_image": images.get(ImageStatus.PRESENT, 0),
        ImageStatus.NEEDS_IMAGERY.value: images.get(ImageStatus.NEEDS_IMAGERY, 0),
        "imagery_failed": images.get(ImageStatus.FAILED, 0),
    }


def _stage_counts(session: Session, *, imported: int) -> dict[str, int]:
    """Pairs per stage; accepted / corrected / unusable compare the final label with the OSM label."""
    has_evidence = exists().where(OsmEvidence.pair_id == Pair.id)
    pushed = exists().where(LabelStudioTask.pair_id == Pair.id)
    reviewed = exists().where(
        Review.pair_id == Pair.id, Review.retracted_at.is_(None), Review.verdict != Verdict.SKIPPED
    )
    evidence_label = select(OsmEvidence.label).where(OsmEvidence.pair_id == Pair.id).scalar_subquery()
    usable = Pair.final_label != Verdict.UNUSABLE

    def pairs_where(*where: Any) -> int:
        return _count(session, select(func.count(Pair.id)).where(*where))

    skipped = select(func.count(distinct(Review.pair_id))).where(
        Review.verdict == Verdict.SKIPPED, Review.retracted_at.is_(None)
    )
    return {
        "imported": imported,
        "prelabelled": pairs_where(_ORIGINAL, has_evidence),
        "osm_unlabelled": _count(session, select(func.count(OsmEvidence.id)).where(OsmEvidence.label.is_(None))),
        "pushed": _count(session, select(func.count(distinct(LabelStudioTask.pair_id)))),
        "not_pushed": pairs_where(_ORIGINAL, ~pushed),
        "reviewed": pairs_where(reviewed),
        ReviewOutcome.SKIPPED.value: _count(session, skipped),
        ReviewOutcome.ACCEPTED.value: pairs_where(_FINAL_OK, Pair.final_label == evidence_label),
        ReviewOutcome.CORRECTED.value: pairs_where(
            _FINAL_OK, usable, evidence_label.is_(None) | (Pair.final_label != evidence_label)
        ),
        ReviewOutcome.UNUSABLE.value: pairs_where(_FINAL_OK, ~usable),
        "conflicts": pairs_where(Pair.final_reason == FinalReason.CONFLICT),
        "final": pairs_where(_FINAL_OK, usable),
    }


def _per_class(session: Session) -> dict[str, dict[str, int]]:
    osm_by_class = _grouped(session, OsmEvidence.label)
    final_by_class = _grouped(session, Pair.final_label, _FINAL_OK)
    return {
        cls.value: {"osm": osm_by_class.get(cls.value, 0), "final": final_by_class.get(cls.value, 0)}
        for cls in CLASS_ORDER
    }


def _correction_matrix(session: Session) -> tuple[list[str], list[str], list[list[int]]]:
    """Rows: the OSM label (or none); columns: the human final label; counts of pairs with a final label."""
    rows = [c.value for c in CLASS_ORDER] + [NONE_LABEL]
    columns = [c.value for c in CLASS_ORDER] + [Verdict.UNUSABLE.value]
    counts = [[0] * len(columns) for _ in rows]
    matrix_rows = session.execute(
        select(OsmEvidence.label, Pair.final_label, func.count())
        .join(Pair, Pair.id == OsmEvidence.pair_id)
        .where(_FINAL_OK)
        .group_by(OsmEvidence.label, Pair.final_label)
    ).all()
    for osm_label, final_label, n in matrix_rows:
        row = rows.index(osm_label) if osm_label in rows else rows.index(NONE_LABEL)
        if final_label in columns:
            counts[row][columns.index(final_label)] += int(n)
    return rows, columns, counts


def _last_export(session: Session) -> dict[str, Any] | None:
    last = session.scalars(select(ExportRecord).order_by(ExportRecord.id.desc()).limit(1)).first()
    if last is None:
        return None
    return {
        "out_path": last.out_path,
        "created_at": last.created_at.isoformat(),
        "counts": last.counts,
        "manifest_sha256": last.manifest_sha256,
    }
