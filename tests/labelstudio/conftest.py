"""A real Label Studio server for the session (started by annotator.labelstudio.server), and stores inside its root.

The server serves local files from one session folder; each test's store (and media dir) lives in a subfolder of
it, and pushes with ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` naming that root. Tests act as several annotators
through the admin token (``completed_by``). Skipped only where Label Studio is not installed at all.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from annotator.config import StoreLocation
from annotator.labelstudio import server as ls_server
from annotator.labelstudio.client import Connection, connect

ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"


def _installed() -> bool:
    if os.environ.get(ls_server.ENV_BIN):
        return True
    return (ls_server.REPO_ROOT / ".venv-ls" / "bin" / "label-studio").exists()


@pytest.fixture(scope="session")
def ls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ls_server.RunningServer]:
    """One Label Studio server for the whole session; stopped by PID at the end."""
    if not _installed():
        pytest.skip("Label Studio is not installed: neither $LABEL_STUDIO_BIN nor .venv-ls exists (scripts/setup.sh)")
    base = tmp_path_factory.mktemp("label-studio")
    running = ls_server.start(base / "data", base / "files")
    yield running
    ls_server.stop(running.data_dir)


@pytest.fixture(scope="session")
def ls_files_root(ls: ls_server.RunningServer) -> Path:
    return (ls.data_dir.parent / "files").resolve()


@pytest.fixture
def ls_location(ls_files_root: Path, make_location: Callable[[Path], StoreLocation]) -> StoreLocation:
    """A fresh store (SQLite or PostgreSQL, as the test is parametrized) whose media dir lies under the server's
    files root (server test modules use it as `location`, so the suite's `engine` and `cli` fixtures build on it)."""
    return make_location(ls_files_root / uuid.uuid4().hex[:12])


@pytest.fixture
def conn(ls: ls_server.RunningServer) -> Connection:
    return connect(ls.url, ls.api_key)


@pytest.fixture
def ls_env(ls: ls_server.RunningServer, ls_files_root: Path) -> dict[str, str]:
    """Environment for `annotator ls …` commands against the session server."""
    return {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_key, ROOT_ENV: str(ls_files_root)}


@pytest.fixture
def project_title() -> str:
    """A title no other test uses (a project is reused by title)."""
    return f"test {uuid.uuid4().hex[:10]}"
