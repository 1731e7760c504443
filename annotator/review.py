"""Final labels from review verdicts (SPEC §7), and the adjudication of conflicts.

Rules, per pair:

* Only the *current* verdicts count: reviews not retracted (annotation still exists in Label Studio), the latest
  row per Label Studio annotation (an updated annotation adds a row; the newest wins), and one vote per
  annotator per project (their most recently updated annotation). Skips are abstentions.
* One vote decides (``single_review``); several → the most frequent verdict (``majority``, unanimity included);
  a tie at the top → no final label and ``conflict``. ``unusable`` is a verdict like any class.
* Verdicts on *control items* (``LabelStudioTask.kind == TaskKind.CONTROL``: a settled pair served again to
  measure the annotators, ``ls push --control-fraction``) are stored like any review but never vote: they neither
  change a final label nor make a conflict. :mod:`annotator.reviewers` compares them with the settled label.

Adjudication (design): a pair in conflict is pushed by the next ``annotator ls push`` into a second Label Studio
project, ``"<title> – adjudication"`` (purpose ``ProjectPurpose.ADJUDICATION``), whose task shows the OSM evidence
and the conflicting verdicts as a note, without a pre-selected answer. ``ls pull`` pulls that project too; the
adjudicator's verdict is **one more vote**, so with two annotators split A/B an adjudicator choosing A makes A the
majority. A pair is pushed for adjudication once; if the tie persists (the adjudicator picked a third
answer) it stays a conflict in ``status`` and the adjudicator updates their annotation.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.store.models import LabelStudioTask, Pair, Review, utcnow
from annotator.vocabulary import FinalReason, TaskKind, Verdict

#: Reasons this module owns; a pair with another reason (``osm_only``) and no reviews keeps it.
_REVIEW_REASONS = frozenset({FinalReason.SINGLE_REVIEW, FinalReason.MAJORITY, FinalReason.CONFLICT})


def resolve_final_label(verdicts: list[str]) -> tuple[str | None, FinalReason | None]:
    """The final label and its reason from current verdicts (class values / "unusable"; skips are ignored).

    >>> resolve_final_label(["forest"])
    ('forest', <FinalReason.SINGLE_REVIEW: 'single_review'>)
    >>> resolve_final_label(["forest", "lake"])
    (None, <FinalReason.CONFLICT: 'conflict'>)
    """
    votes = [v for v in verdicts if v != Verdict.SKIPPED]
    if not votes:
        return None, None
    if len(votes) == 1:
        return votes[0], FinalReason.SINGLE_REVIEW
    counts = Counter(votes).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None, FinalReason.CONFLICT
    return counts[0][0], FinalReason.MAJORITY


def control_tasks(session: Session, pair_ids: Iterable[int] | None = None) -> set[tuple[int, int]]:
    """(store project id, Label Studio task id) of every control task (of `pair_ids` only, when given)."""
    statement = select(LabelStudioTask.project_id, LabelStudioTask.ls_task_id).where(
        LabelStudioTask.kind == TaskKind.CONTROL
    )
    if pair_ids is None:
        return {(int(p), int(t)) for p, t in session.execute(statement)}
    ids = sorted(set(pair_ids))
    keys: set[tuple[int, int]] = set()
    for start in range(0, len(ids), 500):
        chunk = statement.where(LabelStudioTask.pair_id.in_(ids[start : start + 500]))
        keys.update((int(p), int(t)) for p, t in session.execute(chunk))
    return keys


def is_control(review: Review, controls: set[tuple[int, int]]) -> bool:
    """Whether `review` was made on a control task (see :func:`control_tasks`)."""
    return review.project_id is not None and (review.project_id, review.ls_task_id) in controls


def latest_versions(reviews: Iterable[Review]) -> list[Review]:
    """The newest version of each Label Studio annotation among `reviews` (pass only non-retracted rows)."""
    latest_per_annotation: dict[int, Review] = {}
    for review in reviews:
        held = latest_per_annotation.get(review.ls_annotation_id)
        if held is None or _newer(review, held):
            latest_per_annotation[review.ls_annotation_id] = review
    return list(latest_per_annotation.values())


def current_votes(session: Session, pair_ids: Iterable[int]) -> dict[int, list[Review]]:
    """The review rows that count now, per pair: see the module docstring (skips included, as abstentions;
    verdicts on control tasks left out)."""
    ids = sorted(set(pair_ids))
    controls = control_tasks(session, ids)
    rows: list[Review] = []
    for start in range(0, len(ids), 500):
        rows.extend(
            session.scalars(
                select(Review).where(Review.pair_id.in_(ids[start : start + 500]), Review.retracted_at.is_(None))
            )
        )
    latest = [review for review in latest_versions(rows) if not is_control(review, controls)]
    per_voter: dict[tuple[int, int | None, str], Review] = {}
    for review in latest:
        key = (review.pair_id, review.project_id, review.annotator)
        held = per_voter.get(key)
        if held is None or _newer(review, held):
            per_voter[key] = review
    votes: dict[int, list[Review]] = defaultdict(list)
    for review in sorted(per_voter.values(), key=lambda r: r.id):
        votes[review.pair_id].append(review)
    return votes


def _newer(a: Review, b: Review) -> bool:
    stamp_a = (a.ls_updated_at or a.ls_created_at or a.pulled_at, a.id or 0)
    stamp_b = (b.ls_updated_at or b.ls_created_at or b.pulled_at, b.id or 0)
    return stamp_a > stamp_b


def refresh_final_labels(session: Session, pair_ids: Iterable[int]) -> int:
    """Recompute ``final_label``/``final_reason`` of `pair_ids` from their current votes; returns how many changed.

    The caller commits. A pair whose reviews were all retracted loses its review-based final label.
    """
    ids = sorted(set(pair_ids))
    votes = current_votes(session, ids)
    changed = 0
    for start in range(0, len(ids), 500):
        for pair in session.scalars(select(Pair).where(Pair.id.in_(ids[start : start + 500]))):
            label, reason = resolve_final_label([r.verdict for r in votes.get(pair.id, [])])
            if reason is None and pair.final_reason not in _REVIEW_REASONS:
                continue  # nothing reviewed: leave an OSM-only (or empty) final label alone
            if (pair.final_label, pair.final_reason) != (label, reason):
                pair.final_label, pair.final_reason, pair.final_updated_at = label, reason, utcnow()
                changed += 1
    return changed
