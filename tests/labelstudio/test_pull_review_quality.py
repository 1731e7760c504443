"""`ls pull` keeps Label Studio's lead time and stores control-item verdicts without letting them vote (issue 14),
against the real Label Studio server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from annotator.labelstudio import config as lsconfig
from annotator.store.engine import session_scope
from annotator.store.models import LabelStudioTask, Pair, Review
from annotator.vocabulary import FinalReason, SceneClass, TaskKind
from tests.labelstudio.helpers import ls_project_id, make_annotator, remote_tasks, task_ids_by_pair
from tests.labelstudio.pairs import make_pairs

pytestmark = pytest.mark.labelstudio
S = SceneClass


@pytest.fixture
def location(ls_location):
    return ls_location


def _annotate(conn, task_id: int, verdict: str, user: int, lead_time: float) -> int:
    ann = conn.client.annotations.create(
        id=task_id, result=lsconfig.annotation_result(verdict), completed_by=user, lead_time=lead_time
    )
    return int(ann.id)


def test_lead_time_and_control_verdicts(engine, location, cli, conn, ls_env, project_title):
    settled, other = make_pairs(engine, location.media_dir, [S.FOREST, S.LAKE])
    cli("ls", "push", "--project", project_title, env=ls_env)
    tasks = task_ids_by_pair(engine)
    alice, alice_email = make_annotator(conn, "alice")
    bob, bob_email = make_annotator(conn, "bob")
    first = _annotate(conn, tasks[settled], S.FOREST.value, alice, 12.5)
    _annotate(conn, tasks[other], S.HARBOUR.value, alice, 30.0)
    cli("ls", "pull", env=ls_env)
    with session_scope(engine) as session:
        row = session.scalars(select(Review).where(Review.ls_annotation_id == first)).one()
        assert row.lead_time_s == pytest.approx(12.5)

    # A control item: the settled pair served again in the same project (as `ls push --control-fraction` does).
    project = ls_project_id(engine)
    (original,) = [t for t in remote_tasks(conn, project) if t["id"] == tasks[settled]]
    control = conn.client.tasks.create(project=project, data=original["data"])
    with session_scope(engine) as session:
        store_project = session.scalar(select(LabelStudioTask.project_id).where(LabelStudioTask.pair_id == settled))
        session.add(
            LabelStudioTask(
                project_id=store_project, pair_id=settled, ls_task_id=int(control.id), kind=TaskKind.CONTROL
            )
        )
    wrong = _annotate(conn, int(control.id), S.GRASSLAND.value, bob, 3.0)
    cli("ls", "pull", env=ls_env)
    with session_scope(engine) as session:
        review = session.scalars(select(Review).where(Review.ls_annotation_id == wrong)).one()
        assert (review.annotator, review.verdict, review.lead_time_s) == (bob_email, "grassland", 3.0)
        pair = session.get(Pair, settled)
        assert pair is not None and (pair.final_label, pair.final_reason) == ("forest", FinalReason.SINGLE_REVIEW)

    # Reviews pulled before lead times were kept get theirs from a full pull.
    with session_scope(engine) as session:
        session.execute(update(Review).values(lead_time_s=None))
    cli("ls", "pull", "--full", env=ls_env)
    with session_scope(engine) as session:
        times = {r.ls_annotation_id: r.lead_time_s for r in session.scalars(select(Review))}
        assert times[first] == pytest.approx(12.5) and times[wrong] == pytest.approx(3.0)
        assert len(times) == 3  # nothing doubled

    figures = json.loads(cli("status", "--json").stdout)["reviewers"]
    by_name = {a["annotator"]: a for a in figures["annotators"]}
    assert by_name[bob_email]["control_n"] == 1 and by_name[bob_email]["control_accuracy"] == 0.0
    assert by_name[alice_email]["median_seconds"] == pytest.approx((12.5 + 30.0) / 2)
    # One pair with two verdicts (alice's review, bob's control), and they differ: alpha = 1 - 1 * 2 / (4 - 2) = 0.
    assert figures["agreement"]["alpha_units"] == 1
    assert figures["agreement"]["krippendorff_alpha"] == pytest.approx(0.0)


def _simulator():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "simulate_annotators.py"
    spec = importlib.util.spec_from_file_location("simulate_annotators", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


def _serve_as_control(engine, conn) -> int:
    """Serve the first pair agreed by two (a settled label) again as a control item, as `ls push
    --control-fraction` does; returns its pair id."""
    with session_scope(engine) as session:
        pair_id, store_project = session.execute(
            select(Pair.id, LabelStudioTask.project_id)
            .join(LabelStudioTask, LabelStudioTask.pair_id == Pair.id)
            .where(Pair.final_reason == FinalReason.MAJORITY)
            .order_by(Pair.id)
            .limit(1)
        ).one()
        task_id = session.scalar(select(LabelStudioTask.ls_task_id).where(LabelStudioTask.pair_id == pair_id))
    project = ls_project_id(engine)
    (original,) = [t for t in remote_tasks(conn, project) if t["id"] == task_id]
    control = conn.client.tasks.create(project=project, data=original["data"])
    with session_scope(engine) as session:
        session.add(
            LabelStudioTask(
                project_id=store_project, pair_id=pair_id, ls_task_id=int(control.id), kind=TaskKind.CONTROL
            )
        )
    return int(pair_id)


def test_simulated_careful_and_sloppy_annotators(engine, location, cli, conn, ls, ls_env, project_title, monkeypatch):
    """scripts/simulate_annotators.py (the demo's review step): the sloppy annotator accepts the OSM class, the
    careful one labels the demo world's ground (every pair here lies in its harbour cell)."""
    labels = [S.HARBOUR, S.FOREST, S.LAKE, S.HARBOUR, S.FARMLAND, S.BEACH, S.HARBOUR, S.RESIDENTIAL]
    make_pairs(engine, location.media_dir, labels)
    cli("ls", "push", "--project", project_title, env=ls_env)
    for key, value in ls_env.items():
        monkeypatch.setenv(key, value)
    simulator = _simulator()
    assert simulator.main(["--project", project_title, "--db", location.url, "--seed", "3"]) == 0
    assert simulator.main(["--project", project_title, "--db", location.url, "--seed", "3"]) == 0  # adds nothing
    cli("ls", "pull", env=ls_env)
    figures = json.loads(cli("status", "--json").stdout)["reviewers"]
    by_name = {a["annotator"]: a for a in figures["annotators"]}
    careful, sloppy = by_name["careful.annotator@example.com"], by_name["sloppy.annotator@example.com"]
    assert careful["reviews"] == sloppy["reviews"] == len(labels)
    assert sloppy["accept_rate"] > careful["accept_rate"]
    assert sloppy["median_seconds"] < 5 < careful["median_seconds"]
    (kappa,) = figures["agreement"]["cohen_kappa"]
    assert kappa["shared"] == len(labels)

    # A control item of a pair both settled: only the newcomer's verdict on it measures anyone.
    settled = _serve_as_control(engine, conn)
    assert simulator.main(["--project", project_title, "--db", location.url, "--seed", "3", "--newcomer"]) == 0
    cli("ls", "pull", env=ls_env)
    figures = json.loads(cli("status", "--json").stdout)["reviewers"]
    by_name = {a["annotator"]: a for a in figures["annotators"]}
    assert by_name["newcomer.annotator@example.com"]["reviews"] == 1  # the control item, nothing else
    assert by_name["newcomer.annotator@example.com"]["control_n"] == 1
    assert by_name["careful.annotator@example.com"]["control_n"] == 0  # graded against their own vote: left out
    assert figures["control_excluded_own"] == 2
    with session_scope(engine) as session:
        pair = session.get(Pair, settled)
        assert pair is not None and pair.final_reason == FinalReason.MAJORITY
    missing = simulator.main(["--project", "no such project", "--db", location.url])
    assert missing == 1
