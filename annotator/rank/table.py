"""The rank CSV: one row per scored pair, most suspicious first (`annotator rank --csv FILE`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from annotator.files import atomic_write_text
from annotator.rank.run import RankedPair

#: The columns, in order; `recording_id` is the recording's source id (the manifest's or Freesound's).
CSV_COLUMNS = (
    "pair_id",
    "recording_id",
    "osm_label",
    "current_label",
    "suggested_label",
    "suggested_p",
    "suspicion",
    "rank",
    "label_origin",
    "fold",
)


def rank_csv_text(pairs: Sequence[RankedPair]) -> str:
    """The CSV text of `pairs` in rank order (empty cells for a missing label); probabilities to 6 decimals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in sorted(pairs, key=lambda p: p.rank):
        writer.writerow(
            (
                p.pair_id,
                p.recording_source_id,
                p.osm_label or "",
                p.current_label or "",
                p.suggested_label,
                f"{p.suggested_p:.6f}",
                f"{p.suspicion:.6f}",
                p.rank,
                p.label_origin or "",
                p.fold,
            )
        )
    return out.getvalue()


def write_rank_csv(pairs: Sequence[RankedPair], path: Path) -> None:
    """Write the rank CSV to `path` atomically (a reader never sees half a file)."""
    atomic_write_text(path, rank_csv_text(pairs))
