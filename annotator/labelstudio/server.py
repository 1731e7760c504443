"""Start and stop a local, headless Label Studio on 127.0.0.1 with a preset admin and API token.

Used by the test suite, the benchmark and the README demo (notes/labelstudio.md holds the facts behind each
setting). A server lives in a *data dir*: its SQLite database, ``server.pid``, ``server.log`` and
``credentials.json`` (mode 600; the preset login and token, reused when the same data dir is started again).

Starting on a fresh data dir copies a pre-migrated template database (``label-studio init`` run once into
``.cache/ls-template/<version>``), so a start takes seconds instead of the ~30–55 s of running every migration.

Users start one with `annotator ls serve` / `annotator ls stop` (annotator.cli.labelstudio). The module's own CLI
stays for scripts that used it (prints only the URL; secrets go to the env file, mode 600)::

    python -m annotator.labelstudio.server start --data-dir D --media-dir M --env-file F
    python -m annotator.labelstudio.server stop --data-dir D
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from annotator.errors import LabelStudioUnavailable
from annotator.files import atomic_path, atomic_write_text, pid_alive

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_BIN = "LABEL_STUDIO_BIN"
DB_NAME = "label_studio.sqlite3"
PID_FILE = "server.pid"
LOG_FILE = "server.log"
CREDENTIALS_FILE = "credentials.json"
ADMIN_EMAIL = "curator@example.com"
LOOPBACK = "127.0.0.1"
#: Label Studio's local-files document root; `annotator ls push` reads the same variable (--ls-files-root).
FILES_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
#: The shell lines `annotator ls serve` writes into the data dir (mode 600): `set -a; . DATA_DIR/ls.env; set +a`.
ENV_FILE = "ls.env"
START_TIMEOUT_S = 180.0
TEMPLATE_TIMEOUT_S = 600.0
#: Environment variables never handed to the server: plain USERNAME/PASSWORD make it create a superuser.
_SCRUBBED_ENV = ("USERNAME", "PASSWORD", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_URL", "DJANGO_DB", "DATABASE_URL")


@dataclass(frozen=True)
class Credentials:
    """The preset admin of a local server. Never printed; written only to files of mode 600."""

    email: str
    password: str
    token: str
    port: int
    host: str = LOOPBACK

    @property
    def url(self) -> str:
        """Where it answers (on 127.0.0.1 when it listens on every interface)."""
        host = LOOPBACK if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class RunningServer:
    """A started server: where it answers and how to log in."""

    url: str
    api_key: str
    email: str
    password: str
    pid: int
    data_dir: Path

    def __repr__(self) -> str:  # keep the key and password out of tracebacks and test reports
        return f"RunningServer(url={self.url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"


def find_binary() -> Path:
    """The `label-studio` executable: $LABEL_STUDIO_BIN, else <repo>/.venv-ls/bin/label-studio."""
    candidates = [Path(os.environ[ENV_BIN])] if os.environ.get(ENV_BIN) else []
    candidates.append(REPO_ROOT / ".venv-ls" / "bin" / "label-studio")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise LabelStudioUnavailable(
        "label-studio is not installed: run scripts/setup.sh (it creates .venv-ls) or set LABEL_STUDIO_BIN"
    )


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (Label Studio silently moves off a busy one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server binds: with SO_REUSEADDR, so connections lingering in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _server_env(data_dir: Path, media_dir: Path, creds: Credentials) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LABEL_STUDIO_USERNAME=creds.email,
        LABEL_STUDIO_PASSWORD=creds.password,
        LABEL_STUDIO_USER_TOKEN=creds.token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(media_dir),  # FILES_ROOT_ENV
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        COLLECT_ANALYTICS="false",
        LATEST_VERSION_CHECK="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def _template_dir(binary: Path) -> Path:
    # One template per installed Label Studio version: a newer one needs its own migrations.
    venv = binary.resolve().parent.parent
    dists = sorted(venv.glob("lib/python*/site-packages/label_studio-*.dist-info"))
    version = dists[-1].name.removesuffix(".dist-info") if dists else "label_studio-unknown"
    return REPO_ROOT / ".cache" / "ls-template" / version


def template_database(binary: Path) -> Path:
    """The pre-migrated template database, built once (`label-studio init -q`) under a file lock."""
    folder = _template_dir(binary)
    target = folder / DB_NAME
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
            env.update(LABEL_STUDIO_BASE_DATA_DIR=tmp, SENTRY_DSN="", COLLECT_ANALYTICS="false")
            log = Path(tmp) / "init.log"
            with open(log, "wb") as out:
                proc = subprocess.run(
                    [str(binary), "init", "-q", "--data-dir", tmp, "--database", str(Path(tmp) / DB_NAME)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=TEMPLATE_TIMEOUT_S,
                    check=False,
                )
            built = Path(tmp) / DB_NAME
            if proc.returncode != 0 or not built.is_file():
                tail = log.read_text(errors="replace")[-800:]
                raise LabelStudioUnavailable(f"label-studio init failed (exit {proc.returncode}): {tail}")
            os.replace(built, target)
    return target


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 600 (secrets inside), set before any byte is written."""
    with atomic_path(path) as tmp:
        tmp.chmod(0o600)
        tmp.write_text(text)


def _copy_private(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically, mode 600 from the first byte."""
    with atomic_path(target) as tmp:
        tmp.chmod(0o600)
        with source.open("rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst)


def make_private(data_dir: Path) -> None:
    """Only the owner may read the data folder and its database: ``label_studio.sqlite3`` holds the API token.

    The folder becomes 700 and the database (with its ``-wal``/``-shm``) and the log 600 — also in a folder an
    older annotator made world-readable; the server itself runs with umask 077, so what it writes stays private.
    """
    data_dir.chmod(0o700)
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOG_FILE):
        path = data_dir / name
        if path.is_file():
            path.chmod(0o600)


def _load_or_make_credentials(data_dir: Path, port: int | None = None, host: str = LOOPBACK) -> Credentials:
    """The data dir's saved login and token (or new ones), on `port` if given, else the saved port while free.

    Raises:
        LabelStudioUnavailable: `port` is taken (Label Studio would silently move to another one).
    """
    if port is not None and not _port_is_free(port, host):
        raise LabelStudioUnavailable(f"port {port} on {host} is taken; choose another --port or leave it out")
    path = data_dir / CREDENTIALS_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        creds = Credentials(**saved)
        if port is None:
            port = creds.port if _port_is_free(creds.port, host) else free_port()
        return Credentials(creds.email, creds.password, creds.token, port, host)
    return Credentials(ADMIN_EMAIL, secrets.token_urlsafe(12), secrets.token_hex(20), port or free_port(), host)


def read_pid(data_dir: Path) -> int | None:
    """The PID of the server running from `data_dir`, or None when none is."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return json.loads(response.read() or b"{}").get("status") == "UP"
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _spawn(binary: Path, data_dir: Path, media_dir: Path, creds: Credentials) -> subprocess.Popen[bytes]:
    """Run `label-studio start` in its own session (so stop can end its whole group), logging to the data dir."""
    database = data_dir / DB_NAME
    command = [str(binary), "start", "--no-browser", "--data-dir", str(data_dir), "--database", str(database)]
    command += ["--internal-host", creds.host, "--port", str(creds.port), "--log-level", "WARNING"]
    log_fd = os.open(data_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(log_fd, "ab") as log:
        proc = subprocess.Popen(
            command,
            env=_server_env(data_dir, media_dir, creds),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=0o077,  # its database, uploads and exports are readable by the owner only
        )
    atomic_write_text(data_dir / PID_FILE, f"{proc.pid}\n")
    return proc


def start(
    data_dir: Path,
    media_dir: Path,
    *,
    port: int | None = None,
    host: str = LOOPBACK,
    timeout_s: float = START_TIMEOUT_S,
) -> RunningServer:
    """Start Label Studio for `data_dir` serving local files from `media_dir` (its local-files document root:
    the media dir, or a folder containing it); return once /health is UP.

    A data dir started before keeps its database, login and token (and its port when still free). It listens on
    `host` (127.0.0.1: this machine only) at `port` (default: a free one).

    Raises:
        LabelStudioUnavailable: not installed, already running, or it did not come up in time (the log is named).
    """
    data_dir = data_dir.resolve()
    media_dir = media_dir.resolve()
    media_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    if read_pid(data_dir) is not None:
        raise LabelStudioUnavailable(f"a Label Studio server is already running from {data_dir}; stop it first")
    binary = find_binary()
    if not (data_dir / DB_NAME).exists():
        _copy_private(template_database(binary), data_dir / DB_NAME)
    make_private(data_dir)
    creds = _load_or_make_credentials(data_dir, port, host)
    write_private(data_dir / CREDENTIALS_FILE, json.dumps(creds.__dict__))
    proc = _spawn(binary, data_dir, media_dir, creds)
    log_path = data_dir / LOG_FILE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (data_dir / PID_FILE).unlink(missing_ok=True)
            raise LabelStudioUnavailable(f"label-studio exited with code {proc.returncode}; see {log_path}")
        if _health(creds.url):
            return RunningServer(creds.url, creds.token, creds.email, creds.password, proc.pid, data_dir)
        time.sleep(0.3)
    stop(data_dir)
    raise LabelStudioUnavailable(f"label-studio did not answer /health within {timeout_s:.0f} s; see {log_path}")


def stop(data_dir: Path, *, timeout_s: float = 20.0) -> bool:
    """Stop the server started from `data_dir` by its PID (its whole process group). True if one was running."""
    data_dir = data_dir.resolve()
    pid = read_pid(data_dir)
    if pid is None:
        (data_dir / PID_FILE).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    (data_dir / PID_FILE).unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    # Reap our own child if it is one, so a zombie does not look alive.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return pid_alive(pid)


def env_file_text(server: RunningServer, files_root: Path | None = None) -> str:
    """Shell `KEY=value` lines for a started server (sourced by scripts/demo.sh), with its local-files root when
    given (what `annotator ls push` reads as --ls-files-root)."""
    lines = {
        "LABEL_STUDIO_URL": server.url,
        "LABEL_STUDIO_API_KEY": server.api_key,
        "LABEL_STUDIO_LOGIN_EMAIL": server.email,
        "LABEL_STUDIO_LOGIN_PASSWORD": server.password,
    }
    if files_root is not None:
        lines[FILES_ROOT_ENV] = str(files_root)
    return "".join(f"{key}='{value}'\n" for key, value in lines.items())


@dataclass(frozen=True)
class Served:
    """What `annotator ls serve` started: where it answers and where its secrets are (never the secrets)."""

    url: str
    pid: int
    data_dir: Path
    files_root: Path
    credentials_file: Path  # the admin login and API token, mode 600
    env_file: Path  # shell lines for `annotator ls push`, mode 600


def serve(
    data_dir: Path, files_root: Path, *, port: int | None = None, host: str = LOOPBACK, env_file: Path | None = None
) -> Served:
    """Start a server (:func:`start`) and write its `KEY=value` lines, the files root among them, to `env_file`
    (default ``DATA_DIR/ls.env``, mode 600).

    Raises:
        LabelStudioUnavailable: as :func:`start`.
    """
    server = start(data_dir, files_root, port=port, host=host)
    root = files_root.resolve()
    env_path = (env_file or server.data_dir / ENV_FILE).resolve()
    write_private(env_path, env_file_text(server, root))
    return Served(server.url, server.pid, server.data_dir, root, server.data_dir / CREDENTIALS_FILE, env_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m annotator.labelstudio.server",
        description="Start or stop a local headless Label Studio on 127.0.0.1. Example: python -m "
        "annotator.labelstudio.server start --data-dir ls --media-dir media --env-file ls.env",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start a server; prints its URL, writes secrets to --env-file")
    start_cmd.add_argument("--data-dir", type=Path, required=True)
    start_cmd.add_argument("--media-dir", type=Path, required=True)
    start_cmd.add_argument("--env-file", type=Path, required=True, help="written with mode 600")
    stop_cmd = commands.add_parser("stop", help="stop the server of a data dir")
    stop_cmd.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            server = start(args.data_dir, args.media_dir)
            write_private(args.env_file.resolve(), env_file_text(server))
            print(server.url)
        else:
            stopped = stop(args.data_dir)
            print("stopped" if stopped else "not running", file=sys.stderr)
    except LabelStudioUnavailable as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
