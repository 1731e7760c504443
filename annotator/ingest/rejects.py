"""The rejects file: one CSV line per manifest row that was not imported, with its reason."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TextIO

from annotator.config import StoreLocation
from annotator.errors import AnnotatorError
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


def _unwritable(path: Path, why: str) -> AnnotatorError:
    return AnnotatorError(
        f"cannot write the rejects file {path}: {why} (nothing was imported); "
        "pass --rejects with a file path in a writable folder"
    )


@contextmanager
def open_rejects(path: Path) -> Iterator[RejectsWriter]:
    """A :class:`RejectsWriter` on a temporary file that is renamed onto `path` only when the block succeeds.

    A killed or failed import therefore never leaves a half-written rejects file behind under the final name.
    Everything that can be checked before the block is: the folder is made when missing and the temporary file
    is created in it, and `path` must not be a folder, so a bad path fails before any row is imported.

    Raises:
        AnnotatorError: `path` is a folder, its folder cannot be made (a parent is a file, no permission, a
            read-only file system) or no file can be created in it.
    """
    path = Path(path)
    if path.is_dir():
        raise _unwritable(path, "it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _unwritable(path, f"a part of {path.parent} is a file, not a folder") from None
    except OSError as exc:
        raise _unwritable(path, f"cannot make the folder {path.parent}: {exc.strerror}") from None
    stack = ExitStack()
    try:
        tmp = stack.enter_context(atomic_path(path, suffix=".tmp"))
    except OSError as exc:
        raise _unwritable(path, exc.strerror or str(exc)) from None
    with stack, tmp.open("w", newline="", encoding="utf-8") as handle:
        yield RejectsWriter(handle)
