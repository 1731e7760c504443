"""The rejects file: one CSV line per manifest row that was not imported, with its reason."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from types import TracebackType

from annotator.config import StoreLocation

REJECTS_COLUMNS = ("line", "recording_id", "reason", "detail")


def default_rejects_path(location: StoreLocation) -> Path:
    """``<db stem>.rejects.csv`` beside an SQLite database, else ``./annotator.rejects.csv``."""
    db = location.sqlite_path
    if db is None:
        return Path.cwd() / "annotator.rejects.csv"
    return db.with_name(f"{db.stem}.rejects.csv")


class RejectsWriter:
    """Writes the rejects CSV to a temporary file and renames it into place only when the import finishes.

    A killed or failed import therefore never leaves a half-written rejects file behind under the final name.
    Use as a context manager: the file is committed on a clean exit and discarded on an exception.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.count = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(REJECTS_COLUMNS)

    def write(self, line: int, recording_id: str | None, reason: str, detail: str) -> None:
        """Append one rejected row."""
        self._writer.writerow((line, recording_id or "", reason, detail))
        self.count += 1

    def commit(self) -> None:
        """Close the file and move it to its final name."""
        self._fh.close()
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        """Close and delete the temporary file."""
        self._fh.close()
        Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
