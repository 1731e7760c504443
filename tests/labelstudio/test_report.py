"""`annotator report OUT.html`: one self-contained page with every class, annotator and agreement figure (issue 14).

The store is written through the models (tests/review/world.py): the report reads the store only, so no Label
Studio server is needed here (pulling reviews is tested in test_pull_review_quality.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from annotator.report import collect_report
from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence, Pair, RankRun, RankScore
from annotator.vocabulary import CLASS_ORDER, LabelSource, SceneClass, Verdict
from tests.review.world import ALICE, BOB, CAROL, JUDGE, add_corrections, build


class _Page(HTMLParser):
    """Collects the page's text, its tags and every attribute that could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.refs: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [f"{k}={v}" for k, v in attrs if k in ("src", "href", "xlink:href", "srcset", "action")]

    def handle_data(self, data):
        self.text.append(data)


def _rank_run(session, pair_ids: list[int]) -> int:
    run = RankRun(params={"seed": 0}, counts={}, model={})
    session.add(run)
    session.flush()
    for rank, pair_id in enumerate(pair_ids, start=1):
        osm = session.scalar(select(OsmEvidence.label).where(OsmEvidence.pair_id == pair_id))
        session.add(
            RankScore(
                run_id=run.id,
                pair_id=pair_id,
                current_label=osm,
                label_origin=LabelSource.OSM,
                suggested_label=SceneClass.LAKE.value,
                suggested_p=0.6,
                suspicion=0.9 if rank % 2 else 0.1,
                fold=0,
                rank=rank,
            )
        )
    return run.id


def test_report_is_one_self_contained_page(cli, engine, tmp_path, backend):
    with session_scope(engine) as session:
        world = build(session)
        add_corrections(session)
        run_id = _rank_run(session, sorted(world.pairs.values()))
    out = tmp_path / "deep" / "report.html"  # a missing folder is made
    summary = json.loads(cli("report", str(out), "--json").stdout)
    assert summary["path"] == str(out) and summary["bytes"] == out.stat().st_size
    assert summary["sections"][-1] == "rank"
    assert summary["status"]["reviewers"]["agreement"]["krippendorff_alpha"] == pytest.approx(0.45)

    html = out.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    page.close()
    text = " ".join(" ".join(page.text).split())
    assert html.startswith("<!DOCTYPE html>") and "svg" in page.tags and "style" in page.tags
    assert not re.search(r"https?://", html, re.IGNORECASE) and page.refs == []  # nothing loads from anywhere
    for name in [c.value for c in CLASS_ORDER] + [Verdict.UNUSABLE.value]:
        assert f">{name}</text>" in html  # in full, on the heatmap's axes
    for who in (ALICE, BOB, CAROL, JUDGE):
        assert who in text
    assert "0.450" in text and "Krippendorff" in text and "0.29" in text  # alpha, and alice × bob's kappa (2/7)
    assert "pre-selected" in text and "75%" in text and "80%" in text and "Newcombe" in text
    assert f"Rank run #{run_id}" in text and "The ranking's measured precision" in text
    assert "Corrections by OSM edit age" in text and "10+ years" in text

    again = cli("report", str(out))  # replaced in place; the summary names the file
    assert str(out) in again.stdout and "alpha 0.450" in again.stdout


def test_corrections_by_edit_age(engine):
    with session_scope(engine) as session:
        build(session)
    with session_scope(engine) as session:
        data = collect_report(session, now=datetime(2026, 11, 1, tzinfo=UTC))
        decided = session.scalar(select(Pair.id).where(Pair.final_reason.is_not(None)))
        assert decided is not None
    bins = {b.label: (b.accepted, b.corrected, b.unusable) for b in data.edit_age}
    # pairs 1–6 were last edited in 2024, 2012, 2021, 2010 (a conflict: not decided), 2019 and 2025
    assert bins == {
        "0–1 years": (0, 0, 0),
        "1–2 years": (1, 0, 0),
        "2–5 years": (1, 0, 0),
        "5–10 years": (2, 0, 0),
        "10+ years": (0, 1, 0),
    }
    assert data.edit_age[-1].correction.value == 1.0 and data.edit_age[0].correction.value is None


def test_report_of_an_empty_store_and_bad_paths(cli, engine, tmp_path):
    out = tmp_path / "empty.html"
    cli("report", str(out))
    html = out.read_text(encoding="utf-8")
    assert "No review pulled yet." in html and not re.search(r"https?://", html)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = cli("report", str(blocker / "report.html"), expect=1)
    assert bad.stderr.startswith("Error: cannot write the report to") and "Traceback" not in bad.output
    assert len(bad.stderr.strip().splitlines()) == 1
    folder = cli("report", str(tmp_path), expect=1)
    assert "is a folder" in folder.stderr
    assert "Example: annotator report" in cli("report", "--help").stdout
