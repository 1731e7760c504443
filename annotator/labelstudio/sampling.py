"""The review design of `ls push` (issue 14): seeded shares of pairs that get overlap, a control task, or go blind,
and which pairs are settled enough to serve as control items.

A pair is in a share when a hash of (seed, what the share is for, pair id) falls below the fraction, so the
choice depends on nothing but those three: a push killed mid-way and run again, or a later push meeting pairs
settled since, chooses exactly as the first would have, and the three shares are independent of each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import AnnotatorError
from annotator.store.models import LabelStudioProject, LabelStudioTask, Pair
from annotator.vocabulary import FinalReason, ImageStatus, TaskKind

_SCALE = float(1 << 64)


class Share(StrEnum):
    """What a seeded share of pairs is for (part of the hash, so the shares are independent)."""

    OVERLAP = "overlap"  # labelled by N annotators (`--overlap-fraction`)
    CONTROL = "control"  # served again as a control item (`--control-fraction`)
    BLIND = "blind"  # pushed without the pre-selected suggestion (`--blind-fraction`)


def check_fraction(value: float, option: str) -> float:
    """`value` when it is a share in [0, 1].

    Raises:
        AnnotatorError: outside [0, 1] (or not a number).
    """
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise AnnotatorError(f"{option} must be a share between 0 and 1, not {value}")
    return value


def draw(pair_id: int, share: Share, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, share, pair id), uniform over pairs."""
    digest = hashlib.blake2b(f"{seed}:{share}:{pair_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def chosen(pair_id: int, share: Share, fraction: float, seed: int) -> bool:
    """Whether the pair is in the `share` of size `fraction` (0: none, 1: every pair) for `seed`."""
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    return draw(pair_id, share, seed) < fraction


#: Final reasons of a settled label: agreed by ≥ 2 (adjudication adds the deciding vote, so it ends here too).
SETTLED_REASONS = frozenset(r for r in FinalReason if r.value in ("majority", "adjudicated"))


@dataclass(frozen=True)
class ReviewDesign:
    """How the review project collects verdicts (`ls push --overlap/--overlap-fraction/--control-fraction/
    --blind-fraction/--seed`); the defaults push as before issue 14."""

    overlap: int | None = None  # annotators per task; None: the project's setting as it is (1 for a new project)
    overlap_fraction: float = 1.0  # the seeded share of tasks that get `overlap`; the rest get 1
    control_fraction: float = 0.0  # the seeded share of settled pairs served again as control items
    blind_fraction: float = 0.0  # the seeded share of tasks pushed without the pre-selected suggestion
    seed: int = 0

    def checked(self) -> ReviewDesign:
        """Itself, when every value is in range.

        Raises:
            AnnotatorError: an overlap below 1 or a fraction outside [0, 1].
        """
        if self.overlap is not None and self.overlap < 1:
            raise AnnotatorError(f"--overlap must be 1 or more, not {self.overlap}")
        check_fraction(self.overlap_fraction, "--overlap-fraction")
        check_fraction(self.control_fraction, "--control-fraction")
        check_fraction(self.blind_fraction, "--blind-fraction")
        return self

    def overlap_of(self, pair_id: int, project_overlap: int) -> int:
        """Annotators wanted for the pair's tasks: the project's N in the seeded share, else 1."""
        if project_overlap <= 1 or chosen(pair_id, Share.OVERLAP, self.overlap_fraction, self.seed):
            return project_overlap
        return 1

    def blind(self, pair_id: int) -> bool:
        return chosen(pair_id, Share.BLIND, self.blind_fraction, self.seed)

    def control(self, pair_id: int) -> bool:
        return chosen(pair_id, Share.CONTROL, self.control_fraction, self.seed)


def settled_pairs(session: Session, project: LabelStudioProject) -> list[int]:
    """Pairs whose label is settled (agreed by ≥ 2, adjudication included) with a review task in `project`."""
    reviewed = select(LabelStudioTask.pair_id).where(
        LabelStudioTask.project_id == project.id, LabelStudioTask.kind == TaskKind.REVIEW
    )
    query = select(Pair.id).where(
        Pair.final_label.is_not(None),
        Pair.final_reason.in_(SETTLED_REASONS),
        Pair.image_status == ImageStatus.PRESENT,
        Pair.id.in_(reviewed),
    )
    return list(session.scalars(query.order_by(Pair.id)))


def control_pending(
    session: Session, project: LabelStudioProject, settled: list[int], design: ReviewDesign
) -> list[int]:
    """The settled pairs in the seeded control share that have no control task in `project` yet."""
    if design.control_fraction <= 0:
        return []
    have = set(
        session.scalars(
            select(LabelStudioTask.pair_id).where(
                LabelStudioTask.project_id == project.id, LabelStudioTask.kind == TaskKind.CONTROL
            )
        )
    )
    return [pair_id for pair_id in settled if pair_id not in have and design.control(pair_id)]
