"""Engines, sessions and the Alembic-owned schema.

The caller owns the session (``with session_scope(engine) as session:`` at the edge); library functions take
a session and never commit, except where a function documents that it commits in batches (import, push).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import StoreError, StoreNotInitialised

BUSY_TIMEOUT_MS = 30_000
#: The folder holding env.py and versions/ (top level of the project, beside the packages).
ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # On every connection: foreign keys are off by default in SQLite, and WAL + a busy timeout let a reader
    # (status) run beside a writer (import) without "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite connections get WAL, foreign keys and a busy timeout."""
    try:
        engine = create_engine(url, future=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot use database URL {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    if not (ALEMBIC_DIR / "env.py").is_file():
        raise StoreError(f"migrations not found at {ALEMBIC_DIR}; reinstall annotator from its source tree")
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Create or upgrade the schema in place; returns (revision before, revision after). Idempotent."""
    from alembic import command

    try:
        before = current_revision(engine)
        command.upgrade(alembic_config(engine), revision)
        after = current_revision(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot upgrade the database: {exc.orig}") from exc
    assert after is not None
    return before, after


def require_current_schema(engine: Engine) -> None:
    """Raise a user-facing error unless the database is at the head revision."""
    try:
        current = current_revision(engine)
        has_tables = bool(inspect(engine).get_table_names())
    except OperationalError as exc:
        raise StoreError(f"cannot open the database: {exc.orig}") from exc
    if current is None:
        hint = "it has tables but no annotator schema" if has_tables else "it is empty"
        raise StoreNotInitialised(f"the database is not initialised ({hint}); run `annotator init` first")
    head = head_revision(engine)
    if current != head:
        raise StoreError(
            f"the database schema is at revision {current}, this annotator needs {head}; "
            "run `annotator init` to upgrade it in place"
        )


def open_store(location: StoreLocation, *, create: bool = False) -> Engine:
    """Open the store at `location`. With `create`, make the SQLite folder; otherwise require it to exist."""
    path = location.sqlite_path
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise StoreNotInitialised(f"no database at {path}; run `annotator init` (or pass --db)")
    engine = make_engine(location.url)
    if not create:
        require_current_schema(engine)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any exception."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
