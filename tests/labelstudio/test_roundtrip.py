"""Push → annotate as several people → pull against the real Label Studio server (SPEC §7)."""

from __future__ import annotations

import urllib.request

import pytest
from sqlalchemy import select

from annotator.store.engine import session_scope
from annotator.store.models import LabelStudioTask, Pair, Review
from annotator.vocabulary import FinalReason, ProjectPurpose, SceneClass, Verdict
from tests.labelstudio.helpers import (
    annotate,
    ls_project_id,
    make_annotator,
    personal_access_token,
    remote_tasks,
    task_ids_by_pair,
)
from tests.labelstudio.pairs import make_pairs

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def location(ls_location):
    return ls_location


S = SceneClass


def _reviews(engine) -> set[tuple]:
    with session_scope(engine) as session:
        return {
            (r.pair_id, r.annotator, r.verdict, r.outcome, r.predicted_label, r.comment, r.retracted_at is None)
            for r in session.scalars(select(Review))
        }


def _finals(engine) -> dict[int, tuple[str | None, str | None]]:
    with session_scope(engine) as session:
        return {p.id: (p.final_label, p.final_reason) for p in session.scalars(select(Pair))}


def test_round_trip_verdicts_final_labels_and_adjudication(engine, location, cli, conn, ls, ls_env, project_title):
    labels = [S.FOREST, S.LAKE, S.FARMLAND, S.BEACH, S.RESIDENTIAL, S.FOREST, None]
    accept, correct, unusable, skip, agree, disagree, unlabelled = make_pairs(engine, location.media_dir, labels)
    outputs = [cli("ls", "push", "--project", project_title, env=ls_env)]
    assert "tasks pushed now" in outputs[0].stdout

    tasks = task_ids_by_pair(engine)
    assert sorted(tasks) == sorted([accept, correct, unusable, skip, agree, disagree, unlabelled])
    remote = {t["data"]["pair_id"]: t for t in remote_tasks(conn, ls_project_id(engine))}
    assert {p: t["id"] for p, t in remote.items()} == tasks
    forest_task = remote[accept]
    assert len(forest_task["predictions"]) == 1
    prediction = forest_task["predictions"][0]
    assert prediction["model_version"] == "osm:finland-test.osm.pbf@2024-05-01"
    assert prediction["score"] == pytest.approx(0.8)
    assert prediction["result"][0]["value"]["choices"] == [S.FOREST.value]
    assert remote[unlabelled]["predictions"] == []
    assert "landuse=forest" in forest_task["data"]["osm_tags"] and "2016-04-02" in forest_task["data"]["osm"]

    # The browser's view: image and audio URLs answer 200 with the very bytes of the media files.
    for key, rel in (("image", f"images/{accept}.jpg"), ("audio", f"clips/{accept}.wav")):
        request = urllib.request.Request(
            ls.url + forest_task["data"][key], headers={"Authorization": f"Token {ls.api_key}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert response.read() == (location.media_dir / rel).read_bytes()

    alice, alice_email = make_annotator(conn, "alice")
    bob, bob_email = make_annotator(conn, "bob")
    annotate(conn, tasks[accept], S.FOREST, alice)
    annotate(conn, tasks[correct], S.HARBOUR, alice, comment="a marina, not a lake")
    annotate(conn, tasks[unusable], Verdict.UNUSABLE, alice)
    annotate(conn, tasks[skip], None, alice)
    annotate(conn, tasks[agree], S.RESIDENTIAL, alice)
    annotate(conn, tasks[agree], S.RESIDENTIAL, bob)
    annotate(conn, tasks[disagree], S.FOREST, alice)
    annotate(conn, tasks[disagree], S.GRASSLAND, bob)
    annotate(conn, tasks[unlabelled], S.LAKE, bob)

    outputs.append(cli("ls", "pull", env=ls_env))
    assert _reviews(engine) == {
        (accept, alice_email, "forest", "accepted", "forest", None, True),
        (correct, alice_email, "harbour", "corrected", "lake", "a marina, not a lake", True),
        (unusable, alice_email, "unusable", "unusable", "farmland", None, True),
        (skip, alice_email, "skipped", "skipped", "beach", None, True),
        (agree, alice_email, "residential", "accepted", "residential", None, True),
        (agree, bob_email, "residential", "accepted", "residential", None, True),
        (disagree, alice_email, "forest", "accepted", "forest", None, True),
        (disagree, bob_email, "grassland", "corrected", "forest", None, True),
        (unlabelled, bob_email, "lake", "labelled", None, None, True),
    }
    assert _finals(engine) == {
        accept: ("forest", FinalReason.SINGLE_REVIEW),
        correct: ("harbour", FinalReason.SINGLE_REVIEW),
        unusable: ("unusable", FinalReason.SINGLE_REVIEW),
        skip: (None, None),
        agree: ("residential", FinalReason.MAJORITY),
        disagree: (None, FinalReason.CONFLICT),
        unlabelled: ("lake", FinalReason.SINGLE_REVIEW),
    }

    # A second pull with nothing new adds nothing; a full reconciliation (the export) agrees, skips included.
    outputs.append(cli("ls", "pull", env=ls_env))
    assert len(_reviews(engine)) == 9
    before_full = _reviews(engine)
    outputs.append(cli("ls", "pull", "--full", env=ls_env))
    assert _reviews(engine) == before_full

    # The next push sends only the conflict, to the adjudication project, with both verdicts as a note.
    outputs.append(cli("ls", "push", "--project", project_title, env=ls_env))
    assert "adjudication" in outputs[-1].stdout
    assert task_ids_by_pair(engine) == tasks
    adjudication = task_ids_by_pair(engine, ProjectPurpose.ADJUDICATION)
    assert list(adjudication) == [disagree]
    (adj_task,) = remote_tasks(conn, ls_project_id(engine, ProjectPurpose.ADJUDICATION))
    assert alice_email in adj_task["data"]["note"] and "grassland" in adj_task["data"]["note"]
    assert adj_task["predictions"] == []
    assert len(remote_tasks(conn, ls_project_id(engine))) == 7

    judge, _ = make_annotator(conn, "judge")
    annotate(conn, adjudication[disagree], S.GRASSLAND, judge)
    outputs.append(cli("ls", "pull", env=ls_env))
    assert _finals(engine)[disagree] == ("grassland", FinalReason.MAJORITY)
    outputs.append(cli("ls", "push", "--project", project_title, env=ls_env))
    assert len(task_ids_by_pair(engine, ProjectPurpose.ADJUDICATION)) == 1

    for out in outputs:
        assert ls.api_key not in out.output
    assert ls.api_key not in (ls.data_dir / "server.log").read_text(errors="replace")


def test_update_adds_a_review_and_delete_retracts_after_full_pull(engine, location, cli, conn, ls_env, project_title):
    first, second = make_pairs(engine, location.media_dir, [S.LAKE, S.FOREST])
    cli("ls", "push", "--project", project_title, env=ls_env)
    tasks = task_ids_by_pair(engine)
    carol, _ = make_annotator(conn, "carol")
    ann_first = annotate(conn, tasks[first], S.LAKE, carol)
    ann_second = annotate(conn, tasks[second], S.FOREST, carol)
    cli("ls", "pull", env=ls_env)
    assert _finals(engine)[first] == ("lake", FinalReason.SINGLE_REVIEW)

    from annotator.labelstudio import config as lsconfig

    conn.client.annotations.update(id=ann_first, result=lsconfig.annotation_result(S.HARBOUR.value))
    cli("ls", "pull", "--full", env=ls_env)  # through the export: the prediction is compared all the same
    with session_scope(engine) as session:
        history = session.scalars(select(Review).where(Review.ls_annotation_id == ann_first).order_by(Review.id)).all()
        assert [(r.verdict, r.outcome) for r in history] == [("lake", "accepted"), ("harbour", "corrected")]
    assert _finals(engine)[first] == ("harbour", FinalReason.SINGLE_REVIEW)

    conn.client.annotations.delete(id=ann_second)
    cli("ls", "pull", "--full", env=ls_env)
    with session_scope(engine) as session:
        (row,) = session.scalars(select(Review).where(Review.ls_annotation_id == ann_second)).all()
        assert row.retracted_at is not None
        assert session.scalar(select(Pair.final_label).where(Pair.id == second)) is None
        kept = session.scalars(select(Review).where(Review.ls_annotation_id == ann_first)).all()
        assert all(r.retracted_at is None for r in kept)


def test_push_twice_creates_no_duplicates(engine, location, cli, conn, ls_env, project_title):
    ids = make_pairs(engine, location.media_dir, [S.BRIDGE, S.ORCHARD, None, S.AIRPORT, S.BEACH])
    cli("ls", "push", "--project", project_title, "--batch-size", "2", env=ls_env)
    again = cli("ls", "push", "--project", project_title, env=ls_env)
    assert "already pushed" in again.stdout
    pair_ids = [t["data"]["pair_id"] for t in remote_tasks(conn, ls_project_id(engine))]
    assert sorted(pair_ids) == ids
    with session_scope(engine) as session:
        assert len(session.scalars(select(LabelStudioTask)).all()) == len(ids)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's token refresh uses pydantic's parse_obj
def test_personal_access_token_works_like_a_legacy_token(engine, location, cli, ls, ls_env, project_title):
    token = personal_access_token(ls.url, ls.email, ls.password)
    assert token.count(".") == 2  # a JWT: the SDK exchanges it for short-lived access tokens
    make_pairs(engine, location.media_dir, [S.LAKE, S.SPORTS_LAND])
    env = {**ls_env, "LABEL_STUDIO_API_KEY": token}
    outputs = [cli("ls", "push", "--project", project_title, env=env), cli("ls", "pull", env=env)]
    assert len(task_ids_by_pair(engine)) == 2
    assert all(token not in out.output for out in outputs)
