"""The fault-injection suite (issue 11): each test injects one fault and checks what the user gets.

A fault test takes the ``fault`` fixture. Its family is the module's name (``test_export_faults.py`` → ``export``),
its case the test's id (override with ``fault.case = "…"``); a test that counts rows the fault cost calls
``fault.lost(n)`` before asserting ``n == 0``, so the table shows the figure even when the test fails.
With ``ANNOTATOR_FAULT_LOG`` set (``bench/faults.py`` sets it), every fault test appends one JSON line there:
family, case, survived (the test passed), rows_lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV_LOG = "ANNOTATOR_FAULT_LOG"


@dataclass
class Fault:
    """One injected fault: its family, its case and how many rows it cost."""

    family: str
    case: str
    rows_lost: int = 0

    def lost(self, n: int) -> None:
        """Count `n` good rows (recordings, pairs, reviews, files) the fault cost."""
        self.rows_lost += n


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.stash[_OUTCOME] = report.passed
    return report


_OUTCOME = pytest.StashKey[bool]()


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Iterator[Fault]:
    module = Path(str(request.node.path)).stem
    family = module.removeprefix("test_").removesuffix("_faults")
    record = Fault(family=family, case=request.node.name.removeprefix("test_"))
    yield record
    log = os.environ.get(ENV_LOG)
    if log:
        survived = request.node.stash.get(_OUTCOME, False)
        line = {"family": record.family, "case": record.case, "survived": survived, "rows_lost": record.rows_lost}
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
