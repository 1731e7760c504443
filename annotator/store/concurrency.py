"""Writers on one store wait for each other instead of dying (issue 11).

Two tools, for two kinds of conflict:

- :func:`retry_on_conflict` — for batch jobs whose batches only touch the store (import, imagery fill,
  pre-labelling, export records). A batch is a function of the session; when committing it collides with another
  writer (a unique row the other process inserted first, SQLite's "database is locked" when a snapshot went stale,
  PostgreSQL's serialization failure or deadlock), the batch is rolled back and run again from a fresh snapshot,
  where it sees the other writer's rows. The batch must therefore re-read whatever it decides on (which rows exist)
  inside the function, and must have no side effects outside the store.
- :func:`job_lock` — for jobs with side effects outside the store that must not run twice at once (a Label Studio
  push creates tasks on a server; a retried batch would create them twice). The second process waits for the first
  to finish, then does what is left. SQLite: an ``flock`` on a file beside the database; PostgreSQL: a
  session-level advisory lock.

SQLite's ``busy_timeout`` (see :mod:`annotator.store.engine`) still makes a writer wait for another's open write
transaction; these cover what a busy timeout cannot.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from annotator.errors import StoreError

if TYPE_CHECKING:
    from annotator.store.engine import UnitOfWork

T = TypeVar("T")

DEFAULT_ATTEMPTS = 8
#: First pause between attempts; doubled each time (with jitter from the pid), capped at RETRY_MAX_PAUSE_S.
RETRY_FIRST_PAUSE_S = 0.05
RETRY_MAX_PAUSE_S = 2.0
#: PostgreSQL SQLSTATEs of a transaction that lost a race and may simply be run again.
_PG_RETRYABLE = {"40001", "40P01", "55P03"}  # serialization_failure, deadlock_detected, lock_not_available
#: How often a waiting :func:`job_lock` tries again, and how long it waits before saying so.
LOCK_POLL_S = 0.2


def is_write_conflict(exc: BaseException) -> bool:
    """Whether `exc` is a collision with another writer (worth a retry), not a fault of the data or the store."""
    if isinstance(exc, IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _PG_RETRYABLE:
            return True
        if isinstance(exc, OperationalError):
            message = str(exc.orig).lower()
            return "database is locked" in message or "database table is locked" in message or "busy" in message
    return False


def retry_on_conflict(
    work: UnitOfWork,
    batch: Callable[[Session], T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Run ``batch(work.session)`` and commit it as one batch; on a write conflict roll back and run it again.

    Args:
        work: the job's unit of work; everything it had not committed before this call is rolled back on a retry,
            so commit earlier batches first.
        batch: does one batch's work in the session and returns its result. It is called again after a conflict,
            from a fresh snapshot, so it must re-read what it decides on and have no effect outside the store.
            ORM objects it added in a failed attempt are discarded by the rollback.
        attempts: how many times to try in all (≥ 1).
        on_retry: called with (attempt number, the conflict) before each retry, e.g. to log "waiting for …".

    Returns:
        What the successful call of `batch` returned.

    Raises:
        StoreError: still conflicting after `attempts` tries (another writer kept winning).
        Anything else `batch` raises, unchanged (the open batch is rolled back by the unit of work).
    """
    for attempt in range(1, attempts + 1):
        try:
            result = batch(work.session)
            work.commit_batch()
            return result
        except (IntegrityError, OperationalError, DBAPIError) as exc:
            work.session.rollback()
            if not is_write_conflict(exc):
                raise
            if attempt == attempts:
                raise StoreError(
                    f"another process kept writing the same rows of the store ({attempts} tries); "
                    "run the command again when it has finished"
                ) from None
            if on_retry is not None:
                on_retry(attempt, exc)
            time.sleep(_pause(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _pause(attempt: int) -> float:
    jitter = 1.0 + (os.getpid() % 7) / 10  # two processes retrying in lockstep drift apart
    return float(min(RETRY_MAX_PAUSE_S, RETRY_FIRST_PAUSE_S * 2 ** (attempt - 1) * jitter))


@contextmanager
def job_lock(
    engine: Engine,
    name: str,
    *,
    on_wait: Callable[[], None] | None = None,
    timeout_s: float | None = None,
) -> Iterator[None]:
    """Hold the store-wide lock `name` for the block; another process asking for it waits until it is released.

    Args:
        engine: the store.
        name: what is locked, e.g. ``"labelstudio"``; different names do not exclude each other.
        on_wait: called once if the lock is held by another process (say what the command is waiting for).
        timeout_s: give up after this long (None: wait as long as it takes).

    Raises:
        StoreError: the lock cannot be taken (a read-only store folder) or `timeout_s` passed.
    """
    if engine.dialect.name == "sqlite":
        with _file_lock(engine, name, on_wait=on_wait, timeout_s=timeout_s):
            yield
    elif engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name, on_wait=on_wait, timeout_s=timeout_s):
            yield
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported stores
        yield


def _wait_until(
    acquire: Callable[[], bool], name: str, on_wait: Callable[[], None] | None, timeout_s: float | None
) -> None:
    started = time.monotonic()
    told = False
    while not acquire():
        if not told and on_wait is not None:
            on_wait()
        told = True
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise StoreError(
                f"another process has held the store's {name} lock for over {timeout_s:.0f} s; "
                "run the command again when it has finished"
            )
        time.sleep(LOCK_POLL_S)


@contextmanager
def _file_lock(
    engine: Engine, name: str, *, on_wait: Callable[[], None] | None, timeout_s: float | None
) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    path = f"{database}.{name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot write beside the store ({path}: {exc.strerror}); is its folder read-only?") from None

    def acquire() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        _wait_until(acquire, name, on_wait, timeout_s)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def _advisory_lock(
    engine: Engine, name: str, *, on_wait: Callable[[], None] | None, timeout_s: float | None
) -> Iterator[None]:
    key = int.from_bytes(hashlib.sha256(f"annotator:{name}".encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:

        def acquire() -> bool:
            got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
            connection.commit()
            return got

        _wait_until(acquire, name, on_wait, timeout_s)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
