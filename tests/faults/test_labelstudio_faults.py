"""Label Studio faults (issue 11 items 3 and 9): a loopback fake Label Studio that misbehaves on command.

`ls push` runs as a real subprocess against :class:`FakeLabelStudio`; before the fix a project list answering
``{"results": "nope"}`` was paged forever (13,839 requests in 10 minutes, no output). Every listing is now checked
and bounded (``annotator.labelstudio.client.bounded_pages``). The real-server tests stay in tests/labelstudio/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.faults.conftest import Fault

# The real Label Studio of tests/labelstudio (one per session), for two `ls push` at once on one store.
from tests.labelstudio.conftest import conn, ls, ls_env, ls_files_root, ls_location, project_title  # noqa: F401

ANNOTATOR = Path(sys.executable).with_name("annotator")
RUN_TIMEOUT_S = 60
KEY = "fake-key-0123456789abcdef"
LONG_HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>" + "<p>nginx</p>" * 2000


class FakeLabelStudio:
    """A loopback HTTP server speaking enough of Label Studio's API for `ls push` to reach its listings.

    `projects` / `tasks` name how the project list and the task list misbehave:
    ``ok``, ``not_a_list`` (``{"results": "nope"}``), ``no_count`` (no ``count``/``next``), ``endless`` (the same
    full page with a ``next`` forever), ``html`` (a 200 HTML page), ``big_html_error`` (a 502 HTML page).
    """

    def __init__(self, *, projects: str = "ok", tasks: str = "ok", whoami: str = "ok") -> None:
        self.projects, self.tasks, self.whoami = projects, tasks, whoami
        self.requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake.requests += 1
                fake.answer(self)

            def do_PATCH(self) -> None:  # noqa: N802 - push brings the project's instructions up to date
                length = int(self.headers.get("Content-Length") or 0)
                changes = json.loads(self.rfile.read(length) or b"{}")
                if urlsplit(self.path).path.rstrip("/").startswith("/api/projects/"):
                    return fake.send(self, {"id": 7, "title": "annotator review", "task_number": 5, **changes})
                return fake.send(self, {"detail": "not found"}, status=404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeLabelStudio:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        page = int(query.get("page", "1"))
        path = parts.path.rstrip("/")
        if path == "/api/current-user/whoami":
            if self.whoami == "big_html_error":
                return self.send(handler, LONG_HTML, status=502, content_type="text/html")
            return self.send(handler, {"id": 1, "email": "fake@example.org"})
        if path == "/api/projects":
            size = int(query.get("page_size", "100"))
            return self.listing(handler, self.projects, page, size, "results", "count", title=query.get("title", ""))
        if path.startswith("/api/projects/"):
            return self.send(handler, {"id": 7, "title": "annotator review", "task_number": 5})
        if path == "/api/tasks":
            return self.listing(handler, self.tasks, page, int(query.get("page_size", "100")), "tasks", "total")
        return self.send(handler, {"detail": "not found"}, status=404)

    def listing(
        self,
        handler: BaseHTTPRequestHandler,
        mode: str,
        page: int,
        size: int,
        items: str,
        count: str,
        title: str = "",
    ) -> None:
        if mode == "ok":  # one project with the asked title; tasks: one empty page
            found = [{"id": 7, "title": title}] if title else []
            return self.send(handler, {items: found, count: len(found), "next": None})
        if mode == "not_a_list":
            return self.send(handler, {items: "nope"})
        if mode == "no_count":
            return self.send(handler, {items: [{"id": page, "title": "other"}]})
        if mode == "endless":  # ignores ?page: the same full page, a `next` and a huge count, forever
            page_items = [{"id": i, "title": f"other {i}", "data": {}} for i in range(1, size + 1)]
            nxt = f"{self.url}/api/projects/?page={page + 1}"
            return self.send(handler, {items: page_items, count: 10**9, "next": nxt})
        if mode == "html":
            return self.send(handler, LONG_HTML, content_type="text/html")
        raise AssertionError(mode)

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, body: object, *, status: int = 200, content_type: str = "") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type or "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def run_cli(db: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`annotator --db DB ARGS` as a real subprocess; a hang ends in TimeoutExpired (the test fails)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "ANNOTATOR"))}
    full_env.update(env or {})
    return subprocess.run(
        [str(ANNOTATOR), "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=full_env,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "store" / "annotator.db"
    done = run_cli(db, "init")
    assert done.returncode == 0, done.stderr
    yield db


def assert_one_sentence(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1, no traceback, one `Error:` line on stderr naming the problem; returns that line."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert KEY not in done.stdout + done.stderr
    return lines[0]


def push(store: Path, fake: FakeLabelStudio) -> subprocess.CompletedProcess[str]:
    return run_cli(store, "ls", "push", "--ls-url", fake.url, env={"LABEL_STUDIO_API_KEY": KEY})


@pytest.mark.parametrize("mode", ["not_a_list", "no_count", "endless", "html"])
def test_push_project_list_malformed(fault: Fault, store: Path, mode: str) -> None:
    fault.case = f"push_project_list_{mode}"
    with FakeLabelStudio(projects=mode) as fake:
        done = push(store, fake)
    line = assert_one_sentence(done, fake.url)
    assert "malformed page of projects" in line or "does not answer like Label Studio" in line
    assert fake.requests <= 5, f"{fake.requests} requests: pagination not bounded"
    assert len(line) < 300 and "<p>" not in line


@pytest.mark.parametrize("mode", ["not_a_list", "no_count", "endless"])
def test_push_task_list_malformed(fault: Fault, store: Path, mode: str) -> None:
    """The project exists and holds tasks the store does not know: the task listing (adoption) misbehaves."""
    fault.case = f"push_task_list_{mode}"
    with FakeLabelStudio(tasks=mode) as fake:
        done = push(store, fake)
    assert_one_sentence(done, "malformed page of the tasks of project 7")
    assert fake.requests <= 8, f"{fake.requests} requests: pagination not bounded"


def test_error_page_is_excerpted(fault: Fault, store: Path) -> None:
    """A 502 whose body is a 30 kB HTML page: the message quotes its title, not the page."""
    with FakeLabelStudio(whoami="big_html_error") as fake:
        done = push(store, fake)
    line = assert_one_sentence(done, "HTTP 502", "502 Bad Gateway")
    assert len(line) < 300 and "<" not in line


def test_bounded_pages_deadline(fault: Fault) -> None:
    """A listing that takes longer than its deadline in all stops with one sentence (in-process, tiny deadline)."""
    from types import SimpleNamespace

    from annotator.errors import LabelStudioUnavailable
    from annotator.labelstudio.client import Connection, bounded_pages

    class Page:
        def __init__(self, n: int) -> None:
            self.response = SimpleNamespace(
                results=[{"id": n}], count=10**9, model_fields_set={"results", "count", "next"}, next="more"
            )

    connection = Connection(url="http://u:pw@127.0.0.1:9", client=None, api_key=KEY)  # type: ignore[arg-type]
    pages = bounded_pages(
        connection,
        Page,  # type: ignore[arg-type]
        what="projects",
        page_size=1,
        items_field="results",
        total_field="count",
        deadline_s=0.05,
    )
    with pytest.raises(LabelStudioUnavailable, match="took over 0 s to list projects") as raised:
        for _ in pages:
            pass
    assert "pw" not in str(raised.value)


def test_two_pushes_at_once(fault: Fault, ls_location, ls_env, conn, project_title) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Two `ls push` processes started together on one store: none dies, no pair becomes two tasks."""
    from annotator.store import open_store, upgrade_to_head
    from annotator.vocabulary import SceneClass as S
    from tests.labelstudio.helpers import ls_project_id, remote_tasks
    from tests.labelstudio.pairs import make_pairs

    engine = open_store(ls_location, create=True)
    upgrade_to_head(engine)
    ids = make_pairs(engine, ls_location.media_dir, [S.LAKE, S.FOREST, S.BRIDGE, S.BEACH, None, S.ORCHARD] * 5)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "ANNOTATOR"))} | ls_env
    command = [str(ANNOTATOR), "--db", ls_location.url, "--media-dir", str(ls_location.media_dir), "ls", "push"]
    command += ["--project", project_title, "--batch-size", "3"]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"
    ]
    outcomes = [proc.communicate(timeout=RUN_TIMEOUT_S * 2) for proc in procs]
    pair_ids = [t["data"]["pair_id"] for t in remote_tasks(conn, ls_project_id(engine))]
    engine.dispose()
    fault.lost(len(ids) - len(set(pair_ids)) + (len(pair_ids) - len(set(pair_ids))))
    for proc, (_out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0 and "Traceback" not in err, err
    assert sorted(pair_ids) == sorted(ids)  # every pair once: none doubled, none missing
