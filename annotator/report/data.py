"""What the report shows, gathered from the store (read-only): `status`'s figures and corrections by OSM edit age.

The counts, the correction matrix, the reviewers' figures and the rank run's precision are exactly `status`'s
(:func:`annotator.status.collect_status`); the one figure only the report has is the corrections by the age of the
OSM evidence: for every pair a human decided (a final label from reviews, not a conflict) whose OSM evidence names a
class, the years from the deciding element's last edit (``OsmEvidence.last_edit_at``) to the report's date, in
bins, with the share of class verdicts that changed the OSM class (``unusable`` counted apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.reviewers import Rate
from annotator.status import StoreStatus, collect_status
from annotator.store.models import OsmEvidence, Pair, utcnow
from annotator.vocabulary import FinalReason, Verdict

#: Bins of years since the deciding element's last edit: [low, high), the last one open.
AGE_BINS: tuple[tuple[float, float | None], ...] = ((0, 1), (1, 2), (2, 5), (5, 10), (10, None))
DAYS_PER_YEAR = 365.2425


@dataclass
class AgeBin:
    """Human decisions on OSM classes whose deciding element was last edited `low`–`high` years before."""

    label: str
    low: float | None  # None: the evidence has no edit date
    high: float | None
    accepted: int = 0
    corrected: int = 0
    unusable: int = 0

    @property
    def decided(self) -> int:
        return self.accepted + self.corrected + self.unusable

    @property
    def correction(self) -> Rate:
        """corrected / (accepted + corrected), with its 95 % Wilson interval."""
        return Rate(self.corrected, self.accepted + self.corrected)

    def to_json(self) -> dict[str, Any]:
        return {
            "bin": self.label,
            "years_from": self.low,
            "years_to": self.high,
            "decided": self.decided,
            "accepted": self.accepted,
            "corrected": self.corrected,
            "unusable": self.unusable,
            "correction_rate": self.correction.to_json(),
        }


@dataclass
class ReportData:
    """Everything the page shows."""

    generated_at: datetime
    status: StoreStatus
    edit_age: list[AgeBin] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "status": self.status.to_json(),
            "corrections_by_edit_age": [b.to_json() for b in self.edit_age],
        }


def _bin_label(low: float, high: float | None) -> str:
    return f"{low:g}–{high:g} years" if high is not None else f"{low:g}+ years"


def corrections_by_edit_age(session: Session, now: datetime) -> list[AgeBin]:
    """Human decisions on OSM classes per bin of the deciding element's age (module docstring); the last bin holds
    the evidence without an edit date."""
    bins = [AgeBin(_bin_label(low, high), low, high) for low, high in AGE_BINS]
    unknown = AgeBin("no edit date", None, None)
    rows = session.execute(
        select(OsmEvidence.label, OsmEvidence.last_edit_at, Pair.final_label)
        .join(Pair, Pair.id == OsmEvidence.pair_id)
        .where(
            OsmEvidence.label.is_not(None),
            Pair.final_label.is_not(None),
            Pair.final_reason.in_([FinalReason.SINGLE_REVIEW, FinalReason.MAJORITY]),
        )
    )
    for osm, edited, final in rows:
        if edited is None:
            target = unknown
        else:
            years = max(0.0, (now - edited).total_seconds() / 86400 / DAYS_PER_YEAR)
            target = next(b for b in bins if b.high is None or years < b.high)
        if final == Verdict.UNUSABLE:
            target.unusable += 1
        elif final == osm:
            target.accepted += 1
        else:
            target.corrected += 1
    return [*bins, unknown] if unknown.decided else bins


def collect_report(session: Session, *, now: datetime | None = None) -> ReportData:
    """Gather the report's figures; `now` (aware UTC, default: the current time) dates the page and the ages."""
    moment = now or utcnow()
    return ReportData(
        generated_at=moment,
        status=collect_status(session),
        edit_age=corrections_by_edit_age(session, moment),
    )
