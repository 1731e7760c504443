"""Store faults (issue 11 item 7): not-SQLite files, newer revisions, read-only stores, concurrent writers.

Shared helpers for concurrent writers, in annotator.store (annotator/store/concurrency.py):

    retry_on_conflict(work: UnitOfWork, batch: Callable[[Session], T], *, attempts: int = 8,
                      on_retry: Callable[[int, BaseException], None] | None = None) -> T
        Runs batch(work.session), then work.commit_batch(). On a write conflict (IntegrityError, SQLite
        "database is locked", PostgreSQL serialization failure/deadlock) it rolls back and runs batch again from
        a fresh snapshot, with a growing pause; after `attempts` tries → StoreError (one sentence). The batch must
        re-read what it decides on (e.g. which recordings exist) inside the function and have no effect outside
        the store; commit earlier batches before calling it (a retry rolls back everything uncommitted).

    job_lock(engine: Engine, name: str, *, on_wait: Callable[[], None] | None = None,
             timeout_s: float | None = None) -> ContextManager[None]
        A store-wide lock: SQLite → flock on "<db>.<name>.lock" beside the database; PostgreSQL → advisory lock.
        A second process waits (on_wait called once) until the first leaves the block. For jobs with effects
        outside the store (ls push / ls pull use name "labelstudio").
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.faults.conftest import Fault

ANNOTATOR = Path(sys.executable).with_name("annotator")


def run_cli(db: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANNOTATOR), "--db", str(db), *args], capture_output=True, text=True, timeout=120, env=_env()
    )


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ANNOTATOR")}


def assert_one_sentence(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "[parameters:" not in done.stderr and "[SQL:" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "store" / "annotator.db"
    assert run_cli(db, "init").returncode == 0
    return db


@pytest.mark.parametrize("command", ["init", "status"])
def test_not_sqlite(fault: Fault, tmp_path: Path, command: str) -> None:
    fault.case = f"not_sqlite_{command}"
    notes = tmp_path / "notes.txt"
    notes.write_text("my field notes, not a database\n" * 10)
    done = run_cli(notes, command)
    assert_one_sentence(done, "is not an annotator store")
    assert notes.read_text() == "my field notes, not a database\n" * 10  # nothing of the user's touched


@pytest.mark.parametrize("revision", ["9999", "ffeeddccbbaa"])
@pytest.mark.parametrize("command", ["init", "status"])
def test_newer_revision(fault: Fault, store: Path, command: str, revision: str) -> None:
    fault.case = f"newer_revision_{command}_{revision}"
    with sqlite3.connect(store) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    done = run_cli(store, command)
    line = assert_one_sentence(done, f"written by a newer annotator (revision {revision}); upgrade annotator")
    assert "annotator init" not in line
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(revision,)]


def _chattr(flag: str, *paths: Path) -> bool:
    """chattr +i/-i: an immutable file or folder refuses writes from root too (tests run as root)."""
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True).returncode == 0


@pytest.fixture
def immutable(store: Path) -> Iterator[list[Path]]:
    """Paths made immutable by the test (`chattr +i`), made writable again afterwards."""
    made: list[Path] = []
    yield made
    if made:
        _chattr("-i", *made)


def _import_manifest(tmp_path: Path) -> Path:
    from tests.data.generate import build_corpus, write_csv_manifest

    rows = build_corpus(tmp_path / "corpus", seed=0)
    return write_csv_manifest(tmp_path / "corpus" / "manifest.csv", [r.row for r in rows[:3]])


def test_read_only_store_file(fault: Fault, store: Path, tmp_path: Path, immutable: list[Path]) -> None:
    """An immutable store file (chattr +i; mode 0444 does not stop root): import fails in one sentence, status reads."""
    manifest = _import_manifest(tmp_path)
    if not _chattr("+i", store):
        pytest.skip("chattr +i is not available on this file system")
    immutable.append(store)
    done = run_cli(store, "import", str(manifest), "--rejects", str(tmp_path / "rejects.csv"))
    line = assert_one_sentence(done, "is read-only")
    assert "good0" not in line  # no SQL parameters (a recording's source id)
    status = run_cli(store, "status", "--json")
    assert status.returncode == 0, status.stderr


def test_read_only_store_folder(fault: Fault, store: Path, immutable: list[Path]) -> None:
    """A store in a folder nobody may write (chattr +i on file and folder, no -shm left): status still reads."""
    for leftover in store.parent.glob(store.name + "-*"):
        leftover.unlink()
    if not _chattr("+i", store, store.parent):
        pytest.skip("chattr +i is not available on this file system")
    immutable.extend([store, store.parent])
    status = run_cli(store, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"recordings"' in status.stdout


def test_retry_on_conflict_two_writers(fault: Fault, store: Path) -> None:
    """Two writers insert the same unique rows at once: each batch retries on the conflict; none dies, none doubled."""
    from sqlalchemy.exc import IntegrityError

    from annotator.config import resolve_store
    from annotator.store import ImportReject, open_store, retry_on_conflict, unit_of_work

    location = resolve_store(str(store))
    errors: list[BaseException] = []
    conflicts: list[BaseException] = []  # what plain commits died of before retry_on_conflict
    barrier = threading.Barrier(2)

    def writer() -> None:
        engine = open_store(location)
        try:
            with unit_of_work(engine) as work:

                def batch(session):  # type: ignore[no-untyped-def]
                    have = set(session.scalars(select(ImportReject.line).where(ImportReject.manifest == "m.csv")))
                    barrier.wait(timeout=5) if not have else None
                    for line in range(1, 51):
                        if line not in have:
                            session.add(ImportReject(manifest="m.csv", line=line, reason="empty_file", detail=""))
                    session.flush()
                    return len(have)

                retry_on_conflict(work, batch, on_retry=lambda _n, exc: conflicts.append(exc))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    engine = open_store(location)
    with engine.connect() as connection:
        rows = connection.scalar(select(func.count()).select_from(ImportReject))
    engine.dispose()
    fault.lost(50 - (rows or 0))
    assert not [e for e in errors if isinstance(e, IntegrityError)] and not errors, errors
    assert rows == 50
    assert conflicts, "the two writers never collided: the test did not inject the fault"
