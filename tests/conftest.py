"""Shared fixtures: a real store per test (SQLite file, and a PostgreSQL database where both are run) and a CLI
runner that goes through `main`'s app.

The tests of the store, import, pre-labelling, Label Studio and export folders (``BOTH_BACKENDS``) run twice: on a
temp-file SQLite store and on a fresh database of one throwaway PostgreSQL server started for the session
(tests/pgserver.py; skipped, saying why, where PostgreSQL is not installed). A test there that inspects the SQLite
file itself is marked ``sqlite_only``. Select one side with ``-m postgresql`` or ``-m "not postgresql"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.config import StoreLocation, resolve_store
from annotator.store import open_store, upgrade_to_head
from tests import pgserver

TESTS = Path(__file__).resolve().parent
#: Test folders whose store-backed tests run on SQLite and on PostgreSQL.
BOTH_BACKENDS = frozenset({"store", "ingest", "osm", "labelstudio", "export"})
SQLITE, POSTGRESQL = "sqlite", "postgresql"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each store-backed test of the ``BOTH_BACKENDS`` folders on both backends (unless ``sqlite_only``)."""
    if "backend" not in metafunc.fixturenames:
        return
    folder = Path(str(metafunc.definition.path)).resolve().relative_to(TESTS).parts[0]
    if folder not in BOTH_BACKENDS or metafunc.definition.get_closest_marker("sqlite_only"):
        return
    params = [SQLITE, pytest.param(POSTGRESQL, marks=pytest.mark.postgresql)]
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store's backend: ``sqlite`` unless the test is parametrized over both."""
    return str(getattr(request, "param", SQLITE))


@pytest.fixture(scope="session")
def postgres() -> Iterator[pgserver.PostgresServer]:
    """One throwaway PostgreSQL server for the session, started when a test first needs it."""
    if pgserver.find_bindir() is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh installs Debian's postgresql package)")
    server = pgserver.start()
    yield server
    server.stop()


@pytest.fixture
def make_location(backend: str, request: pytest.FixtureRequest) -> Callable[[Path], StoreLocation]:
    """Makes a store location with its media under `folder`: an SQLite file there, or a new PostgreSQL database
    (dropped when the test ends) with the media dir passed explicitly, as a team's curators pass it.

    A server database has no folder of its own: what the CLI puts beside an SQLite file by default (the rejects
    CSV) goes to the current folder instead, so a PostgreSQL test runs in `folder`'s parent, never in the checkout.
    """

    def make(folder: Path) -> StoreLocation:
        if backend == SQLITE:
            return resolve_store(str(folder / "annotator.db"), folder / "media")
        server: pgserver.PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database()
        request.addfinalizer(lambda: server.drop_database(url))
        folder.mkdir(parents=True, exist_ok=True)
        request.getfixturevalue("monkeypatch").chdir(folder.parent)
        return resolve_store(url, folder / "media")

    return make


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    """Runs `annotator --db DB --media-dir MEDIA ARGS...` in-process, stdout and stderr kept apart.

    DB is `db_path` when given (a plain SQLite path, as users type it), else the location's URL.
    """

    location: StoreLocation
    db_path: Path | None = None

    @property
    def db(self) -> str:
        return str(self.db_path) if self.db_path is not None else self.location.url

    def __call__(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(
            app,
            ["--db", self.db, "--media-dir", str(self.location.media_dir), *args],
            env=env,
            catch_exceptions=False,
        )
        out = CliResult(result.exit_code, result.stdout, result.stderr)
        if expect is not None:
            assert out.exit_code == expect, (
                f"exit {out.exit_code} != {expect}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
            )
        return out


@pytest.fixture
def location(tmp_path: Path, make_location: Callable[[Path], StoreLocation]) -> StoreLocation:
    return make_location(tmp_path / "store")


@pytest.fixture
def engine(location: StoreLocation):
    """A fresh store at head, as `annotator init` leaves it."""
    engine = open_store(location, create=True)
    upgrade_to_head(engine)
    location.media_dir.mkdir(parents=True, exist_ok=True)
    yield engine
    engine.dispose()


@pytest.fixture
def cli(location: StoreLocation) -> Cli:
    return Cli(location=location, db_path=location.sqlite_path)
