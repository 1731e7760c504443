"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temp data folder, 127.0.0.1 only.

Started once per test session when PostgreSQL is installed (scripts/setup.sh installs it); every test that asks
for the store on PostgreSQL gets a fresh database on it, dropped when the test ends. Run as root (CI, the dev
machines), the server runs as the ``postgres`` system user, as PostgreSQL refuses to run as root; its folder is
made with :func:`tempfile.mkdtemp` (pytest's own temp folders are private to root, so ``postgres`` could not
enter them).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

USER = "annotator"
#: The database every cluster has; the server's own connection (create/drop) uses it.
MAINTENANCE_DB = "postgres"


def find_bindir() -> Path | None:
    """The folder with initdb and pg_ctl (the newest installed major version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", *command]


@dataclass
class PostgresServer:
    """A running throwaway cluster; :meth:`create_database` gives each test its own database URL."""

    bindir: Path
    root: Path
    port: int
    _admin: psycopg.Connection | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        """The URL a user passes as ``--db`` (psycopg 3 driver, no password: the cluster trusts 127.0.0.1)."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        """One autocommit connection to the maintenance database, kept for the session (CREATE/DROP DATABASE)."""
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(
                host="127.0.0.1", port=self.port, user=USER, dbname=MAINTENANCE_DB, autocommit=True
            )
        return self._admin

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.admin().execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of `url`, ending any connection a test left open."""
        name = url.rsplit("/", 1)[-1]
        self.admin().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        subprocess.run(
            _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start(root: Path | None = None, timeout_s: float = 60.0) -> PostgresServer:
    """initdb + pg_ctl start in `root` (a new temp folder by default), on 127.0.0.1 only, trust auth.

    Raises:
        RuntimeError: PostgreSQL is not installed, or the server did not start (its log is named).
    """
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh installs Debian's postgresql package)")
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="annotator-pg-"))
    root.mkdir(parents=True, exist_ok=True)
    data, sockets = root / "data", root / "sock"
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    # fsync off and no full-page writes: a crash of this throwaway cluster loses nothing anyone keeps.
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    log = root / "log"
    started = subprocess.run(
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]),
        capture_output=True,
        timeout=timeout_s,
    )
    server = PostgresServer(bindir=bindir, root=root, port=port)
    deadline = time.monotonic() + timeout_s
    while started.returncode == 0 and time.monotonic() < deadline:
        ready = subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
        if ready.returncode == 0:
            return server
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-800:] if log.exists() else started.stderr.decode(errors="replace")
    server.stop()
    raise RuntimeError(f"PostgreSQL did not start within {timeout_s:.0f} s: {tail}")
