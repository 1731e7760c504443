"""The Overpass path against a loopback server answering from the real Kotka data, and its agreement with the
extract path. Waits are shrunk through OverpassOptions (the defaults keep the operators' 30 s after a 429)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from annotator.errors import OverpassRefused
from annotator.osm.overpass import DEFAULT_USER_AGENT, OverpassClient, OverpassOptions
from annotator.osm.prelabel import ExtractSource, FeatureSource, OverpassSource, PrelabelReport, prelabel_pairs
from annotator.store.engine import session_scope, unit_of_work
from annotator.store.models import OsmEvidence, OsmResponse
from tests.osm.conftest import KOTKA_PBF, add_pairs
from tests.osm.overpass_server import FakeOverpass

UA = "annotator-tests/1.0 (tests@example.org)"
# A cluster of nearby points (within ~600 m) in Kotka: farmland, wood, scrub, meadow, bridge.
CLUSTER = [(60.52645, 26.95121), (60.52235, 26.93506), (60.52335, 26.93400), (60.52587, 26.93620), (60.52231, 26.94778)]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _client(server: FakeOverpass, sleeps: Sleeps | None = None, **overrides: float) -> OverpassClient:
    options = OverpassOptions(
        url=server.url,
        user_agent=UA,
        timeout_s=5.0,
        min_429_wait_s=0.5,
        backoff_s=0.25,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    for key, value in overrides.items():
        setattr(options, key, value)
    return OverpassClient(options)


def _prelabel(engine: Engine, source: FeatureSource, **options: Any) -> PrelabelReport:
    with unit_of_work(engine) as work:
        return prelabel_pairs(work, source, **options)


def _labels(engine: Engine) -> dict[int, str | None]:
    with session_scope(engine) as session:
        return {e.pair_id: e.label for e in session.scalars(select(OsmEvidence))}


def test_cluster_is_one_request_and_rerun_is_zero(engine: Engine, overpass_server: FakeOverpass) -> None:
    ids = add_pairs(engine, CLUSTER)
    report = _prelabel(engine, OverpassSource(_client(overpass_server)))
    assert report.requests == 1 and len(overpass_server.requests) == 1
    assert report.labelled == len(CLUSTER)
    labels = _labels(engine)
    assert [labels[i] for i in ids] == ["farmland", "forest", "sparse shrub land", "grassland", "bridge"]
    with session_scope(engine) as session:
        evidence = session.scalars(select(OsmEvidence).where(OsmEvidence.pair_id == ids[0])).one()
        assert evidence.source == overpass_server.url and evidence.source_date == "2019-04-15T00:00:00Z"
        assert evidence.elements[0]["id"] == 106232399 and evidence.elements[0]["tags"]["landuse"] == "farmland"
        assert evidence.last_edit_at is not None and evidence.coverage["farmland"] > 0.5
        assert session.scalar(select(func.count()).select_from(OsmResponse)) == 1

    again = _prelabel(engine, OverpassSource(_client(overpass_server)))
    assert again.requests == 0 and again.pairs_todo == 0 and len(overpass_server.requests) == 1


def test_forced_rerun_is_answered_from_the_cache(engine: Engine, overpass_server: FakeOverpass) -> None:
    add_pairs(engine, CLUSTER)
    _prelabel(engine, OverpassSource(_client(overpass_server)))
    source = OverpassSource(_client(overpass_server))
    report = _prelabel(engine, source, force=True)
    assert report.requests == 0 and report.cache_hits == 1 and report.labelled == len(CLUSTER)
    assert len(overpass_server.requests) == 1


def test_server_sees_the_configured_user_agent_and_a_json_query(engine: Engine, overpass_server: FakeOverpass) -> None:
    add_pairs(engine, CLUSTER[:1])
    _prelabel(engine, OverpassSource(_client(overpass_server)))
    [request] = overpass_server.requests
    assert request["user_agent"] == UA
    assert request["query"].startswith("[out:json]") and "out meta geom;" in request["query"]


def test_default_user_agent_names_the_tool_not_urllib() -> None:
    assert DEFAULT_USER_AGENT.startswith("annotator/") and "Python-urllib" not in DEFAULT_USER_AGENT


def test_429_waits_then_succeeds(engine: Engine, overpass_server: FakeOverpass) -> None:
    add_pairs(engine, CLUSTER)
    overpass_server.fail_next("429", "429")
    sleeps = Sleeps()
    report = _prelabel(engine, OverpassSource(_client(overpass_server, sleeps)))
    assert report.error is None and report.labelled == len(CLUSTER) and report.requests == 3
    assert sleeps == [0.5, 1.0]  # at least min_429_wait_s, then exponential


def test_default_429_wait_is_at_least_30_seconds(overpass_server: FakeOverpass) -> None:
    overpass_server.fail_next("429")
    sleeps = Sleeps()
    client = OverpassClient(OverpassOptions(url=overpass_server.url, user_agent=UA, sleep=sleeps))
    client.fetch("[out:json];node(1);out;")
    assert sleeps == [30.0]


def test_504_storm_gives_up_and_leaves_pairs_unlabelled(engine: Engine, overpass_server: FakeOverpass) -> None:
    ids = add_pairs(engine, CLUSTER)
    overpass_server.fail_next(*["504"] * 10)
    sleeps = Sleeps()
    report = _prelabel(engine, OverpassSource(_client(overpass_server, sleeps, max_attempts=3)))
    assert report.requests == 3 and sleeps == [0.25, 0.5]
    assert report.left_unlabelled == len(ids) and report.labelled == 0
    assert report.error is not None and "504" in report.error and "rerun" in report.error
    assert _labels(engine) == {}
    overpass_server.script.clear()  # the server recovers: the next run does the work
    assert _prelabel(engine, OverpassSource(_client(overpass_server))).labelled == len(ids)


def test_runtime_remark_is_retried(engine: Engine, overpass_server: FakeOverpass) -> None:
    add_pairs(engine, CLUSTER)
    overpass_server.fail_next("remark")
    report = _prelabel(engine, OverpassSource(_client(overpass_server)))
    assert report.error is None and report.requests == 2 and report.labelled == len(CLUSTER)


def test_runtime_remark_storm_names_the_remark(overpass_server: FakeOverpass) -> None:
    overpass_server.fail_next("remark", "remark")
    with pytest.raises(OverpassRefused, match="runtime error: Query timed out"):
        _client(overpass_server, max_attempts=2).fetch("[out:json];node(1);out;")


def test_stalled_server_times_out_and_is_retried(engine: Engine, overpass_server: FakeOverpass) -> None:
    add_pairs(engine, CLUSTER)
    overpass_server.fail_next("stall")
    report = _prelabel(engine, OverpassSource(_client(overpass_server, timeout_s=0.5)))
    assert report.error is None and report.requests == 2 and report.labelled == len(CLUSTER)


def test_stalled_server_storm_gives_up_with_timeout_message(overpass_server: FakeOverpass) -> None:
    overpass_server.fail_next("stall", "stall")
    with pytest.raises(OverpassRefused, match="no answer within 0.3 s"):
        _client(overpass_server, timeout_s=0.3, max_attempts=2).fetch("[out:json];node(1);out;")


def test_unreachable_server_is_a_clear_error() -> None:
    client = OverpassClient(OverpassOptions(url="http://127.0.0.1:9/api/interpreter", timeout_s=2.0))
    with pytest.raises(OverpassRefused, match="cannot reach"):
        client.fetch("[out:json];node(1);out;")


def test_overpass_and_extract_paths_agree_on_a_grid(  # type: ignore[no-untyped-def]
    engine: Engine, overpass_server: FakeOverpass, tmp_path
) -> None:
    # 15 x 15 points over the whole extract (26.93-26.97 E, 60.52-60.54 N), in 1 km cells: several clusters
    grid = [(60.5205 + 0.019 * i / 14, 26.9305 + 0.039 * j / 14) for i in range(15) for j in range(15)]
    grid += CLUSTER
    add_pairs(engine, grid)
    report = _prelabel(engine, OverpassSource(_client(overpass_server)), cell_km=1.0)
    assert report.error is None and report.requests == report.clusters > 1
    with session_scope(engine) as session:
        via_overpass = {
            e.pair_id: (e.label, e.coverage, [x["id"] for x in e.elements])
            for e in session.scalars(select(OsmEvidence))
        }
    _prelabel(engine, ExtractSource(KOTKA_PBF), force=True)
    with session_scope(engine) as session:
        via_extract = {
            e.pair_id: (e.label, e.coverage, [x["id"] for x in e.elements])
            for e in session.scalars(select(OsmEvidence))
        }
    assert len(via_overpass) == len(grid) == len(via_extract)
    assert via_overpass == via_extract
    labels = {v[0] for v in via_extract.values()}
    assert {"farmland", "forest", "residential", "bridge", None} <= labels  # several outcomes exercised


def test_polygon_enclosing_the_whole_query_box_is_found(engine: Engine, overpass_server: FakeOverpass) -> None:
    # Deep inside the 56 ha field: with a 10 m reach the query box has no segment of the field in it, so a bbox
    # query alone would miss it; the is_in part of the query finds it, as on a real server.
    from annotator.osm.decide import DecisionOptions

    [pair_id] = add_pairs(engine, [(60.529, 26.946)])
    options = DecisionOptions(radius_m=10.0, station_context_m=10.0)
    report = _prelabel(engine, OverpassSource(_client(overpass_server)), options=options)
    assert report.labelled == 1 and _labels(engine)[pair_id] == "farmland"
    assert "is_in(60.529000,26.946000);" in overpass_server.requests[0]["query"]
