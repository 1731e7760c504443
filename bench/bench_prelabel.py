"""Benchmark OSM pre-labelling at ADVANCE scale: 5,075 points clustered around 30 towns.

Real OSM geometry exists here only for one small town (the Kotka 2019 extract in tests/osm/data, 2.2 km across),
so every "town" is a copy of Kotka shifted to its own place (a 6 × 5 grid of towns 1° apart, 50–55° N, 5–25° E,
ids offset per copy) and its points are spread uniformly over that copy, as ADVANCE's recordings cluster in and
around towns. Both sources see the same shifted data:

- Overpass: the loopback server of tests/osm (real protocol, bbox + is_in evaluation) with 200 ms latency added
  to every request;
- --osm-file: an .osm.pbf of the same 30 shifted copies written with pyosmium.

Prints requests made, points per request, wall times, and the agreement of the two paths.

With ``--big-answer-mb 25.6`` it measures only reading and parsing one large valid answer from the loopback
server (issue 11): the way the client did it through overpy (4 KiB chunks concatenated one at a time, then
``json.loads`` twice) against the client now (chunks joined once, one ``json.loads``, the shape checked).

Usage: .venv/bin/python bench/bench_prelabel.py [--points 5075] [--towns 30] [--latency-ms 200] [--cell-km 8]
       .venv/bin/python bench/bench_prelabel.py --big-answer-mb 25.6 [--skip-overpy]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import osmium  # noqa: E402
from sqlalchemy import Engine, select  # noqa: E402

from annotator.config import resolve_store  # noqa: E402
from annotator.osm.overpass import OverpassClient, OverpassOptions  # noqa: E402
from annotator.osm.prelabel import ExtractSource, FeatureSource, OverpassSource, PrelabelReport, prelabel_pairs  # noqa: E402
from annotator.store import open_store, upgrade_to_head  # noqa: E402
from annotator.store.engine import session_scope, unit_of_work  # noqa: E402
from annotator.store.models import OsmEvidence, Pair, Recording  # noqa: E402
from annotator.vocabulary import RecordingSource, RecordingStatus  # noqa: E402
from tests.osm.data.generate_overpass import overpass_elements, shifted  # noqa: E402
from tests.osm.overpass_server import FakeOverpass, OverpassData  # noqa: E402

KOTKA = ROOT / "tests" / "osm" / "data" / "kotka-2019.osm.pbf"
KOTKA_LAT, KOTKA_LON = 60.52, 26.93  # south-west corner of the extract
EXTENT = (0.0195, 0.039)  # lat, lon span of the extract
ID_STEP = 10_000_000_000


def town_shifts(towns: int) -> list[tuple[float, float]]:
    """(dlat, dlon) moving Kotka to each town of a grid 1° apart starting at 50° N, 5° E."""
    return [(50.0 + (i // 6) - KOTKA_LAT, 5.0 + 4.0 * (i % 6) - KOTKA_LON) for i in range(towns)]


def write_shifted_pbf(out: Path, shifts: list[tuple[float, float]]) -> None:
    writer = osmium.SimpleWriter(str(out))
    try:
        for kind in ("n", "w", "r"):  # pbf order: all nodes, then ways, then relations
            for town, (dlat, dlon) in enumerate(shifts):
                offset = (town + 1) * ID_STEP
                for obj in osmium.FileProcessor(str(KOTKA)):
                    if obj.type_str() != kind:
                        continue
                    if kind == "n":
                        loc = obj.location
                        writer.add_node(obj.replace(id=obj.id + offset, location=(loc.lon + dlon, loc.lat + dlat)))
                    elif kind == "w":
                        writer.add_way(obj.replace(id=obj.id + offset, nodes=[n.ref + offset for n in obj.nodes]))
                    else:
                        members = [(m.type, m.ref + offset, m.role) for m in obj.members]
                        writer.add_relation(obj.replace(id=obj.id + offset, members=members))
    finally:
        writer.close()


def make_store(db: Path, shifts: list[tuple[float, float]], points: int, seed: int):  # type: ignore[no-untyped-def]
    engine = open_store(resolve_store(str(db), db.parent / "media"), create=True)
    upgrade_to_head(engine)
    rng = random.Random(seed)
    with session_scope(engine) as session:
        for n in range(points):
            dlat, dlon = shifts[n % len(shifts)]
            lat = KOTKA_LAT + dlat + rng.uniform(0.1, 0.9) * EXTENT[0]
            lon = KOTKA_LON + dlon + rng.uniform(0.1, 0.9) * EXTENT[1]
            recording = Recording(
                source=RecordingSource.MANIFEST,
                source_id=str(n),
                lat=lat,
                lon=lon,
                original_path=f"{n}.wav",
                sha256="0" * 64,
                sample_rate=22050,
                channels=1,
                frames=1,
                duration_s=10.0,
                status=RecordingStatus.ACCEPTED,
            )
            session.add(Pair(recording=recording, lat=lat, lon=lon))
    return engine


def prelabel(engine: Engine, source: FeatureSource, cell_km: float) -> PrelabelReport:
    with unit_of_work(engine) as work:
        return prelabel_pairs(work, source, cell_km=cell_km)


def labels(engine) -> dict[int, str | None]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return {e.pair_id: e.label for e in session.scalars(select(OsmEvidence))}


def big_answer(megabytes: float) -> bytes:
    """A valid ``out meta geom`` answer of at least `megabytes` MB: copies of Kotka, ids offset per copy."""
    base = overpass_elements(KOTKA)
    elements: list[dict] = []  # type: ignore[type-arg]
    size, copy = 0, 0
    per_copy = len(json.dumps(base))
    while size < megabytes * 1e6:
        copy += 1
        elements += shifted(base, 0.0, 0.0, copy * ID_STEP)
        size += per_copy
    return json.dumps(
        {"version": 0.6, "osm3s": {"timestamp_osm_base": "2019-04-15T00:00:00Z"}, "elements": elements}
    ).encode()


def overpy_read(url: str, query: str) -> int:
    """What the client did before issue 11: overpy's read loop, then json.loads in parse_json and again later."""
    import urllib.request

    import overpy

    class RawOverpass(overpy.Overpass):  # as annotator/osm/overpass.py had it
        raw: bytes = b""

        def parse_json(self, data, encoding="utf-8"):  # type: ignore[no-untyped-def]
            self.raw = data if isinstance(data, bytes) else data.encode(encoding)
            return json.loads(self.raw)

    api = RawOverpass(url=urllib.request.Request(url, headers={"User-Agent": "bench"}), max_retry_count=0)
    api.query(query)
    return len(json.loads(api.raw)["elements"])


def bench_big_answer(megabytes: float, skip_overpy: bool) -> None:
    body = big_answer(megabytes)
    server = FakeOverpass(OverpassData([])).start()
    server.big_body = body
    query = "[out:json];node(1);out;"
    try:
        t0 = time.perf_counter()
        json.loads(body)
        print(f"answer: {len(body) / 1e6:.1f} MB; json.loads alone {time.perf_counter() - t0:.2f} s")
        server.fail_next("big")
        client = OverpassClient(OverpassOptions(url=server.url, user_agent="annotator-bench/1.0"))
        t0 = time.perf_counter()
        _, answer = client.fetch(query)
        print(
            f"client now (read once, parse once, shape checked): {time.perf_counter() - t0:.2f} s, "
            f"{len(answer.elements)} elements"
        )
        if not skip_overpy:
            server.fail_next("big")
            t0 = time.perf_counter()
            count = overpy_read(server.url, query)
            print(
                f"before (overpy chunk concatenation, two json.loads): {time.perf_counter() - t0:.2f} s, "
                f"{count} elements"
            )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="OSM pre-labelling benchmark")
    parser.add_argument("--points", type=int, default=5075)
    parser.add_argument("--towns", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--cell-km", type=float, default=8.0)
    parser.add_argument("--big-answer-mb", type=float, default=None, help="only time reading one answer this big")
    parser.add_argument("--skip-overpy", action="store_true", help="with --big-answer-mb: skip the slow old path")
    args = parser.parse_args()
    if args.big_answer_mb:
        bench_big_answer(args.big_answer_mb, args.skip_overpy)
        return
    shifts = town_shifts(args.towns)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        base = overpass_elements(KOTKA)
        elements = []
        for town, (dlat, dlon) in enumerate(shifts):
            elements += shifted(base, dlat, dlon, (town + 1) * ID_STEP)
        server = FakeOverpass(OverpassData(elements), latency_s=args.latency_ms / 1000).start()
        pbf = tmp / "towns.osm.pbf"
        write_shifted_pbf(pbf, shifts)
        print(
            f"setup: {len(elements)} elements in {args.towns} towns, fixtures built in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        try:
            engine = make_store(tmp / "overpass.db", shifts, args.points, seed=1)
            client = OverpassClient(OverpassOptions(url=server.url, user_agent="annotator-bench/1.0 (bench@localhost)"))
            t0 = time.perf_counter()
            report = prelabel(engine, OverpassSource(client), args.cell_km)
            overpass_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            rerun = prelabel(engine, OverpassSource(client), args.cell_km)
            rerun_s = time.perf_counter() - t0
            via_overpass = labels(engine)
        finally:
            server.stop()
        extract_engine = make_store(tmp / "extract.db", shifts, args.points, seed=1)
        t0 = time.perf_counter()
        extract_report = prelabel(extract_engine, ExtractSource(pbf), args.cell_km)
        extract_s = time.perf_counter() - t0
        via_extract = labels(extract_engine)

    labelled = report.labelled + report.unmatched
    agree = sum(via_overpass.get(k) == v for k, v in via_extract.items())
    print(f"Overpass (loopback, {args.latency_ms:.0f} ms latency/request, cell {args.cell_km:g} km):")
    print(
        f"  points {report.pairs_todo}, decided {labelled}, requests {report.requests}, "
        f"points/request {labelled / max(1, report.requests):.1f}, wall {overpass_s:.1f} s "
        f"({labelled / overpass_s:.0f} points/s)"
    )
    print(f"  rerun: {rerun.requests} requests, {rerun.pairs_todo} points to do, wall {rerun_s:.2f} s")
    print(f"--osm-file ({pbf.name}, {args.towns} towns):")
    print(
        f"  decided {extract_report.labelled + extract_report.unmatched}, wall {extract_s:.1f} s "
        f"({(extract_report.labelled + extract_report.unmatched) / extract_s:.0f} points/s)"
    )
    print(f"agreement: {agree}/{len(via_extract)} points get the same label by both paths")
    print(f"labels: {dict(sorted(extract_report.per_class.items()))}, no class: {extract_report.unmatched}")


if __name__ == "__main__":
    main()
