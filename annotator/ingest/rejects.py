"""The rejects file: one CSV line per manifest row that was not imported, with its reason."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from annotator.config import StoreLocation
from annotator.files import atomic_path

REJECTS_COLUMNS = ("line", "recording_id", "reason", "detail")


def default_rejects_path(location: StoreLocation) -> Path:
    """``<db stem>.rejects.csv`` beside an SQLite database, else ``./annotator.rejects.csv``."""
    db = location.sqlite_path
    if db is None:
        return Path.cwd() / "annotator.rejects.csv"
    return db.with_name(f"{db.stem}.rejects.csv")


class RejectsWriter:
    """Appends rejected rows to an open rejects CSV (made by :func:`open_rejects`)."""

    def __init__(self, handle: TextIO) -> None:
        self.count = 0
        self._writer = csv.writer(handle)
        self._writer.writerow(REJECTS_COLUMNS)

    def write(self, line: int, recording_id: str | None, reason: str, detail: str) -> None:
        """Append one rejected row."""
        self._writer.writerow((line, recording_id or "", reason, detail))
        self.count += 1


@contextmanager
def open_rejects(path: Path) -> Iterator[RejectsWriter]:
    """A :class:`RejectsWriter` on a temporary file that is renamed onto `path` only when the block succeeds.

    A killed or failed import therefore never leaves a half-written rejects file behind under the final name.
    """
    with atomic_path(Path(path), suffix=".tmp") as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        yield RejectsWriter(handle)
