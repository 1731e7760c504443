"""Reviewer figures (annotator.reviewers): the maths against textbook values and the libraries, and the figures
of a store built through the models (tests/review/world.py), worked out by hand."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select

from annotator.review import refresh_final_labels
from annotator.reviewers import (
    cohen_kappa,
    krippendorff_alpha,
    newcombe_interval,
    reviewer_figures,
    wilson_interval,
)
from annotator.store.engine import session_scope
from annotator.store.models import Pair
from annotator.vocabulary import FinalReason
from tests.review.world import ALICE, BOB, CAROL, JUDGE, build

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the nominal example: 4 observers, 12 units
# (None: no value); nominal alpha = 0.743.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def test_alpha_on_krippendorffs_textbook_example():
    names = {1: "forest", 2: "lake", 3: "beach", 4: "harbour", 5: "airport"}  # nominal: the coding is arbitrary
    units = [
        {f"o{r}": names[row[u]] for r, row in enumerate(KRIPPENDORFF_2011) if row[u] is not None} for u in range(12)
    ]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    data = np.array([[np.nan if v is None else v for v in row] for row in KRIPPENDORFF_2011], dtype=float)
    assert krippendorff_alpha(units) == pytest.approx(krippendorff.alpha(data, level_of_measurement="nominal"))


def test_alpha_by_hand_and_undefined_cases():
    # Coincidences worked out by hand: n = 12 pairable values, 6 disagreeing ordered pairs, sum n_c^2 = 24:
    # alpha = 1 - (n - 1) * 6 / (n^2 - 24) = 1 - 66 / 120 = 0.45.
    units = [
        {"a": "F", "b": "F"},
        {"a": "L", "b": "Fa"},
        {"a": "B", "b": "B"},
        {"a": "H", "b": "L"},
        {"a": "F", "b": "G"},
        {"c": "R", "b": "R"},
        {"a": "F"},  # one rating: not pairable, no effect
    ]
    assert krippendorff_alpha(units) == pytest.approx(0.45)
    assert krippendorff_alpha([{"a": "F"}, {"b": "L"}]) is None  # nothing pairable
    assert krippendorff_alpha([{"a": "F", "b": "F"}, {"a": "F", "b": "F"}]) is None  # one value only: undefined


def test_kappa_by_hand_and_against_sklearn():
    a = ["F"] * 5 + ["L"] * 5
    b = ["F"] * 4 + ["L"] * 5 + ["F"]
    # p_o = 0.8, p_e = 0.5 * 0.5 + 0.5 * 0.5 = 0.5 → kappa = 0.3 / 0.5 = 0.6
    assert cohen_kappa(a, b) == pytest.approx(0.6)
    c = ["F", "L", "B", "H", "F"]
    d = ["F", "Fa", "B", "L", "G"]
    assert cohen_kappa(c, d) == pytest.approx(2 / 7)  # p_o = 0.4, p_e = 0.16
    assert cohen_kappa(c, d) == pytest.approx(cohen_kappa_score(c, d))
    assert cohen_kappa(["F"], ["F"]) is None  # one item
    assert cohen_kappa(["F", "F"], ["F", "F"]) is None  # p_e = 1: undefined


def test_wilson_and_newcombe_on_newcombes_published_examples():
    # Newcombe (1998), Statistics in Medicine 17: 857–872 — single proportions (method 3) and differences of
    # independent proportions (method 10).
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert newcombe_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=1e-4)
    assert wilson_interval(0, 0) is None and newcombe_interval(1, 2, 0, 0) is None


def test_figures_of_a_store_worked_out_by_hand(engine, backend):
    with session_scope(engine) as session:
        build(session)
    with session_scope(engine) as session:
        figures = reviewer_figures(session)
    by_name = {a.annotator: a for a in figures.annotators}
    assert sorted(by_name) == sorted([ALICE, BOB, CAROL, JUDGE])
    alice, bob, carol, judge = by_name[ALICE], by_name[BOB], by_name[CAROL], by_name[JUDGE]
    # alice: forest, lake, beach, harbour (the newest version), forest, and forest on control c5
    assert (alice.reviews, alice.skipped, alice.accepted, alice.corrected) == (6, 0, 4, 2)
    assert alice.accept_rate == pytest.approx(4 / 6)
    assert (alice.control_n, alice.control_accuracy) == (0, None)  # her only control is on a pair she reviewed
    assert alice.median_seconds == pytest.approx(35.0) and alice.timed == 6  # 10..60, the superseded 99 left out
    # bob (sloppy): accepts the OSM class but on c5; control c5 wrong, c6 right; his deleted r6 is not counted
    assert (bob.reviews, bob.accepted, bob.corrected) == (6, 5, 1)
    assert (bob.control_n, bob.control_correct) == (2, 1) and bob.control_accuracy == pytest.approx(0.5)
    assert bob.median_seconds == pytest.approx(2.0) and bob.timed == 5
    assert (carol.reviews, carol.skipped, carol.accept_rate) == (1, 1, 1.0)
    assert (judge.reviews, judge.accepted, judge.corrected) == (1, 0, 1)
    assert figures.control_excluded_own == 1

    (alice_bob, bob_carol) = figures.kappa  # alice and carol share no pair
    assert (alice_bob.first, alice_bob.second, alice_bob.shared, alice_bob.agreed) == (ALICE, BOB, 5, 2)
    assert alice_bob.kappa == pytest.approx(2 / 7)
    assert (bob_carol.first, bob_carol.second, bob_carol.shared, bob_carol.kappa) == (BOB, CAROL, 1, None)
    assert figures.alpha == pytest.approx(0.45) and figures.alpha_units == 6  # the units of the hand-worked alpha

    anchoring = figures.anchoring
    assert anchoring is not None
    assert (anchoring.preselected.successes, anchoring.preselected.n) == (6, 8)
    assert (anchoring.blind.successes, anchoring.blind.n) == (4, 5)
    assert anchoring.difference == pytest.approx(0.75 - 0.8)
    assert anchoring.difference_interval == pytest.approx(newcombe_interval(6, 8, 4, 5))
    payload = json.loads(json.dumps(figures.to_json()))
    assert payload["agreement"]["krippendorff_alpha"] == pytest.approx(0.45)
    assert payload["anchoring"]["blind"]["ci95"] == pytest.approx(list(wilson_interval(4, 5)))


def test_control_verdicts_never_vote(engine, backend):
    """Pair 5: alice forest on review + bob grassland on control → forest by a single review, no conflict;
    pair 6: carol residential + bob's control → still a single review; adjudicated pair 2 → lake by majority."""
    with session_scope(engine) as session:
        world = build(session)
    with session_scope(engine) as session:
        finals = {p.id: (p.final_label, p.final_reason) for p in session.scalars(select(Pair))}
        assert refresh_final_labels(session, world.pairs.values()) == 0  # stable
    p = world.pairs
    assert finals[p[5]] == ("forest", FinalReason.SINGLE_REVIEW)
    assert finals[p[6]] == ("residential", FinalReason.SINGLE_REVIEW)
    assert finals[p[2]] == ("lake", FinalReason.MAJORITY)
    assert finals[p[4]] == (None, FinalReason.CONFLICT)
    assert finals[p[1]] == ("forest", FinalReason.MAJORITY)


def test_no_reviews_no_figures(engine):
    with session_scope(engine) as session:
        figures = reviewer_figures(session)
    assert figures.annotators == [] and figures.alpha is None and figures.kappa == [] and figures.anchoring is None
