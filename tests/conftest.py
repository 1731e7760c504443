"""Shared fixtures: a real temp-file SQLite store per test and a CLI runner that goes through `main`'s app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.config import StoreLocation, resolve_store
from annotator.store import open_store, upgrade_to_head


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
    """Runs `annotator --db DB --media-dir MEDIA ARGS...` in-process, stdout and stderr kept apart."""

    location: StoreLocation
    db_path: Path

    def __call__(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(
            app,
            ["--db", str(self.db_path), "--media-dir", str(self.location.media_dir), *args],
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
def location(tmp_path: Path) -> StoreLocation:
    return resolve_store(str(tmp_path / "store" / "annotator.db"), tmp_path / "store" / "media")


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
    assert location.sqlite_path is not None
    return Cli(location=location, db_path=location.sqlite_path)
