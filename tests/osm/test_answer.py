"""The checks an Overpass answer passes before it is used or cached, and the client's small parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from annotator.errors import OverpassRefused
from annotator.osm.answer import BadAnswer, element_problem, excerpt, parse_answer
from annotator.osm.overpass import OverpassClient, OverpassOptions, retry_after_seconds, url_problem

NODE = {"type": "node", "id": 1, "lat": 60.5, "lon": 26.9, "tags": {"railway": "station"}}
WAY = {"type": "way", "id": 2, "geometry": [{"lat": 60.5, "lon": 26.9}, None, {"lat": 60.6, "lon": 26.9}]}
RELATION = {"type": "relation", "id": 3, "members": [{"type": "way", "ref": 2, "role": "outer", **WAY}]}


def test_a_well_formed_answer_parses() -> None:
    body = json.dumps({"osm3s": {"timestamp_osm_base": "2019-04-15T00:00:00Z"}, "elements": [NODE, WAY, RELATION]})
    answer = parse_answer(body.encode())
    assert len(answer.elements) == 3 and answer.osm_base == "2019-04-15T00:00:00Z" and answer.remark is None


@pytest.mark.parametrize(
    ("element", "problem"),
    [
        ("x", "not an object"),
        ({"id": 1}, "'type'"),
        ({"type": "node", "id": "1"}, "'id'"),
        ({"type": "node", "id": True}, "'id'"),
        ({**NODE, "lat": "60.5"}, "'lat'"),
        ({**NODE, "lon": 200.0}, "'lon'"),
        ({**NODE, "lat": float("nan")}, "'lat'"),
        ({**NODE, "tags": {"a": 1}}, "'tags'"),
        ({**NODE, "timestamp": "yesterday"}, "'timestamp'"),
        ({**WAY, "geometry": "x"}, "'geometry'"),
        ({**WAY, "geometry": [{"lat": 1}]}, "'lon'"),
        ({**RELATION, "members": [{"type": "way", "geometry": [7]}]}, "geometry point"),
    ],
)
def test_a_malformed_element_is_named(element: object, problem: str) -> None:
    found = element_problem(element)
    assert found is not None and problem in found
    with pytest.raises(BadAnswer, match="element 1"):
        parse_answer(json.dumps({"elements": [NODE, element]}, allow_nan=True).encode())


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"{", "invalid JSON"), (b"\xff\xfe\x00", "invalid JSON"), (b"[]", "JSON array"), (b"{}", "'elements' is null")],
)
def test_a_malformed_answer_is_named(body: bytes, problem: str) -> None:
    with pytest.raises(BadAnswer, match=problem):
        parse_answer(body)


def test_excerpt_prefers_overpass_error_lines_and_is_short() -> None:
    page = b"<html><head><style>x{}</style></head><body><p>" + b"blah " * 500 + b"</p></body></html>"
    assert len(excerpt(page)) <= 160 and "<" not in excerpt(page) and "x{}" not in excerpt(page)
    error = b'<p><strong style="color:#FF0000">Error</strong>: line 1: parse error: bad</p>'
    assert excerpt(b"<p>intro</p>" + error) == "line 1: parse error: bad"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(format_datetime(datetime(2026, 1, 1, 0, 2, tzinfo=UTC), True), now=now) == 120.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


@pytest.mark.parametrize("url", ["not-a-url", "ftp://host/x", "http://", "http://host:99999/x", "http://h:port/x"])
def test_unusable_urls_are_named(url: str) -> None:
    problem = url_problem(url)
    assert problem is not None and ("not an http" in problem or "not a valid URL" in problem)


def test_password_is_redacted_in_url_problems_and_the_client_name() -> None:
    problem = url_problem("ftp://me:pw-secret@host/x")
    assert problem is not None and "pw-secret" not in problem
    client = OverpassClient(OverpassOptions(url="https://me:pw-secret@host/api/interpreter"))
    assert client.endpoint == "https://me:***@host/api/interpreter"
    with pytest.raises(OverpassRefused, match="not an http"):
        OverpassClient(OverpassOptions(url="not-a-url"))
