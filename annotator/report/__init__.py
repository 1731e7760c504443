"""`annotator report OUT.html`: one self-contained HTML page about the labels and the reviewers (issue 14).

The page holds the correction matrix as a heatmap with full class names, corrections by OSM edit age, the
per-annotator table, agreement (Cohen's kappa per pair of annotators, Krippendorff's alpha), the anchoring effect
with its intervals and, when a rank run exists, the ranking's measured precision. Read-only on the store; the
file is written atomically (:mod:`annotator.files`): a reader never sees half a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from annotator.errors import AnnotatorError
from annotator.files import atomic_write_text
from annotator.report.data import AgeBin, ReportData, collect_report, corrections_by_edit_age
from annotator.report.page import render_html

__all__ = [
    "AgeBin",
    "ReportData",
    "ReportError",
    "ReportSummary",
    "collect_report",
    "corrections_by_edit_age",
    "render_html",
    "write_report",
]


class ReportError(AnnotatorError):
    """The report cannot be written where asked."""


@dataclass(frozen=True)
class ReportSummary:
    """What `report` wrote (`--json`)."""

    path: str
    bytes: int
    sections: list[str]
    data: ReportData

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "sections": self.sections, **self.data.to_json()}


def write_report(session: Session, out: Path, *, now: datetime | None = None) -> ReportSummary:
    """Gather the figures and write the page to `out` atomically.

    Raises:
        ReportError: `out` is a folder, or cannot be written (no such parent that can be made, no permission).
    """
    out = Path(out)
    if out.is_dir():
        raise ReportError(f"{out} is a folder; give the report a file name, e.g. {out / 'report.html'}")
    data = collect_report(session, now=now)
    page = render_html(data)
    try:
        atomic_write_text(out, page)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ReportError(f"cannot write the report to {out}: {reason}; choose a path you can write to") from None
    sections = ["overview", "matrix", "age", "annotators", "agreement", "anchoring"]
    if data.status.rank is not None:
        sections.append("rank")
    return ReportSummary(path=str(out), bytes=len(page.encode("utf-8")), sections=sections, data=data)
