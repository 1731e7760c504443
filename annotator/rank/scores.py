"""Reading rank runs back: the latest run's scores (for `ls push`) and its precision on real verdicts (`status`).

The ranking's precision is measured on the pairs whose *OSM* label the run judged (``label_origin = osm``) and
that a human has decided since (a final label from a review: not ``osm_only``, not a ``conflict``): among the
flagged ones (suspicion ≥ :data:`~annotator.rank.suspicion.FLAG_THRESHOLD`) and among the others, the share whose
final label is another class than the OSM label the run judged. An ``unusable`` verdict says nothing about the
label, so it is counted apart and left out of both shares. Pairs a human had labelled before the run, and pairs
without any label, are not part of the measurement (they are counted among the flagged, though).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.rank.selection import human_final_label
from annotator.rank.suspicion import FLAG_THRESHOLD
from annotator.store.models import Pair, RankRun, RankScore
from annotator.vocabulary import FinalReason, LabelSource, Verdict


def latest_rank_run(session: Session) -> RankRun | None:
    """The most recent rank run (highest id), or None when `rank` never ran on this store."""
    return session.scalars(select(RankRun).order_by(RankRun.id.desc()).limit(1)).first()


def latest_rank_scores(session: Session) -> tuple[RankRun, dict[int, RankScore]] | None:
    """The latest rank run and its score of every pair it ranked (pair id → score), or None without a run."""
    run = latest_rank_run(session)
    if run is None:
        return None
    scores = session.scalars(select(RankScore).where(RankScore.run_id == run.id))
    return run, {score.pair_id: score for score in scores}


@dataclass(frozen=True)
class VerdictTally:
    """Human verdicts on OSM labels the run judged, in one group (flagged or not)."""

    pairs: int  # OSM-labelled pairs of the group
    reviewed: int  # of those, decided by a human since the run (unusable included)
    corrected: int  # the human's class differs from the OSM label
    unusable: int

    @property
    def share_corrected(self) -> float | None:
        """corrected / reviewed with a class verdict (unusable left out); None when none was reviewed."""
        decided = self.reviewed - self.unusable
        return self.corrected / decided if decided else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "share_corrected": self.share_corrected}


@dataclass(frozen=True)
class RankFeedback:
    """The latest rank run measured against the verdicts that came back (see the module docstring)."""

    run_id: int
    created_at: datetime
    scored: int
    flagged: int  # suspicion ≥ threshold, any label origin
    flagged_osm: VerdictTally
    unflagged_osm: VerdictTally
    threshold: float = FLAG_THRESHOLD

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
            "threshold": self.threshold,
            "scored": self.scored,
            "flagged": self.flagged,
            "flagged_reviewed": self.flagged_osm.reviewed,
            "flagged_osm": self.flagged_osm.to_json(),
            "unflagged_osm": self.unflagged_osm.to_json(),
        }


#: One scored pair as the feedback needs it: (suspicion, label origin, judged label, final label, final reason).
_Row = tuple[float, LabelSource | None, str | None, str | None, FinalReason | None]


def _tally(rows: list[_Row]) -> VerdictTally:
    reviewed = corrected = unusable = 0
    for _suspicion, _origin, judged, final_label, final_reason in rows:
        verdict = human_final_label(final_label, final_reason)
        if verdict is None:
            continue
        reviewed += 1
        if verdict == Verdict.UNUSABLE:
            unusable += 1
        elif verdict != judged:
            corrected += 1
    return VerdictTally(pairs=len(rows), reviewed=reviewed, corrected=corrected, unusable=unusable)


def rank_feedback(session: Session) -> RankFeedback | None:
    """How the latest rank run's flags fared against the human verdicts since; None when `rank` never ran."""
    run = latest_rank_run(session)
    if run is None:
        return None
    rows: list[_Row] = [
        tuple(row)  # type: ignore[misc]
        for row in session.execute(
            select(
                RankScore.suspicion,
                RankScore.label_origin,
                RankScore.current_label,
                Pair.final_label,
                Pair.final_reason,
            )
            .join(Pair, Pair.id == RankScore.pair_id)
            .where(RankScore.run_id == run.id)
        )
    ]
    on_osm = [row for row in rows if row[1] == LabelSource.OSM]
    return RankFeedback(
        run_id=run.id,
        created_at=run.created_at,
        scored=len(rows),
        flagged=sum(row[0] >= FLAG_THRESHOLD for row in rows),
        flagged_osm=_tally([row for row in on_osm if row[0] >= FLAG_THRESHOLD]),
        unflagged_osm=_tally([row for row in on_osm if row[0] < FLAG_THRESHOLD]),
    )
