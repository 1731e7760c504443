"""`ls push` fetches one task's media as a browser would before creating anything (issue 14, item 6), against
the real Label Studio server and a real loopback HTTP server for --media-base-url."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotator.labelstudio.client import find_project_id
from annotator.store import open_store, upgrade_to_head
from annotator.vocabulary import SceneClass as S
from tests.conftest import Cli
from tests.labelstudio.helpers import remote_tasks, store_snapshot, task_ids_by_pair
from tests.labelstudio.pairs import make_pairs

pytestmark = pytest.mark.labelstudio
ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"


@pytest.fixture
def location(ls_location):
    return ls_location


def _refused_sentence(result, ls) -> None:
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output  # one sentence
    assert ls.api_key not in result.output


def _refused(result, ls) -> None:
    _refused_sentence(result, ls)
    assert "no task was created" in result.stderr


def test_a_files_root_the_server_does_not_share_creates_no_task(engine, location, cli, conn, ls, ls_env, project_title):
    """The server serves a parent of the media dir; a push told the media dir itself is the root makes URLs
    that answer 404 — a browser would see broken media — so nothing is created."""
    ids = make_pairs(engine, location.media_dir, [S.LAKE, S.FOREST])
    before = store_snapshot(engine)
    wrong = {**ls_env, ROOT_ENV: str(location.media_dir)}
    by_env = cli("ls", "push", "--project", project_title, expect=None, env=wrong)
    _refused(by_env, ls)
    assert "HTTP 404" in by_env.stderr and "--ls-files-root" in by_env.stderr and ROOT_ENV in by_env.stderr
    by_option = cli(
        "ls", "push", "--project", project_title, "--ls-files-root", str(location.media_dir), expect=None, env=ls_env
    )
    _refused(by_option, ls)
    project = find_project_id(conn, project_title)
    assert project is not None and remote_tasks(conn, project) == []  # the project may exist, no task does
    assert task_ids_by_pair(engine) == {}
    assert store_snapshot(engine)["ls_tasks"] == before["ls_tasks"]

    # The right root (the session server's, from the environment): the same push goes through, media checked.
    done = json.loads(cli("ls", "push", "--project", project_title, "--json", env=ls_env).stdout)
    assert done["pushed"] == 2 and done["media_checked"] == ["image", "audio", "overlay"]
    assert done["media_checked_through"] == "Label Studio"
    assert sorted(task_ids_by_pair(engine)) == ids
    (task, *_) = remote_tasks(conn, project)
    assert task["data"]["overlay"].startswith("/data/local-files/?d=")


def test_a_files_root_not_containing_the_media_dir_is_refused(
    tmp_path, engine, location, cli, conn, ls_env, project_title
):
    make_pairs(engine, location.media_dir, [S.BEACH])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("ls", "push", "--project", project_title, "--ls-files-root", str(elsewhere), expect=None, env=ls_env)
    assert result.exit_code == 1 and "not inside the local-files root" in result.stderr
    assert "--ls-files-root" in result.stderr and result.stderr.count("\n") == 1
    assert find_project_id(conn, project_title) is None and task_ids_by_pair(engine) == {}


def test_a_server_rooted_elsewhere_creates_no_task(tmp_path, make_location, conn, ls, ls_env, project_title):
    """The session server's root does not contain this store's media dir: Label Studio refuses the storage."""
    outside = make_location(tmp_path / "outside")
    engine = open_store(outside, create=True)
    upgrade_to_head(engine)
    try:
        make_pairs(engine, outside.media_dir, [S.BEACH, S.LAKE])
        env = {**ls_env, ROOT_ENV: None}  # push takes the media dir for the root, as the server does not
        result = Cli(outside, outside.sqlite_path)("ls", "push", "--project", project_title, expect=None, env=env)
        _refused_sentence(result, ls)
        assert "cannot serve files from" in result.stderr and ROOT_ENV in result.stderr
        assert "--ls-files-root" in result.stderr
        project = find_project_id(conn, project_title)
        assert project is not None and remote_tasks(conn, project) == []
        assert task_ids_by_pair(engine) == {}
    finally:
        engine.dispose()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def media_server(location) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a folder (empty at first): (its URL, the folder)."""
    folder = location.media_dir.parent / "served"
    folder.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def test_media_base_url_is_fetched_directly(engine, location, cli, conn, ls, ls_env, project_title, media_server):
    url, folder = media_server
    make_pairs(engine, location.media_dir, [S.ORCHARD, S.BRIDGE])
    result = cli("ls", "push", "--project", project_title, "--media-base-url", url, expect=None, env=ls_env)
    _refused(result, ls)
    assert "--media-base-url" in result.stderr and "HTTP 404" in result.stderr
    assert task_ids_by_pair(engine) == {}

    # Other bytes under the right names are refused too.
    for rel in ("images", "clips"):
        (folder / rel).mkdir(exist_ok=True)
        for source in (location.media_dir / rel).iterdir():
            (folder / rel / source.name).write_bytes(b"not the file")
    result = cli("ls", "push", "--project", project_title, "--media-base-url", url, expect=None, env=ls_env)
    _refused(result, ls)
    assert "other bytes" in result.stderr

    # The very media dir served (with the overlays the refused pushes drew first): pushed, checked through it.
    for path in location.media_dir.rglob("*"):
        if path.is_file():
            target = folder / path.relative_to(location.media_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    out = cli("ls", "push", "--project", project_title, "--media-base-url", url, "--json", env=ls_env)
    report = json.loads(out.stdout)
    assert report["pushed"] == 2 and report["media_checked"] == ["image", "audio", "overlay"]
    assert report["media_checked_through"] == url
    (task, *_) = remote_tasks(conn, report["ls_project_id"])
    assert task["data"]["image"].startswith(url + "/") and task["data"]["overlay"].startswith(url + "/overlays/")
