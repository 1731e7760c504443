"""Failures against the real server: down, wrong key, project gone, a push killed mid-way (SPEC §7)."""

from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import select

from annotator.errors import LabelStudioUnavailable
from annotator.labelstudio import server as ls_server
from annotator.labelstudio.client import connect
from annotator.labelstudio.push import push_pairs
from annotator.labelstudio.tasks import MediaRoute, build_task
from annotator.store.engine import session_scope, unit_of_work
from annotator.store.models import LabelStudioTask, Pair
from annotator.vocabulary import SceneClass as S
from tests.labelstudio.helpers import ls_project_id, remote_tasks, store_snapshot, task_ids_by_pair
from tests.labelstudio.pairs import make_pairs

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def location(ls_location):
    return ls_location


def test_server_down_and_wrong_key_leave_the_store_untouched(engine, location, cli, ls, ls_env, project_title):
    make_pairs(engine, location.media_dir, [S.LAKE, S.FOREST])
    cli("ls", "push", "--project", project_title, env=ls_env)
    before = store_snapshot(engine)
    down = {**ls_env, "LABEL_STUDIO_URL": f"http://127.0.0.1:{ls_server.free_port()}"}
    wrong_key = {**ls_env, "LABEL_STUDIO_API_KEY": "0" * 40}
    outputs = []
    for env, expected in ((down, "not reachable"), (wrong_key, "rejected the API key")):
        for command in (("ls", "push", "--project", project_title), ("ls", "pull"), ("ls", "pull", "--full")):
            result = cli(*command, expect=None, env=env)
            outputs.append(result)
            assert result.exit_code != 0
            assert expected in result.stderr
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    flag = cli("ls", "pull", "--ls-api-key", ls.api_key + "x", expect=1, env=ls_env)
    assert "rejected the API key" in flag.stderr
    outputs.append(flag)
    assert store_snapshot(engine) == before
    for out in outputs:
        assert ls.api_key not in out.output


def test_project_deleted_in_label_studio_is_reported(engine, location, cli, conn, ls, ls_env, project_title):
    make_pairs(engine, location.media_dir, [S.LAKE])
    cli("ls", "push", "--project", project_title, env=ls_env)
    conn.client.projects.delete(id=ls_project_id(engine))
    before = store_snapshot(engine)
    for command in (("ls", "pull"), ("ls", "push", "--project", project_title)):
        result = cli(*command, expect=1, env=ls_env)
        assert "no longer exists" in result.stderr and ls.api_key not in result.output
    assert store_snapshot(engine) == before


def test_tasks_created_but_not_recorded_are_adopted_not_duplicated(
    engine, location, conn, ls_files_root, project_title
):
    """A push that died after Label Studio created a batch but before the store committed it."""
    ids = make_pairs(engine, location.media_dir, [S.LAKE, S.FOREST, S.BEACH])
    with unit_of_work(engine) as work:
        push_pairs(
            work, location, conn, title=project_title, files_root=ls_files_root, batch_size=1, on_total=lambda n: None
        )
    with session_scope(engine) as session:
        session.query(LabelStudioTask).delete()  # the store forgets: as if its commits never happened
        route = MediaRoute(location.media_dir.resolve(), ls_files_root)
        extra = [build_task(p, media=route) for p in session.scalars(select(Pair).where(Pair.id == ids[0]))]
    with unit_of_work(engine) as work:
        report = push_pairs(work, location, conn, title=project_title, files_root=ls_files_root)
    assert (report.adopted, report.pushed) == (3, 0)
    # A task of the same pair id but for other media (another store's pair) is never adopted.
    extra[0]["data"]["image"] = "/data/local-files/?d=elsewhere/1.jpg"
    conn.client.projects.import_tasks(id=report.ls_project_id, request=extra, return_task_ids=True)
    with session_scope(engine) as session:
        session.query(LabelStudioTask).delete()
    with unit_of_work(engine) as work:
        report = push_pairs(work, location, conn, title=project_title, files_root=ls_files_root)
    assert (report.adopted, report.pushed) == (3, 0)
    assert sorted(task_ids_by_pair(engine)) == ids


def test_push_killed_mid_way_resumes_without_duplicates(tmp_path, capsys, engine, location):
    """A second server, started through the module's CLI, is stopped after the first batch, then restarted."""
    data_dir, env_file = tmp_path / "ls-data", tmp_path / "ls.env"
    assert (
        ls_server.main(
            ["start", "--data-dir", str(data_dir), "--media-dir", str(location.media_dir), "--env-file", str(env_file)]
        )
        == 0
    )
    try:
        printed = capsys.readouterr()
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        values = {k: v.strip("'") for k, v in values.items()}
        assert printed.out.strip() == values["LABEL_STUDIO_URL"]
        assert values["LABEL_STUDIO_API_KEY"] not in printed.out + printed.err
        assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
        assert set(values) == {
            "LABEL_STUDIO_URL",
            "LABEL_STUDIO_API_KEY",
            "LABEL_STUDIO_LOGIN_EMAIL",
            "LABEL_STUDIO_LOGIN_PASSWORD",
        }

        ids = make_pairs(engine, location.media_dir, [S.LAKE, S.FOREST, S.BEACH, None, S.HARBOUR])
        conn = connect(values["LABEL_STUDIO_URL"], values["LABEL_STUDIO_API_KEY"])

        def stop_after_first_batch(_: int) -> None:
            ls_server.stop(data_dir)

        with pytest.raises(LabelStudioUnavailable, match="not reachable"), unit_of_work(engine) as work:
            push_pairs(work, location, conn, title="killed push", batch_size=2, on_batch=stop_after_first_batch)
        assert len(task_ids_by_pair(engine)) == 2

        restarted = ls_server.start(data_dir, location.media_dir)
        assert restarted.url == values["LABEL_STUDIO_URL"] and restarted.api_key == values["LABEL_STUDIO_API_KEY"]
        with unit_of_work(engine) as work:
            report = push_pairs(
                work, location, connect(restarted.url, restarted.api_key), title="killed push", batch_size=2
            )
        assert (report.already_pushed, report.pushed) == (2, 3)
        remote = remote_tasks(conn, report.ls_project_id)
        assert sorted(t["data"]["pair_id"] for t in remote) == ids
        assert {t["data"]["pair_id"]: t["id"] for t in remote} == task_ids_by_pair(engine)
        assert values["LABEL_STUDIO_API_KEY"] not in (data_dir / "server.log").read_text(errors="replace")
    finally:
        ls_server.stop(data_dir)
    assert ls_server.read_pid(data_dir) is None
