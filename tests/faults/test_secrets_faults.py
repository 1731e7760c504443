"""Secret faults (issue 11 item 8): passwords in URLs, the API key on the command line, Label Studio's token file.

A password in ``LABEL_STUDIO_URL`` or in ``--db postgresql+psycopg://user:pw@host/db`` is never echoed; the local
Label Studio's data folder is 700 and its ``label_studio.sqlite3`` (it holds the token) 600.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.faults.conftest import Fault
from tests.faults.test_labelstudio_faults import KEY, run_cli

PASSWORD = "s3cret-Passw0rd"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "store" / "annotator.db"
    assert run_cli(db, "init").returncode == 0
    return db


@pytest.mark.parametrize("command", ["push", "pull"])
def test_ls_url_password_not_echoed(fault: Fault, store: Path, command: str) -> None:
    fault.case = f"ls_url_password_{command}"
    url = f"http://curator:{PASSWORD}@127.0.0.1:9"  # nothing listens on port 9 (discard)
    done = run_cli(store, "ls", command, env={"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": KEY})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr and KEY not in done.stdout + done.stderr
    assert "http://curator:***@127.0.0.1:9" in done.stderr


@pytest.mark.parametrize("command", ["status", "init"])
def test_db_url_password_not_echoed(fault: Fault, tmp_path: Path, command: str) -> None:
    fault.case = f"db_url_password_{command}"
    db = f"postgresql+psycopg://curator:{PASSWORD}@127.0.0.1:9/annotator"
    done = run_cli(db, command)  # type: ignore[arg-type]
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "curator:***@127.0.0.1:9" in lines[0], done.stderr


def test_api_key_option_warns_about_ps(fault: Fault, store: Path) -> None:
    done = run_cli(store, "ls", "push", "--help", env={"COLUMNS": "200"})
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "shows in `ps`" in text and "prefer the LABEL_STUDIO_API_KEY" in text


def test_local_server_files_private(fault: Fault, tmp_path: Path) -> None:
    """A real local Label Studio: its data folder is 700 and its database (the token) 600, even if made 755/644."""
    from annotator.errors import LabelStudioUnavailable
    from annotator.labelstudio import server

    try:
        server.find_binary()
    except LabelStudioUnavailable:
        pytest.skip("label-studio is not installed (set LABEL_STUDIO_BIN)")
    data_dir = tmp_path / "ls-data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)  # as an older annotator left it
    running = server.start(data_dir, tmp_path / "media")
    try:
        database = data_dir / server.DB_NAME
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [data_dir, database] if p.exists()}
        assert modes == {data_dir.name: 0o700, database.name: 0o600}, modes
        for path in data_dir.iterdir():  # the database's -wal/-shm and the credentials file hold the token too
            if path.is_file() and (path.name.startswith(server.DB_NAME) or path.name == server.CREDENTIALS_FILE):
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path.name, oct(path.stat().st_mode))
    finally:
        server.stop(running.data_dir)
