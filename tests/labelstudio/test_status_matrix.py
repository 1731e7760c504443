"""`annotator status` in an 80-column terminal: the correction matrix by class codes with a legend naming every
class in full, the reviewers' figures, and no line wider than the terminal (issue 14)."""

from __future__ import annotations

import json

import pytest

from annotator.cli.status import class_code
from annotator.store.engine import session_scope
from annotator.vocabulary import CLASS_ORDER, Verdict
from tests.review.world import ALICE, BOB, add_corrections, build

NAMES = [c.value for c in CLASS_ORDER] + [Verdict.UNUSABLE.value, "none"]


def test_class_codes_are_unique():
    assert len({class_code(n) for n in NAMES}) == len(NAMES)


def test_status_fits_80_columns_and_names_every_class(cli, engine, backend):
    with session_scope(engine) as session:
        build(session)
        add_corrections(session)
    out = cli("status", env={"COLUMNS": "80"}).stdout
    too_long = [line for line in out.splitlines() if len(line) > 80]
    assert too_long == []
    assert "OSM label (rows)" in out and "Legend:" in out
    legend = out[out.index("Legend:") :]
    for name in NAMES:
        assert f"{class_code(name)} = {name}" in " ".join(legend.split())  # wrapped lines joined back
    for expected in (ALICE, BOB, "Krippendorff's alpha", "0.450", "Anchoring", "Newcombe"):
        assert expected in out
    payload = json.loads(cli("status", "--json").stdout)
    assert payload["reviewers"]["agreement"]["krippendorff_alpha"] == pytest.approx(0.45)
    assert {a["annotator"] for a in payload["reviewers"]["annotators"]} >= {ALICE, BOB}


def test_status_narrower_than_the_matrix_lists_cells(cli, engine):
    with session_scope(engine) as session:
        add_corrections(session)
    out = cli("status", env={"COLUMNS": "50"}).stdout
    assert "OSM label → human final label" in out  # the long form: one line per cell, full names
    assert "sparse shrub land" in out and "train station" in out
    assert [line for line in out.splitlines() if len(line) > 50] == []
