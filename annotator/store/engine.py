"""Engines, sessions and the Alembic-owned schema.

The caller owns the transaction, in one of two ways and no others:

- ``with session_scope(engine) as session:`` — one transaction, committed when the block ends, rolled back on
  an exception. Library functions that take a ``Session`` never commit it.
- ``with unit_of_work(engine) as work:`` — for the long batch jobs (import, imagery fill, pre-labelling, Label
  Studio push and pull, offset pairs). The job takes the :class:`UnitOfWork`, works in ``work.session`` and
  calls ``work.commit_batch()`` at the batch boundaries it documents, so a killed run keeps every finished
  batch. What is left open is committed when the block ends normally and rolled back on an exception.

Either way the CLI opens it (``AppState.store()`` disposes the engine when the command ends).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import StoreError, StoreNotInitialised

if TYPE_CHECKING:
    from alembic.config import Config

BUSY_TIMEOUT_MS = 30_000
#: Where an installed wheel carries the migrations (pyproject.toml maps the top-level alembic/ folder here).
PACKAGED_MIGRATIONS = "_migrations"
#: The migrations' source: the top-level alembic/ folder of a checkout (used by editable installs).
SOURCE_MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "alembic"


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


def migrations_dir() -> Path:
    """The folder holding Alembic's env.py and versions/.

    An installed wheel carries it inside the package (``annotator/_migrations``); a checkout or an editable
    install has only the top-level ``alembic/`` folder, its source.

    Raises:
        StoreError: neither is there (an install that lost its package data).
    """
    packaged = files("annotator").joinpath(PACKAGED_MIGRATIONS)
    # Alembic needs a real folder; a package imported from a zip file has none (and is not supported).
    candidates = [packaged] if isinstance(packaged, Path) else []
    candidates.append(SOURCE_MIGRATIONS_DIR)
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    searched = " or ".join(str(candidate) for candidate in candidates)
    raise StoreError(f"migrations not found at {searched}; reinstall annotator (`pip install .` in its source tree)")


def alembic_config(engine: Engine) -> Config:
    """Alembic's configuration for running the migrations on `engine` (env.py takes the engine from it)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
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


class UnitOfWork:
    """A session for a long batch job that commits at the batch boundaries the job documents.

    Opened by the caller with :func:`unit_of_work`; the job never opens sessions of its own.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.batches_committed = 0

    def commit_batch(self) -> None:
        """Commit what the job did since the last batch; it survives a crash or a kill from here on."""
        self.session.commit()
        self.batches_committed += 1


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[UnitOfWork]:
    """A :class:`UnitOfWork` on `engine`: the open batch is committed on success, rolled back on an exception."""
    with Session(engine, expire_on_commit=False) as session:
        work = UnitOfWork(session)
        try:
            yield work
        except BaseException:
            session.rollback()
            raise
        session.commit()
