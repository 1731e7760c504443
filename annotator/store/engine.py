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

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import StoreError, StoreNotInitialised, redact_url

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


def _sqlite_read_only_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # A read-only store cannot switch its journal mode; it still needs the busy timeout beside a writer.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for `url`; SQLite connections get WAL, foreign keys and a busy timeout.

    SQL parameters never appear in an error (``hide_parameters``): they hold the user's data, and a message
    meant for a curator is one sentence (see :func:`database_failure`). `read_only` (SQLite files only) opens the
    file read-only, for a store whose file or folder cannot be written.
    """
    try:
        engine = create_engine(url, future=True, hide_parameters=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot use database URL {redact_url(url)!r}: {_scrubbed(str(exc), url)}") from None
    if engine.dialect.name == "sqlite":
        if read_only and engine.url.database not in (None, "", ":memory:"):
            path = Path(str(engine.url.database))
            engine = create_engine(
                f"sqlite:///{_read_only_uri(path)}&uri=true",
                future=True,
                hide_parameters=True,
            )
            event.listen(engine, "connect", _sqlite_read_only_pragmas)
        else:
            event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _read_only_uri(path: Path) -> str:
    """An SQLite URI opening `path` read-only.

    In WAL mode even a reader needs the ``-shm`` file; in a folder it cannot write to, with no ``-shm`` left
    there, the file is opened as immutable (nobody can be writing it: a writer would need the ``-wal`` file too).
    """
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    shm = path.with_name(path.name + "-shm")
    if not shm.exists() and not os.access(path.parent, os.W_OK):
        uri += "&immutable=1"
    return uri


def is_read_only_file(path: Path) -> bool:
    """Whether the SQLite store at `path` can be read but not written (the file or its folder).

    ``os.access`` answers for root as well where it matters: an immutable file (``chattr +i``) or a read-only
    mount refuse root too, and so does access(2).
    """
    return path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def _scrubbed(text: str, url: str) -> str:
    from urllib.parse import urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text


def describe_store(engine: Engine) -> str:
    """The store as a user names it: the SQLite file, or the URL without its password."""
    if engine.dialect.name == "sqlite":
        database = str(engine.url.database or ":memory:")
        return database.removeprefix("file:").split("?")[0]
    return engine.url.render_as_string(hide_password=True)


def database_failure(exc: DBAPIError, engine: Engine) -> StoreError:
    """One sentence for a database error: what is wrong with the store and the way out (no SQL, no parameters)."""
    where = describe_store(engine)
    reason = _scrubbed(
        str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__, str(engine.url)
    )
    lowered = reason.lower()
    if "file is not a database" in lowered or "not a database" in lowered:
        return StoreError(
            f"{where} is not an annotator store (not an SQLite database); pass --db with the store's file, "
            "or a new file name for `annotator init`"
        )
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(
            f"the store at {where} is read-only, so this command cannot write to it; make the file and its folder "
            "writable (or copy the store somewhere writable) — reading commands such as `status` still work"
        )
    if "database is locked" in lowered or "database table is locked" in lowered:
        return StoreError(
            f"the store at {where} stayed locked by another process for over {BUSY_TIMEOUT_MS // 1000} s; "
            "run the command again when it has finished"
        )
    if "disk is full" in lowered or "disk i/o error" in lowered:
        return StoreError(f"the store at {where} cannot be written ({reason}); free some disk space and run again")
    if engine.dialect.name != "sqlite" and ("connection" in lowered or "authentication" in lowered):
        return StoreError(f"cannot connect to the store at {where} ({reason}); is the server up and --db right?")
    if "unable to open database file" in lowered:
        return StoreError(
            f"cannot open the store at {where}; check that the file and its folder exist and are readable"
        )
    return StoreError(f"the store at {where} failed: {reason}")


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


def is_known_revision(engine: Engine, revision: str) -> bool:
    """Whether this annotator's migrations know `revision` (an unknown one was written by a newer annotator)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config(engine)).get_revision(revision) is not None
    except CommandError:
        return False


def newer_store(revision: str) -> StoreError:
    return StoreError(
        f"this store was written by a newer annotator (revision {revision}); upgrade annotator "
        "(`pip install --upgrade annotator`) to use it"
    )


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Create or upgrade the schema in place; returns (revision before, revision after). Idempotent."""
    from alembic import command

    try:
        before = current_revision(engine)
        if before is not None and not is_known_revision(engine, before):
            raise newer_store(before)
        command.upgrade(alembic_config(engine), revision)
        after = current_revision(engine)
    except DBAPIError as exc:
        raise database_failure(exc, engine) from None
    assert after is not None
    return before, after


def require_current_schema(engine: Engine) -> None:
    """Raise a user-facing error unless the database is at the head revision."""
    try:
        current = current_revision(engine)
        has_tables = bool(inspect(engine).get_table_names())
    except DBAPIError as exc:
        raise database_failure(exc, engine) from None
    if current is None:
        hint = "it has tables but no annotator schema" if has_tables else "it is empty"
        raise StoreNotInitialised(f"the database is not initialised ({hint}); run `annotator init` first")
    if not is_known_revision(engine, current):
        raise newer_store(current)
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
    engine = make_engine(location.url, read_only=path is not None and is_read_only_file(path))
    if not create:
        try:
            require_current_schema(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


@contextmanager
def store_failures(engine: Engine) -> Iterator[None]:
    """Inside the block, a database error becomes a :class:`StoreError` of one sentence (see the CLI's store)."""
    try:
        yield
    except DBAPIError as exc:
        raise database_failure(exc, engine) from None


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
