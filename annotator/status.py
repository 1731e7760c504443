"""Counts per stage and per class, and the OSM→human correction matrix (SPEC §5 `annotator status`).

Everything here is read-only and derived from the store with a handful of GROUP BY queries, so `status` answers
at once on a store of any size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, distinct, exists, func, select
from sqlalchemy.orm import Session

from annotator.store.models import (
    ExportRecord,
    ImportReject,
    LabelStudioTask,
    OsmEvidence,
    Pair,
    Recording,
    Review,
)
from annotator.vocabulary import CLASS_ORDER, FinalReason, Verdict

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
        }


def _count(session: Session, statement: Select[Any]) -> int:
    return int(session.scalar(statement) or 0)


def _grouped(session: Session, column: Any, *where: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).where(*where).group_by(column)).all()
    return {str(key): int(n) for key, n in rows if key is not None}


def collect_status(session: Session) -> StoreStatus:
    """Gather every count `status` shows."""
    status = StoreStatus()
    by_status = _grouped(session, Recording.status)
    status.recordings = {
        "total": sum(by_status.values()),
        "accepted": by_status.get("accepted", 0),
        "rejected": by_status.get("rejected", 0),
        "looped": _count(session, select(func.count()).where(Recording.looped.is_(True))),
    }
    status.rejects_by_reason = dict(sorted(_grouped(session, ImportReject.reason).items()))

    original = Pair.origin == "original"
    images = _grouped(session, Pair.image_status, original)
    status.pairs = {
        "total": _count(session, select(func.count(Pair.id))),
        "original": _count(session, select(func.count(Pair.id)).where(original)),
        "offset": _count(session, select(func.count(Pair.id)).where(Pair.origin == "offset")),
        "with_image": images.get("present", 0),
        "needs_imagery": images.get("needs_imagery", 0),
        "imagery_failed": images.get("failed", 0),
    }

    has_evidence = exists().where(OsmEvidence.pair_id == Pair.id)
    pushed = exists().where(LabelStudioTask.pair_id == Pair.id)
    live_review = and_(Review.pair_id == Pair.id, Review.retracted_at.is_(None), Review.verdict != Verdict.SKIPPED)
    reviewed = exists().where(live_review)
    human_final = and_(Pair.final_label.is_not(None), Pair.final_reason != FinalReason.OSM_ONLY)
    evidence_label = select(OsmEvidence.label).where(OsmEvidence.pair_id == Pair.id).scalar_subquery()
    final_ok = and_(human_final, Pair.final_reason != FinalReason.CONFLICT)
    status.stages = {
        "imported": status.pairs["original"],
        "prelabelled": _count(session, select(func.count(Pair.id)).where(original, has_evidence)),
        "osm_unlabelled": _count(session, select(func.count(OsmEvidence.id)).where(OsmEvidence.label.is_(None))),
        "pushed": _count(session, select(func.count(distinct(LabelStudioTask.pair_id)))),
        "not_pushed": _count(session, select(func.count(Pair.id)).where(original, ~pushed)),
        "reviewed": _count(session, select(func.count(Pair.id)).where(reviewed)),
        "skipped": _count(
            session,
            select(func.count(distinct(Review.pair_id))).where(
                Review.verdict == Verdict.SKIPPED, Review.retracted_at.is_(None)
            ),
        ),
        "accepted": _count(
            session,
            select(func.count(Pair.id)).where(final_ok, Pair.final_label == evidence_label),
        ),
        "corrected": _count(
            session,
            select(func.count(Pair.id)).where(
                final_ok,
                Pair.final_label != Verdict.UNUSABLE,
                (evidence_label.is_(None)) | (Pair.final_label != evidence_label),
            ),
        ),
        "unusable": _count(session, select(func.count(Pair.id)).where(final_ok, Pair.final_label == Verdict.UNUSABLE)),
        "conflicts": _count(session, select(func.count(Pair.id)).where(Pair.final_reason == FinalReason.CONFLICT)),
        "final": _count(session, select(func.count(Pair.id)).where(final_ok, Pair.final_label != Verdict.UNUSABLE)),
    }

    osm_by_class = _grouped(session, OsmEvidence.label)
    final_by_class = _grouped(session, Pair.final_label, final_ok)
    status.per_class = {
        cls.value: {
            "osm": osm_by_class.get(cls.value, 0),
            "final": final_by_class.get(cls.value, 0),
        }
        for cls in CLASS_ORDER
    }

    rows = [c.value for c in CLASS_ORDER] + [NONE_LABEL]
    columns = [c.value for c in CLASS_ORDER] + [Verdict.UNUSABLE.value]
    counts = [[0] * len(columns) for _ in rows]
    matrix_rows = session.execute(
        select(OsmEvidence.label, Pair.final_label, func.count())
        .join(Pair, Pair.id == OsmEvidence.pair_id)
        .where(final_ok)
        .group_by(OsmEvidence.label, Pair.final_label)
    ).all()
    for osm_label, final_label, n in matrix_rows:
        row = rows.index(osm_label) if osm_label in rows else rows.index(NONE_LABEL)
        if final_label in columns:
            counts[row][columns.index(final_label)] += int(n)
    status.correction_rows, status.correction_columns, status.correction_counts = rows, columns, counts

    last = session.scalars(select(ExportRecord).order_by(ExportRecord.id.desc()).limit(1)).first()
    if last is not None:
        status.last_export = {
            "out_path": last.out_path,
            "created_at": last.created_at.isoformat(),
            "counts": last.counts,
            "manifest_sha256": last.manifest_sha256,
        }
    return status
