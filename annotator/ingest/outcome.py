"""What became of each manifest row, and what one import did in total.

:class:`RowOutcome` is not a stored value (the store keeps recordings, pairs and rejects, not outcomes): it only
steers the report, the rejects file and the clearing of rejects that a rerun has fixed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from annotator.errors import BadManifestRow
from annotator.vocabulary import RejectReason

if TYPE_CHECKING:
    from annotator.imagery import FillReport


class RowOutcome(StrEnum):
    """What became of one manifest row."""

    NEW = "new"  # a new recording with its pair and media files
    UNCHANGED = "unchanged"  # imported and accepted before, identical now: nothing written
    UNCHANGED_REJECTED = "unchanged_rejected"  # stored before as a rejected recording (too short): left as it is
    DUPLICATE_SKIPPED = "duplicate_skipped"  # an identical repeat of an earlier row of the same manifest
    REJECTED = "rejected"  # not imported: :attr:`RowResult.reason` says why


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row with what the report needs of it; every field has one meaning."""

    outcome: RowOutcome
    looped: bool = False  # NEW: the recording was looped to reach 10 s
    with_image: bool = False  # NEW: the pair got its image from the manifest
    reason: RejectReason | None = None  # REJECTED only
    detail: str = ""  # REJECTED only: the sentence for the rejects file

    @classmethod
    def rejected(cls, reason: RejectReason, detail: str) -> RowResult:
        """A row that was not imported, with its reason and the sentence explaining it."""
        return cls(RowOutcome.REJECTED, reason=reason, detail=detail)

    @classmethod
    def from_error(cls, error: BadManifestRow) -> RowResult:
        """The rejection a :class:`~annotator.errors.BadManifestRow` raised for a row stands for."""
        return cls.rejected(RejectReason(error.reason), error.detail)


@dataclass
class ImportReport:
    """What one import did (and, when an imagery SOURCE was given, what the fill after it did)."""

    manifest: str
    format: str
    rejects_path: Path
    rows: int = 0
    new: int = 0
    unchanged: int = 0
    duplicates_skipped: int = 0  # identical repeated rows
    looped: int = 0  # new pairs whose recording was looped to reach 10 s
    with_image: int = 0  # new pairs with an image from the manifest
    rejected: Counter[RejectReason] = field(default_factory=Counter)
    needs_imagery: int = 0  # pairs in the whole store still without an image after the import (and fill)
    fill: FillReport | None = None  # the imagery fill after the import, when one was asked for

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def count(self, result: RowResult) -> None:
        """Add one finished row to the totals."""
        self.rows += 1
        if result.outcome is RowOutcome.NEW:
            self.new += 1
            self.looped += result.looped
            self.with_image += result.with_image
        elif result.outcome in (RowOutcome.UNCHANGED, RowOutcome.UNCHANGED_REJECTED):
            self.unchanged += 1
        elif result.outcome is RowOutcome.DUPLICATE_SKIPPED:
            self.duplicates_skipped += 1
        else:
            assert result.reason is not None
            self.rejected[result.reason] += 1
