"""`ls push` follows the latest rank run, against the real Label Studio server (issue 13, item 2).

Rank runs are written straight into the store (no training): each test plants pairs, inserts a run, pushes and
asks Label Studio, as an annotator's browser does, for the next task (``GET /api/projects/<id>/next``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.push import push_pairs
from annotator.labelstudio.queue import UNCERTAINTY_SAMPLING
from annotator.labelstudio.tasks import NO_RANK_TEXT, RANK_RUN_KEY
from annotator.store import unit_of_work
from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence, RankRun, RankScore
from annotator.vocabulary import LabelSource, SceneClass
from tests.labelstudio import conftest as ls_fixtures
from tests.labelstudio.helpers import annotate, ls_project_id, make_annotator, remote_tasks, task_ids_by_pair
from tests.labelstudio.pairs import make_pairs

pytestmark = pytest.mark.labelstudio

# The Label Studio fixtures of tests/labelstudio (one server for this module too).
ls, ls_files_root, ls_location = ls_fixtures.ls, ls_fixtures.ls_files_root, ls_fixtures.ls_location
conn, ls_env, project_title = ls_fixtures.conn, ls_fixtures.ls_env, ls_fixtures.project_title

S = SceneClass
OSM_VERSION = "osm:finland-test.osm.pbf@2024-05-01"


@pytest.fixture
def location(ls_location):
    return ls_location


def _set_confidence(engine, confidences: dict[int, float]) -> None:
    with session_scope(engine) as session:
        for pair_id, confidence in confidences.items():
            session.execute(update(OsmEvidence).where(OsmEvidence.pair_id == pair_id).values(confidence=confidence))


def _insert_run(engine, scores: dict[int, tuple[SceneClass, float, float]]) -> int:
    """A rank run scoring each pair (suggested class, its p, suspicion), ranked most suspicious first."""
    ranked = sorted(scores, key=lambda pair_id: (-scores[pair_id][2], pair_id))
    with session_scope(engine) as session:
        run = RankRun(params={"seed": 0}, counts={"scored": len(scores)}, model={})
        session.add(run)
        session.flush()
        for rank, pair_id in enumerate(ranked, start=1):
            suggested, p, suspicion = scores[pair_id]
            session.add(
                RankScore(
                    run_id=run.id,
                    pair_id=pair_id,
                    current_label=None,
                    label_origin=LabelSource.OSM,
                    suggested_label=suggested.value,
                    suggested_p=p,
                    suspicion=suspicion,
                    fold=rank % 2,
                    rank=rank,
                )
            )
        return run.id


def _tasks(conn, engine) -> dict[int, dict[str, Any]]:
    """pair id → its task in the review project, predictions oldest first."""
    tasks = {t["data"]["pair_id"]: t for t in remote_tasks(conn, ls_project_id(engine))}
    for task in tasks.values():
        task["predictions"] = sorted(task["predictions"], key=lambda p: p["id"])
    return tasks


def _shape(prediction: dict[str, Any]) -> tuple[str, float, str | None]:
    return prediction["model_version"], round(prediction["score"], 6), lsconfig.read_verdict(prediction["result"])


def _snapshot(task: dict[str, Any]) -> tuple:
    """What a push could change of a task: its data, its predictions (ids included), its annotations."""
    predictions = tuple((p["id"], *_shape(p)) for p in task["predictions"])
    return task["data"], predictions, tuple(a["id"] for a in task["annotations"]), task["updated_at"]


def _next_pair(ls, ls_project: int) -> int:
    """The pair Label Studio serves next to the admin, as the labelling stream asks for it."""
    answer = httpx.get(
        f"{ls.url}/api/projects/{ls_project}/next", headers={"Authorization": f"Token {ls.api_key}"}, timeout=60
    )
    answer.raise_for_status()
    return int(answer.json()["data"]["pair_id"])


def _project(conn, ls_project: int):
    return conn.client.projects.get(id=ls_project)


def _push(engine, location, conn, ls_files_root, title: str, **options):
    with unit_of_work(engine) as work:
        return push_pairs(work, location, conn, title=title, files_root=ls_files_root, **options)


def test_rank_orders_the_queue_and_updates_unreviewed_tasks_in_place(
    engine, location, cli, conn, ls, ls_env, ls_files_root, project_title
):
    labels = [S.FOREST, S.LAKE, S.FARMLAND, S.BEACH, S.RESIDENTIAL, None]
    forest, lake, farmland, beach, residential, unlabelled = make_pairs(engine, location.media_dir, labels)
    # The OSM order would serve `lake` first (confidence 0.01); the rank order must not.
    _set_confidence(engine, {forest: 0.9, lake: 0.01, farmland: 0.7, beach: 0.6, residential: 0.5})
    run1 = _insert_run(
        engine,
        {
            forest: (S.FOREST, 0.91, 0.05),
            lake: (S.LAKE, 0.80, 0.10),
            farmland: (S.GRASSLAND, 0.62, 0.55),
            beach: (S.HARBOUR, 0.87, 0.95),  # the most suspicious
            residential: (S.RESIDENTIAL, 0.70, 0.30),
            unlabelled: (S.FOREST, 0.40, 0.45),
        },
    )

    out = cli("ls", "push", "--project", project_title, env=ls_env)
    assert "rank: the most suspicious label first" in out.stdout and f"rank:{run1}" in out.stdout

    tasks = _tasks(conn, engine)
    assert [_shape(p) for p in tasks[beach]["predictions"]] == [
        (OSM_VERSION, 0.6, "beach"),
        (f"rank:{run1}", 0.05, "harbour"),
    ]
    assert [_shape(p) for p in tasks[farmland]["predictions"]] == [
        (OSM_VERSION, 0.7, "farmland"),
        (f"rank:{run1}", 0.45, "grassland"),
    ]
    assert [_shape(p) for p in tasks[unlabelled]["predictions"]] == [(f"rank:{run1}", 0.55, "forest")]
    assert all(len(t["predictions"]) == 2 for pid, t in tasks.items() if pid != unlabelled)
    assert "model suggests harbour (p = 0.87)" in tasks[beach]["data"]["model"]
    assert "beach (confidence 0.60" in tasks[beach]["data"]["osm"]
    assert all(t["data"][RANK_RUN_KEY] == run1 for t in tasks.values())
    ls_project = ls_project_id(engine)
    project = _project(conn, ls_project)
    assert project.model_version == f"rank:{run1}" and project.sampling == UNCERTAINTY_SAMPLING
    assert _next_pair(ls, ls_project) == beach

    # Two reviews come in (a verdict and a skip), a new pair arrives, and rank runs again.
    user, _ = make_annotator(conn, "alice")
    task_of = task_ids_by_pair(engine)
    annotate(conn, task_of[beach], "harbour", user)
    annotate(conn, task_of[forest], None, user)
    reviewed_before = {pid: _snapshot(t) for pid, t in _tasks(conn, engine).items() if pid in (beach, forest)}
    (late,) = make_pairs(engine, location.media_dir, [S.LAKE], confidence=0.99)
    run2 = _insert_run(
        engine,
        {
            forest: (S.BEACH, 0.66, 0.90),
            lake: (S.FOREST, 0.75, 0.85),  # the most suspicious still unreviewed
            farmland: (S.FARMLAND, 0.93, 0.02),
            beach: (S.HARBOUR, 0.95, 0.99),
            residential: (S.RESIDENTIAL, 0.81, 0.20),
            unlabelled: (S.LAKE, 0.50, 0.50),
            late: (S.LAKE, 0.97, 0.01),
        },
    )

    report = _push(engine, location, conn, ls_files_root, project_title)
    assert (report.pushed, report.with_rank_prediction, report.updated_in_place) == (1, 1, 4)
    assert (report.reviewed_untouched, report.already_current, report.rank_run) == (2, 0, run2)
    tasks = _tasks(conn, engine)
    assert {pid: _snapshot(t) for pid, t in tasks.items() if pid in (beach, forest)} == reviewed_before
    assert [_shape(p) for p in tasks[lake]["predictions"]] == [
        (OSM_VERSION, 0.01, "lake"),
        (f"rank:{run2}", 0.15, "forest"),
    ]
    assert [_shape(p) for p in tasks[farmland]["predictions"]] == [
        (OSM_VERSION, 0.7, "farmland"),
        (f"rank:{run2}", 0.98, "farmland"),
    ]
    assert [_shape(p) for p in tasks[unlabelled]["predictions"]] == [(f"rank:{run2}", 0.5, "lake")]
    assert [_shape(p) for p in tasks[late]["predictions"]] == [
        (OSM_VERSION, 0.99, "lake"),
        (f"rank:{run2}", 0.99, "lake"),
    ]
    assert (
        "model suggests forest (p = 0.75)" in tasks[lake]["data"]["model"]
        and f"rank:{run2}" in tasks[lake]["data"]["model"]
    )
    assert "lake (confidence 0.01" in tasks[lake]["data"]["osm"]
    assert _project(conn, ls_project).model_version == f"rank:{run2}"
    assert _next_pair(ls, ls_project) == lake

    # The same run again: nothing changes, not even a prediction id.
    before = {pid: _snapshot(t) for pid, t in tasks.items()}
    again = _push(engine, location, conn, ls_files_root, project_title)
    assert (again.pushed, again.updated_in_place, again.already_current, again.reviewed_untouched) == (0, 0, 5, 2)
    assert {pid: _snapshot(t) for pid, t in _tasks(conn, engine).items()} == before


def test_order_osm_keeps_todays_queue_and_rank_needs_a_run(
    engine, location, cli, conn, ls, ls_env, ls_files_root, project_title
):
    labels = [S.FOREST, S.LAKE, S.FARMLAND, S.BEACH]
    forest, lake, farmland, beach = make_pairs(engine, location.media_dir, labels)
    _set_confidence(engine, {forest: 0.9, lake: 0.2, farmland: 0.7, beach: 0.6})
    # A project of that title made before the model field existed: the push adopts it and adds the field.
    model_field = '<Header value="Model suggestion" size="6"/><Text name="model" value="$model"/>'
    assert model_field in lsconfig.labelling_config()
    old_config = lsconfig.labelling_config().replace(model_field, "")
    made = conn.client.projects.create(title=project_title, label_config=old_config, sampling=UNCERTAINTY_SAMPLING)

    out = cli("ls", "push", "--project", project_title, "--order", "rank", env=ls_env, expect=1)
    assert "--order rank needs a rank run: run `annotator rank` first" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and task_ids_by_pair(engine) == {}

    # No rank run: today's push — the OSM prediction alone, the OSM order.
    out = cli("ls", "push", "--project", project_title, env=ls_env)
    assert "osm: the least confident OSM match first" in out.stdout
    tasks = _tasks(conn, engine)
    assert [_shape(p) for p in tasks[lake]["predictions"]] == [(OSM_VERSION, 0.2, "lake")]
    assert tasks[lake]["data"]["model"] == NO_RANK_TEXT and RANK_RUN_KEY not in tasks[lake]["data"]
    ls_project = ls_project_id(engine)
    project = _project(conn, ls_project)
    assert ls_project == made.id and project.label_config == lsconfig.labelling_config()
    assert project.model_version == OSM_VERSION

    # A rank run, pushed with --order osm: the tasks get its prediction, the queue stays OSM's.
    run = _insert_run(
        engine,
        {
            forest: (S.GRASSLAND, 0.88, 0.97),
            lake: (S.LAKE, 0.9, 0.05),
            farmland: (S.FARMLAND, 0.8, 0.1),
            beach: (S.BEACH, 0.7, 0.2),
        },
    )
    report = _push(engine, location, conn, ls_files_root, project_title, order="osm")
    assert (report.updated_in_place, report.queue_model_version) == (4, OSM_VERSION)
    tasks = _tasks(conn, engine)
    assert [_shape(p) for p in tasks[forest]["predictions"]] == [
        (OSM_VERSION, 0.9, "forest"),
        (f"rank:{run}", 0.03, "grassland"),
    ]
    assert "model suggests grassland (p = 0.88)" in tasks[forest]["data"]["model"]
    project = _project(conn, ls_project)
    assert project.model_version == OSM_VERSION and project.sampling == UNCERTAINTY_SAMPLING
    assert _next_pair(ls, ls_project) == lake

    # The default then follows the run; --order osm switches back without pushing anything.
    assert _push(engine, location, conn, ls_files_root, project_title).queue_model_version == f"rank:{run}"
    assert _project(conn, ls_project).model_version == f"rank:{run}"
    back = _push(engine, location, conn, ls_files_root, project_title, order="osm")
    assert (back.pushed, back.updated_in_place, back.queue_model_version) == (0, 0, OSM_VERSION)
    assert _project(conn, ls_project).model_version == OSM_VERSION
