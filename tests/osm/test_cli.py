"""`annotator prelabel` end to end on a real store: extract, loopback Overpass, failures, usage errors."""

from __future__ import annotations

from sqlalchemy import Engine, select

from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence
from tests.osm.conftest import KOTKA_PBF, add_pairs
from tests.osm.overpass_server import FakeOverpass

POINTS = [(60.52645, 26.95121), (60.52235, 26.93506), (60.53471, 26.94508), (60.5390, 26.9680)]


def _evidence(engine: Engine) -> dict[int, OsmEvidence]:
    with session_scope(engine) as session:
        return {e.pair_id: e for e in session.scalars(select(OsmEvidence))}


def test_help_has_an_example(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("prelabel", "--help")
    assert "Example" in result.stdout and "--osm-file" in result.stdout and "--user-agent" in result.stdout


def test_prelabel_from_extract(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    ids = add_pairs(engine, POINTS)
    result = cli("prelabel", "--osm-file", str(KOTKA_PBF))
    assert "4 pair(s) without evidence looked up" in result.stdout
    assert "farmland" in result.stdout and "sports land" in result.stdout and "no class" in result.stdout
    evidence = _evidence(engine)
    assert [evidence[i].label for i in ids] == ["farmland", "forest", "sports land", None]
    assert evidence[ids[0]].source == "kotka-2019.osm.pbf" and evidence[ids[0]].source_date is not None
    rerun = cli("prelabel", "--osm-file", str(KOTKA_PBF))
    assert "0 pair(s) without evidence looked up" in rerun.stdout
    assert len(_evidence(engine)) == len(ids)


def test_prelabel_from_overpass_with_user_agent(  # type: ignore[no-untyped-def]
    cli, engine: Engine, overpass_server: FakeOverpass
) -> None:
    ids = add_pairs(engine, POINTS)
    result = cli("prelabel", "--overpass-url", overpass_server.url, "--user-agent", "lab-x (a@b.org)")
    assert "1 request(s)" in result.stdout
    assert [r["user_agent"] for r in overpass_server.requests] == ["lab-x (a@b.org)"]
    assert _evidence(engine)[ids[0]].label == "farmland"
    again = cli("prelabel", "--overpass-url", overpass_server.url, "--user-agent", "lab-x (a@b.org)")
    assert "0 request(s)" in again.stdout and len(overpass_server.requests) == 1


def test_overpass_giving_up_exits_1_and_keeps_pairs_for_later(  # type: ignore[no-untyped-def]
    cli, engine: Engine, overpass_server: FakeOverpass
) -> None:
    add_pairs(engine, POINTS)
    overpass_server.fail_next("504")  # --retries 0: give up at once (the library tests cover the backoff)
    result = cli("prelabel", "--overpass-url", overpass_server.url, "--retries", "0", expect=1)
    assert "504" in result.stderr and "4 pair(s) were left without OSM evidence" in result.stderr
    assert "Traceback" not in result.output
    assert _evidence(engine) == {}
    cli("prelabel", "--overpass-url", overpass_server.url)
    assert len(_evidence(engine)) == len(POINTS)


def test_both_sources_is_a_usage_error(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    result = cli("prelabel", "--overpass-url", "http://x", "--osm-file", str(KOTKA_PBF), expect=2)
    assert "not both" in result.output


def test_missing_or_wrong_extract_is_a_clear_error(cli, engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    add_pairs(engine, POINTS[:1])
    result = cli("prelabel", "--osm-file", str(tmp_path / "nope.osm.pbf"), expect=2)
    assert "does not exist" in result.stderr
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"this is not a pbf file at all")
    result = cli("prelabel", "--osm-file", str(bad), expect=2)
    assert "cannot read OSM extract" in result.stderr
    assert _evidence(engine) == {}
