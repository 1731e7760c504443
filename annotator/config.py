"""Where the store and media live: defaults, then environment, then flags (SPEC §5, STYLE 6)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB = "./annotator.db"
ENV_DB = "ANNOTATOR_DB"
ENV_MEDIA = "ANNOTATOR_MEDIA"


def is_url(value: str) -> bool:
    """True for an SQLAlchemy URL (``sqlite:///x.db``, ``postgresql://…``), False for a file path."""
    return "://" in value


@dataclass(frozen=True)
class StoreLocation:
    """The database URL and the media directory that goes with it."""

    url: str
    media_dir: Path

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file behind the URL, or None for other databases / in-memory SQLite."""
        prefix = "sqlite:///"
        if self.url.startswith(prefix) and self.url != "sqlite:///:memory:":
            return Path(self.url[len(prefix) :])
        return None


def resolve_store(db: str | None = None, media_dir: str | Path | None = None) -> StoreLocation:
    """Resolve `--db` / `ANNOTATOR_DB` and `--media-dir` / `ANNOTATOR_MEDIA` into a :class:`StoreLocation`.

    A plain path becomes an SQLite URL. The media directory defaults to ``media/`` beside the SQLite file (or
    ``./media`` for server databases).
    """
    db = db or os.environ.get(ENV_DB) or DEFAULT_DB
    if is_url(db):
        url = db
        base = Path(url[len("sqlite:///") :]).resolve().parent if url.startswith("sqlite:///") else Path.cwd()
    else:
        path = Path(db).expanduser().resolve()
        url = f"sqlite:///{path}"
        base = path.parent
    media = media_dir or os.environ.get(ENV_MEDIA)
    media_path = Path(media).expanduser().resolve() if media else base / "media"
    return StoreLocation(url=url, media_dir=media_path)
