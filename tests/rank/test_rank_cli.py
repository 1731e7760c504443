"""`annotator rank` end to end on a planted store: the CSV contract, the stored run, a seeded rerun, and the loop
closing (reviews come back → `status` measures the ranking → a new run trains on the human labels).

Three tiny trainings (2 folds × 1 epoch, 32 px, audio width 4, CPU) on ~22 pairs keep the module near a minute;
what a good model ranks where is tests/rank/test_oof.py's concern, not this file's.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.config import StoreLocation, resolve_store
from annotator.rank import CSV_COLUMNS, FLAG_THRESHOLD, latest_rank_scores
from annotator.review import refresh_final_labels
from annotator.store import Review, open_store, session_scope, upgrade_to_head
from annotator.store.models import RankRun, RankScore
from annotator.vocabulary import LabelSource, ReviewOutcome, SceneClass, Verdict
from tests.conftest import Cli
from tests.rank.world import Planted, plant_store

pytestmark = pytest.mark.slow

SEED = 3


def tiny(cache: Path) -> tuple[str, ...]:
    return ("--folds", "2", "--epochs", "1", "--image-size", "32", "--audio-width", "4", "--device", "cpu",
            "--seed", str(SEED), "--cache-dir", str(cache))  # fmt: skip


@dataclass
class World:
    root: Path
    location: StoreLocation
    engine: object
    planted: Planted
    cli: Cli
    summary: dict

    def csv_rows(self, name: str) -> list[dict[str, str]]:
        with (self.root / name).open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("rank")
    location = resolve_store(str(root / "annotator.db"), root / "media")
    engine = open_store(location, create=True)
    upgrade_to_head(engine)
    planted = plant_store(engine, location.media_dir)
    cli = Cli(location=location, db_path=location.sqlite_path)
    first = cli("rank", *tiny(root / "cache"), "--csv", str(root / "first.csv"), "--json")
    cli("rank", *tiny(root / "cache"), "--csv", str(root / "second.csv"))
    yield World(root, location, engine, planted, cli, json.loads(first.stdout))
    engine.dispose()


def test_csv_has_every_scored_pair_once_most_suspicious_first(world: World):
    with (world.root / "first.csv").open(encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert tuple(header) == CSV_COLUMNS
    assert header[:8] == [
        "pair_id", "recording_id", "osm_label", "current_label", "suggested_label", "suggested_p", "suspicion", "rank",
    ]  # fmt: skip
    rows = world.csv_rows("first.csv")
    planted = world.planted
    assert sorted(int(r["pair_id"]) for r in rows) == sorted(planted.scored)  # once each, left-out pairs absent
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    keys = [(-float(r["suspicion"]), int(r["pair_id"])) for r in rows]
    assert keys == sorted(keys)  # most suspicious first, ties by pair id
    by_id = {int(r["pair_id"]): r for r in rows}
    for pair_id, row in by_id.items():
        assert row["recording_id"] == planted.source_ids[pair_id]  # the recording's source id, not the store's
        assert 0.0 <= float(row["suspicion"]) <= 1.0 and 0.0 < float(row["suggested_p"]) <= 1.0
        assert SceneClass(row["suggested_label"]) in SceneClass
        assert row["fold"] in ("0", "1")
    for stale in planted.stale:  # the OSM label is the (wrong) current label
        assert by_id[stale]["osm_label"] == by_id[stale]["current_label"] != planted.truth[stale].value
        assert by_id[stale]["label_origin"] == "osm"
    [no_osm] = planted.no_osm
    assert by_id[no_osm]["osm_label"] == by_id[no_osm]["current_label"] == by_id[no_osm]["label_origin"] == ""
    [human] = planted.human
    assert by_id[human]["label_origin"] == "human"
    for parent, offsets in planted.offsets.items():  # a recording and its offsets never straddle folds
        assert {by_id[o]["fold"] for o in offsets} == {by_id[parent]["fold"]}


def test_the_run_is_stored_with_its_parameters_and_one_score_per_pair(world: World):
    with session_scope(world.engine) as session:
        runs = session.scalars(select(RankRun).order_by(RankRun.id)).all()
        assert len(runs) >= 2
        first = runs[0]
        assert first.id == world.summary["run_id"]
        assert {k: first.params[k] for k in ("folds", "epochs", "seed", "preset", "modality")} == {
            "folds": 2, "epochs": 1, "seed": SEED, "preset": "small", "modality": "both",
        }  # fmt: skip
        assert first.params["method"] == "self_confidence" and first.params["osm_weight"] == 0.0
        assert first.model["config"]["image_size"] == 32 and first.model["config"]["audio_width"] == 4
        assert len(first.model["seconds_per_fold"]) == 2
        assert first.counts["scored"] == len(world.planted.scored)
        assert first.counts["label_origin"] == {"human": 1, "osm": len(world.planted.scored) - 2, "none": 1}
        assert first.counts["skipped"] == {"no_image": 1, "unusable": 1}
        scores = session.scalars(select(RankScore).where(RankScore.run_id == first.id)).all()
        assert sorted(s.pair_id for s in scores) == sorted(world.planted.scored)
        assert sorted(s.rank for s in scores) == list(range(1, len(scores) + 1))
        assert first.counts["flagged"] == sum(s.suspicion >= FLAG_THRESHOLD for s in scores)
        latest = latest_rank_scores(session)
        assert latest is not None and latest[0].id == runs[-1].id
        assert set(latest[1]) == set(world.planted.scored)
    csv_by_id = {int(r["pair_id"]): r for r in world.csv_rows("first.csv")}
    for score in scores:  # the CSV is the stored run
        row = csv_by_id[score.pair_id]
        assert (int(row["rank"]), row["suggested_label"], int(row["fold"])) == (
            score.rank, score.suggested_label, score.fold,
        )  # fmt: skip
        assert float(row["suspicion"]) == pytest.approx(score.suspicion, abs=1e-6)
    assert world.summary["counts"]["scored"] == len(world.planted.scored)
    assert len(world.summary["top"]) == 10 and world.summary["top"][0]["rank"] == 1


def test_a_rerun_with_the_same_seed_gives_the_same_ranking(world: World):
    assert (world.root / "first.csv").read_bytes() == (world.root / "second.csv").read_bytes()
    with session_scope(world.engine) as session:
        first, second = session.scalars(select(RankRun).order_by(RankRun.id).limit(2)).all()
        ranks = [
            {s.pair_id: (s.rank, s.suspicion) for s in session.scalars(select(RankScore).where(RankScore.run_id == r))}
            for r in (first.id, second.id)
        ]
    assert ranks[0] == ranks[1]


def _review(session, pair_id: int, verdict: str, osm_label: str | None, n: int) -> None:
    outcome = {True: ReviewOutcome.ACCEPTED, False: ReviewOutcome.CORRECTED}[verdict == osm_label]
    session.add(
        Review(
            pair_id=pair_id,
            ls_task_id=500 + n,
            ls_annotation_id=900 + n,
            annotator="ann@example.com",
            verdict=verdict,
            outcome=ReviewOutcome.UNUSABLE if verdict == Verdict.UNUSABLE else outcome,
            predicted_label=osm_label,
            ls_updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )


def test_reviews_are_measured_by_status_and_the_next_run_trains_on_them(world: World):
    """Runs last in the module: it changes the store."""
    planted = world.planted
    with session_scope(world.engine) as session:
        latest = latest_rank_scores(session)
        assert latest is not None
        run, scores = latest
        ordinary = [p for p in planted.scored if p not in planted.stale and scores[p].label_origin == LabelSource.OSM]
        verdicts = {p: planted.truth[p].value for p in planted.stale}  # the stale labels are corrected
        verdicts |= {p: scores[p].current_label for p in ordinary[:3]}  # three OSM labels confirmed
        verdicts[ordinary[3]] = Verdict.UNUSABLE.value
        for n, (pair_id, verdict) in enumerate(verdicts.items()):
            _review(session, pair_id, verdict, scores[pair_id].current_label, n)
        session.flush()
        refresh_final_labels(session, verdicts)
        flagged = {p for p, s in scores.items() if s.suspicion >= FLAG_THRESHOLD}
    payload = json.loads(world.cli("status", "--json").stdout)["rank"]
    assert payload["run_id"] == run.id and payload["scored"] == len(planted.scored)
    assert payload["flagged"] == len(flagged)
    for key, members in (("flagged_osm", flagged), ("unflagged_osm", set(planted.scored) - flagged)):
        reviewed = [p for p in verdicts if p in members]
        corrected = [p for p in reviewed if p in planted.stale]
        unusable = [p for p in reviewed if verdicts[p] == Verdict.UNUSABLE]
        assert payload[key]["reviewed"] == len(reviewed)
        assert payload[key]["corrected"] == len(corrected) and payload[key]["unusable"] == len(unusable)
        decided = len(reviewed) - len(unusable)
        assert payload[key]["share_corrected"] == (pytest.approx(len(corrected) / decided) if decided else None)
    assert payload["flagged_reviewed"] == payload["flagged_osm"]["reviewed"]
    assert "against the reviews since" in world.cli("status").stdout

    world.cli("rank", *tiny(world.root / "cache"), "--csv", str(world.root / "after.csv"))
    after = {int(r["pair_id"]): r for r in world.csv_rows("after.csv")}
    assert ordinary[3] not in after  # now unusable: left out
    for pair_id, verdict in verdicts.items():
        if verdict != Verdict.UNUSABLE:  # the label the model trains with is now the human's
            assert (after[pair_id]["current_label"], after[pair_id]["label_origin"]) == (verdict, "human")
    for stale in planted.stale:
        assert after[stale]["current_label"] == planted.truth[stale].value != after[stale]["osm_label"]
    with session_scope(world.engine) as session:
        newest = session.scalars(select(RankRun).order_by(RankRun.id.desc()).limit(1)).one()
        assert newest.counts["label_origin"]["human"] == 1 + len(verdicts) - 1
        assert newest.counts["skipped"]["unusable"] == 2
    # The new run judged those pairs on human labels: nothing of it has been reviewed since.
    rank = json.loads(world.cli("status", "--json").stdout)["rank"]
    assert rank["run_id"] == newest.id and rank["flagged_osm"]["reviewed"] == rank["unflagged_osm"]["reviewed"] == 0


def test_rank_on_a_store_without_pairs_says_what_to_do(cli, engine):
    result = cli("rank", "--folds", "2", expect=1)
    assert "no pairs to rank" in result.stderr and "annotator import" in result.stderr
