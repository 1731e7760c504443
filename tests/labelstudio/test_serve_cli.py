"""`annotator ls serve` / `annotator ls stop`: a real Label Studio started and stopped through the CLI, then used
by `ls push` through the variables it wrote (issue 14, item 7)."""

from __future__ import annotations

import json
import os
import stat
import urllib.request

import pytest

from annotator.labelstudio import server as ls_server
from annotator.labelstudio.client import connect
from annotator.vocabulary import SceneClass as S
from tests.labelstudio.helpers import remote_tasks
from tests.labelstudio.pairs import make_pairs

pytestmark = [pytest.mark.labelstudio, pytest.mark.sqlite_only]  # the server, not the store, is tested


@pytest.fixture(autouse=True)
def _needs_label_studio() -> None:
    try:
        ls_server.find_binary()
    except Exception as exc:  # noqa: BLE001 (the reason is the skip message)
        pytest.skip(str(exc))


def _env_file(path) -> dict[str, str]:
    return {k: v.strip("'") for k, v in (line.split("=", 1) for line in path.read_text().splitlines())}


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
            return json.loads(answer.read()).get("status") == "UP"
    except OSError:
        return False


def test_help_has_an_example(cli):
    for command in ("serve", "stop"):
        text = cli("ls", command, "--help").stdout
        assert "Example: annotator ls " + command in " ".join(text.split())


def test_serve_push_stop(tmp_path, engine, location, cli):
    data_dir = tmp_path / "ls-data"
    root = location.media_dir.parent  # a parent of the media dir: push must be told, through the env file
    port = ls_server.free_port()
    started = cli("ls", "serve", "--data-dir", str(data_dir), "--files-root", str(root), "--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        assert url in started.stdout and _up(url)
        credentials, env_path = data_dir.resolve() / "credentials.json", data_dir.resolve() / "ls.env"
        assert str(credentials) in started.stdout and str(env_path) in started.stdout
        for secret_file in (credentials, env_path):
            assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
        env = _env_file(env_path)
        assert env["LABEL_STUDIO_URL"] == url and env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] == str(root.resolve())
        key = env["LABEL_STUDIO_API_KEY"]
        assert key == json.loads(credentials.read_text())["token"] and key not in started.output

        again = cli("ls", "serve", "--data-dir", str(data_dir), expect=1)
        assert "already running" in again.stderr and again.stderr.count("\n") == 1

        make_pairs(engine, location.media_dir, [S.LAKE, S.FOREST])
        pushed = json.loads(cli("ls", "push", "--project", "served", "--json", env=env).stdout)
        assert pushed["pushed"] == 2 and "image" in pushed["media_checked"] and key not in json.dumps(pushed)
        assert len(remote_tasks(connect(url, key), pushed["ls_project_id"])) == 2
    finally:
        stopped = cli("ls", "stop", "--data-dir", str(data_dir))
    assert "Stopped" in stopped.stdout and not _up(url)
    assert "No Label Studio was running" in cli("ls", "stop", "--data-dir", str(data_dir)).stdout

    # Started again from the same data dir: the same port, login and token; --json names the files, not the key.
    restarted = json.loads(cli("ls", "serve", "--data-dir", str(data_dir), "--json").stdout)
    try:
        assert restarted["url"] == url and _up(url)
        assert set(restarted) == {"url", "pid", "data_dir", "files_root", "credentials_file", "env_file"}
        assert restarted["files_root"] == str(location.media_dir)  # the default: the media dir
        assert _env_file(env_path)["LABEL_STUDIO_API_KEY"] == key
    finally:
        cli("ls", "stop", "--data-dir", str(data_dir))
    assert ls_server.read_pid(data_dir) is None
