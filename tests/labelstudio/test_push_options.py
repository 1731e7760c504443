"""`ls push --overlap/--overlap-fraction/--control-fraction/--blind-fraction/--seed/--json` against the real
Label Studio server (issue 14): what Label Studio itself then reports per task, and what the store records."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from annotator.labelstudio.instructions import project_instructions
from annotator.labelstudio.sampling import Share, chosen
from annotator.store.engine import session_scope
from annotator.store.models import LabelStudioTask, Pair
from annotator.vocabulary import FinalReason, SceneClass, TaskKind
from tests.labelstudio.helpers import annotate, ls_project_id, make_annotator, remote_tasks
from tests.labelstudio.pairs import make_pairs

pytestmark = pytest.mark.labelstudio
S = SceneClass


@pytest.fixture
def location(ls_location):
    return ls_location


def _push(cli, env, title, *options: str) -> dict:
    result = cli("ls", "push", "--project", title, *options, "--json", env=env)
    return json.loads(result.stdout)


def _stored(engine) -> dict[tuple[int, TaskKind], LabelStudioTask]:
    with session_scope(engine) as session:
        rows = session.scalars(select(LabelStudioTask)).all()
        session.expunge_all()
        return {(row.pair_id, row.kind): row for row in rows}


def _remote_by_id(conn, engine) -> dict[int, dict]:
    return {t["id"]: t for t in remote_tasks(conn, ls_project_id(engine))}


def test_overlap_on_an_existing_project_needs_two_annotators_per_task(
    engine, location, cli, conn, ls, ls_env, project_title
):
    first, second, third = make_pairs(engine, location.media_dir, [S.LAKE, S.FOREST, S.BEACH])
    report = _push(cli, ls_env, project_title)
    assert (report["pushed"], report["overlap"], report["with_overlap"]) == (3, 1, 0)
    project = conn.client.projects.get(id=report["ls_project_id"])
    assert project.maximum_annotations == 1 and project.show_instruction is True
    assert project.expert_instruction == project_instructions()
    alice, _ = make_annotator(conn, "alice")
    bob, _ = make_annotator(conn, "bob")
    task_of = {pair: row.ls_task_id for (pair, _), row in _stored(engine).items()}
    annotate(conn, task_of[first], S.LAKE, alice)
    assert _remote_by_id(conn, engine)[task_of[first]]["is_labeled"] is True  # one annotation is enough under 1

    # --overlap 2 on the existing project: Label Studio's own task state follows.
    more = make_pairs(engine, location.media_dir, [S.HARBOUR])
    report = _push(cli, ls_env, project_title, "--overlap", "2")
    assert (report["overlap"], report["overlap_changed_from"], report["overlap_tasks_updated"]) == (2, 1, 3)
    assert (report["pushed"], report["with_overlap"]) == (1, 1)
    project = conn.client.projects.get(id=report["ls_project_id"])
    assert (project.maximum_annotations, project.overlap_cohort_percentage) == (2, 100)
    remote = _remote_by_id(conn, engine)
    assert {t["overlap"] for t in remote.values()} == {2}
    assert {row.overlap for row in _stored(engine).values()} == {2}
    assert remote[task_of[first]]["is_labeled"] is False  # one annotation of two wanted
    annotate(conn, task_of[first], S.LAKE, bob)
    assert _remote_by_id(conn, engine)[task_of[first]]["is_labeled"] is True  # two different annotators
    annotate(conn, task_of[second], S.FOREST, alice)
    assert _remote_by_id(conn, engine)[task_of[second]]["is_labeled"] is False

    # Pushing again without --overlap keeps the project's setting; the final label needs the two verdicts.
    # A project whose instructions were lost (or made by an earlier version) gets them back on the next push.
    conn.client.projects.update(id=report["ls_project_id"], expert_instruction="", show_instruction=False)
    again = _push(cli, ls_env, project_title)
    assert (again["pushed"], again["overlap"], again["overlap_changed_from"]) == (0, 2, None)
    project = conn.client.projects.get(id=report["ls_project_id"])
    assert project.expert_instruction == project_instructions() and project.show_instruction is True
    pulled = json.loads(cli("ls", "pull", "--json", env=ls_env).stdout)
    assert (pulled["projects"], pulled["reviews_added"]) == (1, 3)
    with session_scope(engine) as session:
        finals = {p.id: (p.final_label, p.final_reason) for p in session.scalars(select(Pair))}
    assert finals[first] == (S.LAKE.value, FinalReason.MAJORITY)
    assert finals[third] == (None, None) and more[0] in finals
    assert ls.api_key not in json.dumps(again)


def test_overlap_fraction_is_a_seeded_share_of_tasks(engine, location, cli, conn, ls_env, project_title):
    ids = make_pairs(engine, location.media_dir, [S.FOREST] * 12)
    report = _push(cli, ls_env, project_title, "--overlap", "3", "--overlap-fraction", "0.5", "--seed", "7")
    expected = {pair: 3 if chosen(pair, Share.OVERLAP, 0.5, 7) else 1 for pair in ids}
    assert set(expected.values()) == {1, 3}  # this seed draws both
    stored = {pair: row for (pair, _), row in _stored(engine).items()}
    assert {pair: row.overlap for pair, row in stored.items()} == expected
    remote = _remote_by_id(conn, engine)
    assert {pair: remote[row.ls_task_id]["overlap"] for pair, row in stored.items()} == expected
    assert report["with_overlap"] == sum(1 for n in expected.values() if n == 3)
    # Another seed draws another share (of new pairs), the project stays at 3.
    later = make_pairs(engine, location.media_dir, [S.LAKE] * 12)
    _push(cli, ls_env, project_title, "--overlap", "3", "--overlap-fraction", "0.5", "--seed", "8")
    stored = {pair: row for (pair, _), row in _stored(engine).items()}
    assert {p: stored[p].overlap for p in later} == {p: 3 if chosen(p, Share.OVERLAP, 0.5, 8) else 1 for p in later}


def test_control_items_and_blind_share(engine, location, cli, conn, ls_env, project_title):
    labels = [S.FOREST, S.LAKE, S.BEACH, S.FARMLAND, S.HARBOUR, S.GRASSLAND, S.ORCHARD, S.BRIDGE]
    ids = make_pairs(engine, location.media_dir, labels)
    report = _push(cli, ls_env, project_title, "--overlap", "2", "--blind-fraction", "0.5", "--seed", "1")
    blind = {p for p in ids if chosen(p, Share.BLIND, 0.5, 1)}
    assert 0 < len(blind) < len(ids) and report["blind_pushed"] == len(blind)
    stored = _stored(engine)
    assert {p for (p, _), row in stored.items() if not row.preselected} == blind
    remote = _remote_by_id(conn, engine)
    for (pair, _), row in stored.items():
        (osm,) = remote[row.ls_task_id]["predictions"]
        assert bool(osm["result"]) is (pair not in blind)  # blind: the score kept, nothing pre-selected

    # Settle six labels (two agreeing annotators), leave one in conflict and one with a single verdict.
    alice, _ = make_annotator(conn, "alice")
    bob, _ = make_annotator(conn, "bob")
    task_of = {pair: row.ls_task_id for (pair, _), row in stored.items()}
    for pair, label in zip(ids[:6], labels[:6], strict=True):
        annotate(conn, task_of[pair], label, alice)
        annotate(conn, task_of[pair], label, bob)
    annotate(conn, task_of[ids[6]], S.FOREST, alice)
    annotate(conn, task_of[ids[6]], S.LAKE, bob)
    annotate(conn, task_of[ids[7]], S.BRIDGE, alice)
    cli("ls", "pull", env=ls_env)

    report = _push(cli, ls_env, project_title, "--control-fraction", "0.5", "--seed", "3")
    settled = set(ids[:6])
    first_share = {p for p in settled if chosen(p, Share.CONTROL, 0.5, 3)}
    assert (report["settled_pairs"], report["control_pushed"]) == (6, len(first_share))
    controls = {p for (p, kind) in _stored(engine) if kind == TaskKind.CONTROL}
    assert controls == first_share
    report = _push(cli, ls_env, project_title, "--control-fraction", "1")
    assert (report["control_pushed"], report["control_total"]) == (6 - len(first_share), 6)
    again = _push(cli, ls_env, project_title, "--control-fraction", "1")
    assert (again["control_pushed"], again["control_total"], again["pushed"]) == (0, 6, 0)  # never twice

    # A push killed after Label Studio made the control tasks, before the store recorded them: adopted as controls.
    with session_scope(engine) as session:
        session.query(LabelStudioTask).filter(LabelStudioTask.kind == TaskKind.CONTROL).delete()
    adopted = _push(cli, ls_env, project_title, "--control-fraction", "1")
    assert (adopted["adopted"], adopted["control_pushed"], adopted["control_total"]) == (6, 0, 6)

    stored = _stored(engine)
    assert {p for (p, kind) in stored if kind == TaskKind.CONTROL} == settled
    remote = _remote_by_id(conn, engine)
    assert len(remote) == len(ids) + 6
    for pair in settled:
        review, control = (
            remote[stored[(pair, TaskKind.REVIEW)].ls_task_id],
            remote[stored[(pair, TaskKind.CONTROL)].ls_task_id],
        )
        assert control["data"] == review["data"]  # the annotator sees the very same task
        assert control["meta"].get("annotator_kind") == "control" and not review["meta"].get("annotator_kind")
        assert control["overlap"] == 2  # the project's overlap, as for any task
