"""Overpass faults (issue 11, item 4 and the Overpass half of item 8): a loopback Overpass that misbehaves on
command, driven through `annotator prelabel` as a user would run it.

Every case checks what the user gets: exit 1 (or 2 for a bad flag), one sentence on stderr naming the problem, no
traceback, no password, pairs answered before the fault kept and the rest left for the next run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import Engine, func, select

from annotator.osm.overpass import MAX_BODY_BYTES, OverpassClient, OverpassOptions
from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence, OsmResponse
from tests.conftest import Cli
from tests.faults.conftest import Fault
from tests.faults.fake_overpass import ELEMENTS, farmland
from tests.osm.conftest import add_pairs
from tests.osm.overpass_server import FakeOverpass, OverpassData

#: Two cells of 1 km apart: the first cluster is answered before the scripted fault hits the second.
FIRST = [(60.5210, 26.9310), (60.5215, 26.9320)]
SECOND = [(60.5410, 26.9710), (60.5415, 26.9720)]
FAST = ["--retries", "0", "--cell-km", "1"]


@pytest.fixture(scope="module")
def small_data() -> OverpassData:
    return OverpassData(ELEMENTS)


@pytest.fixture
def server(small_data: OverpassData) -> Iterator[FakeOverpass]:
    fake = FakeOverpass(small_data, stall_s=10.0).start()
    yield fake
    fake.stop()


def evidence_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(OsmEvidence)) or 0)


def assert_one_clear_error(output: str, *needles: str) -> None:
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], errors[0]


def run_with_fault_on_second_cluster(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault, mode: str) -> str:
    """Prelabel two clusters, the second answered with `mode`; check the first is kept. Returns stderr."""
    add_pairs(engine, FIRST + SECOND)
    server.fail_next("ok", mode)
    result = cli("prelabel", "--overpass-url", server.url, *FAST, expect=1)
    kept = evidence_count(engine)
    fault.lost(len(FIRST) - kept)
    assert kept == len(FIRST)
    assert "2 pair(s) were left without OSM evidence" in result.stderr
    server.script.clear()  # the server recovers: the next run finishes the job
    cli("prelabel", "--overpass-url", server.url, *FAST)
    assert evidence_count(engine) == len(FIRST + SECOND)
    return result.stdout + result.stderr


def test_invalid_json(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, "invalid-json")
    assert_one_clear_error(output, "invalid JSON")


def test_json_array(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, "json-array")
    assert_one_clear_error(output, "JSON array", "elements")


def test_elements_not_a_list(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, "elements-string")
    assert_one_clear_error(output, "'elements'")


def test_element_without_id(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, "element-without-id")
    assert_one_clear_error(output, "element 0", "'id'")


def test_lat_as_a_string(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, "lat-string")
    assert_one_clear_error(output, "element 0", "'lat'")
    with session_scope(engine) as session:  # a malformed answer is never cached
        assert session.scalar(select(func.count()).select_from(OsmResponse)) == 2


def test_html_page_instead_of_json_is_cut_short(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, "html-200")
    assert_one_clear_error(output, "text/html", "not JSON")
    assert len(output) < 2000


def test_html_page_labelled_json_is_cut_short(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, "html-as-json")
    assert_one_clear_error(output, "invalid JSON", "<?xml")
    assert len(output) < 2000


def test_html_400_page_is_cut_to_the_error(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, "html-400")
    assert_one_clear_error(output, 'parse error: Unknown type "nwx"')
    assert len(output) < 2000


def test_connection_reset_during_the_body_is_retried(
    cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault
) -> None:
    # Through the CLI, with its real 15 s backoff, to see the wait announced on stderr.
    add_pairs(engine, FIRST)
    server.fail_next("reset-during-body")
    result = cli("prelabel", "--overpass-url", server.url, "--retries", "1", expect=0)
    assert "Traceback" not in result.stdout + result.stderr
    assert "connection was reset after" in result.stderr and "retrying in 15 s" in result.stderr  # said, not silent
    assert len(server.requests) == 2
    kept = evidence_count(engine)
    fault.lost(len(FIRST) - kept)
    assert kept == len(FIRST)


def test_connection_reset_before_the_body_is_retried(server: FakeOverpass, fault: Fault) -> None:
    server.fail_next("reset-before-body", "reset-before-body")
    sleeps: list[float] = []
    said: list[str] = []
    options = OverpassOptions(url=server.url, backoff_s=0.25, sleep=sleeps.append, notify=said.append)
    _, answer = OverpassClient(options).fetch("[out:json];node(1);out;")
    assert answer.elements == [] and len(server.requests) == 3
    assert sleeps == [0.25, 0.5] and all("reset before any answer" in line for line in said)


@pytest.mark.parametrize("mode", ["reset-before-body", "reset-during-body"])
def test_connection_reset_storm_is_a_clear_error(
    cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault, mode: str
) -> None:
    output = run_with_fault_on_second_cluster(cli, engine, server, fault, mode)
    assert_one_clear_error(output, "reset")


def test_not_a_url_names_the_flag(cli: Cli, engine: Engine, fault: Fault) -> None:
    add_pairs(engine, FIRST)
    result = cli("prelabel", "--overpass-url", "not-a-url", expect=2)
    assert "Traceback" not in result.output
    assert "--overpass-url" in result.output and "not-a-url" in result.output and "http" in result.output
    assert evidence_count(engine) == 0


def test_dripping_server_does_not_outlive_the_timeout(
    cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault
) -> None:
    add_pairs(engine, FIRST)
    server.fail_next("drip")
    started = time.monotonic()
    result = cli("prelabel", "--overpass-url", server.url, "--timeout-s", "3", "--retries", "0", expect=1)
    elapsed = time.monotonic() - started
    assert elapsed < 8.0, f"took {elapsed:.1f} s with --timeout-s 3"
    assert_one_clear_error(result.stdout + result.stderr, "no answer within 3 s")


def test_body_over_the_size_cap_is_refused(engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    assert MAX_BODY_BYTES >= 256 * 1024 * 1024  # an 8 km cell of a city is tens of MB: the cap leaves room
    server.big_body = json.dumps({"elements": [], "pad": "x" * 200_000}).encode()
    server.fail_next("big")
    client = OverpassClient(OverpassOptions(url=server.url, max_body_bytes=100_000, sleep=lambda s: None))
    from annotator.errors import OverpassRefused

    with pytest.raises(OverpassRefused, match="larger than 0.1 MB"):
        client.fetch("[out:json];node(1);out;")


def test_big_answer_is_read_and_parsed_once(server: FakeOverpass, fault: Fault) -> None:
    # 25.6 MB of real-shaped elements: overpy's chunk concatenation took 53 s; a plain read takes well under 1 s
    elements = [farmland(i, 60.50, 26.90, 60.53 + i * 1e-7, 26.95) for i in range(1, 91_000)]
    server.big_body = json.dumps({"version": 0.6, "elements": elements}).encode()
    assert len(server.big_body) > 25_600_000
    server.fail_next("big")
    client = OverpassClient(OverpassOptions(url=server.url, sleep=lambda s: None))
    started = time.monotonic()
    body, answer = client.fetch("[out:json];node(1);out;")
    elapsed = time.monotonic() - started
    assert len(answer.elements) == len(elements) and body == server.big_body
    assert elapsed < 20.0, f"a 25.6 MB answer took {elapsed:.1f} s"


def test_json_with_charset_is_accepted(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    add_pairs(engine, FIRST)
    server.fail_next("charset")
    result = cli("prelabel", "--overpass-url", server.url, "--retries", "0")
    assert "Traceback" not in result.output
    kept = evidence_count(engine)
    fault.lost(len(FIRST) - kept)
    assert kept == len(FIRST)


@pytest.mark.parametrize("retry_after", ["seconds", "http-date"])
def test_retry_after_is_honoured_and_said(server: FakeOverpass, fault: Fault, retry_after: str) -> None:
    value = "120" if retry_after == "seconds" else format_datetime(datetime.now(UTC) + timedelta(seconds=120), True)
    server.fail_next(f"429 retry-after={value}")
    sleeps: list[float] = []
    said: list[str] = []
    options = OverpassOptions(url=server.url, min_429_wait_s=0.5, sleep=sleeps.append, notify=said.append)
    OverpassClient(options).fetch("[out:json];node(1);out;")
    assert len(sleeps) == 1 and 110 <= sleeps[0] <= 121
    assert len(said) == 1 and "429" in said[0] and f"{sleeps[0]:.0f} s" in said[0]


def test_constant_429_gives_up_keeping_pairs_done(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    # The CLI with its real politeness would wait 30 s and more per 429: the library call shrinks the waits.
    from annotator.osm.prelabel import OverpassSource, prelabel_pairs
    from annotator.store.engine import unit_of_work

    add_pairs(engine, FIRST + SECOND)
    server.fail_next("ok", *["429 retry-after=1"] * 20)
    said: list[str] = []
    options = OverpassOptions(url=server.url, min_429_wait_s=0.01, sleep=lambda s: None, notify=said.append)
    with unit_of_work(engine) as work:
        report = prelabel_pairs(work, OverpassSource(OverpassClient(options)), cell_km=1.0)
    kept = evidence_count(engine)
    fault.lost(len(FIRST) - kept)
    assert kept == len(FIRST) and report.left_unlabelled == len(SECOND)
    assert report.error is not None and "429" in report.error
    assert len(server.requests) == 1 + options.max_429_attempts  # bounded
    assert len(said) == options.max_429_attempts - 1 and all("waiting" in line for line in said)


def test_password_in_the_url_is_never_echoed(cli: Cli, engine: Engine, server: FakeOverpass, fault: Fault) -> None:
    add_pairs(engine, FIRST + SECOND)
    url = server.url.replace("http://", "http://curator:s3cret-pw@")
    server.fail_next("ok", "html-400")
    result = cli("prelabel", "--overpass-url", url, *FAST, expect=1)
    assert "s3cret-pw" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    with session_scope(engine) as session:
        sources = {e.source for e in session.scalars(select(OsmEvidence))}
        endpoints = {r.endpoint for r in session.scalars(select(OsmResponse))}
    assert sources and endpoints and not any("s3cret-pw" in s for s in sources | endpoints)
    bad = cli("prelabel", "--overpass-url", "ftp://curator:s3cret-pw@x", expect=2)
    assert "s3cret-pw" not in bad.output
