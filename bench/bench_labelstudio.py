"""Benchmark the Label Studio round trip against a real local server it starts (issues 5 and 14).

Makes an ADVANCE-sized corpus (5,075 pairs, published class counts; one shared 512 px image and 10 s clip, each
pair's OSM evidence with a polygon of 48 vertices and the image footprint), renders every pair's overlay image
(timed: seconds per 1,000 pairs), then pushes with the overlays (target ≥ 500 tasks/s at batch 1000), creates
annotations for 500 tasks through the admin token, and times an incremental pull of those 500 and a full pull.
Prints the figures.

Usage: .venv/bin/python bench/bench_labelstudio.py [--pairs 5075] [--annotations 500] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import selectinload  # noqa: E402

from annotator.config import resolve_store  # noqa: E402
from annotator.labelstudio import server as ls_server  # noqa: E402
from annotator.labelstudio.client import connect  # noqa: E402
from annotator.labelstudio.overlays import OVERLAY_FOLDER, ensure_overlays, overlay_relpath  # noqa: E402
from annotator.labelstudio.pull import pull_reviews  # noqa: E402
from annotator.labelstudio.push import push_pairs  # noqa: E402
from annotator.store import open_store, session_scope, unit_of_work, upgrade_to_head  # noqa: E402
from annotator.store.models import OsmEvidence, Pair  # noqa: E402
from annotator.vocabulary import ADVANCE_COUNTS, CLASS_ORDER  # noqa: E402
from dataset.imagery.geo import footprint_bbox  # noqa: E402
from tests.labelstudio.helpers import annotate, make_annotator, task_ids_by_pair  # noqa: E402
from tests.labelstudio.pairs import make_pairs, write_media  # noqa: E402


def advance_labels(total: int) -> list:
    labels = [c for c in CLASS_ORDER for _ in range(ADVANCE_COUNTS[c])]
    return (labels * (total // len(labels) + 1))[:total]


def give_geometry(engine) -> None:  # type: ignore[no-untyped-def]
    """Each pair: the image footprint, and its deciding OSM element as a 48-vertex polygon around the point."""
    with session_scope(engine) as session:
        for pair in session.scalars(select(Pair).options(selectinload(Pair.osm_evidence))):
            west, south, east, north = footprint_bbox(pair.lat, pair.lon)
            pair.footprint_west, pair.footprint_south, pair.footprint_east, pair.footprint_north = (
                west,
                south,
                east,
                north,
            )
            ev: OsmEvidence | None = pair.osm_evidence
            if ev is None:
                continue
            ring = [
                [pair.lon + 0.0008 * math.cos(2 * math.pi * k / 48), pair.lat + 0.0005 * math.sin(2 * math.pi * k / 48)]
                for k in range(48)
            ]
            element = dict((ev.elements or [{}])[0])
            element.update(geometry={"type": "Polygon", "coordinates": [[*ring, ring[0]]]}, decided=True)
            ev.elements = [element]


def render_overlays(engine, media_dir: Path, sample: int | None) -> tuple[int, float, int]:  # type: ignore[no-untyped-def]
    """Draw the overlays of the first `sample` pairs (all with None), 1,000 per query, timed; give every other pair
    a copy of a drawn one (the push only looks for the file; the media check compares the first task's bytes).
    Returns (rendered, seconds, copied)."""
    rendered, seconds, copied = 0, 0.0, 0
    with session_scope(engine) as session:
        ids = list(session.scalars(select(Pair.id).order_by(Pair.id)))
        drawn = ids if sample is None else ids[:sample]
        for start in range(0, len(drawn), 1000):
            query = (
                select(Pair).where(Pair.id.in_(drawn[start : start + 1000])).options(selectinload(Pair.osm_evidence))
            )
            t0 = time.perf_counter()
            report = ensure_overlays(media_dir, session.scalars(query).all())
            seconds += time.perf_counter() - t0
            rendered += report.rendered
        rest = ids[len(drawn) :]
        if rest:
            model = next((media_dir / OVERLAY_FOLDER).glob("*.jpg")).read_bytes()
            for start in range(0, len(rest), 1000):
                query = (
                    select(Pair).where(Pair.id.in_(rest[start : start + 1000])).options(selectinload(Pair.osm_evidence))
                )
                for pair in session.scalars(query):
                    rel = overlay_relpath(pair)
                    if rel is not None:
                        (media_dir / rel).write_bytes(model)
                        copied += 1
    return rendered, seconds, copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5075)
    parser.add_argument("--annotations", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4, help="parallel annotation requests (setup only)")
    parser.add_argument("--render-sample", type=int, default=1000, help="overlays drawn (timed); the rest copied")
    parser.add_argument("--render-all", action="store_true", help="draw every pair's overlay")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ls-") as tmp:
        base = Path(tmp)
        location = resolve_store(str(base / "store" / "annotator.db"), base / "store" / "media")
        engine = open_store(location, create=True)
        upgrade_to_head(engine)
        t0 = time.perf_counter()
        make_pairs(engine, location.media_dir, advance_labels(args.pairs), shared_media=True)
        write_media(location.media_dir, "shared", 0)  # the shared image at full size (512 px), a 10 s clip
        give_geometry(engine)
        print(f"store: {args.pairs} pairs written in {time.perf_counter() - t0:.1f} s")

        sample = None if args.render_all else args.render_sample
        rendered, render_s, copied = render_overlays(engine, location.media_dir, sample)
        print(
            f"overlays: {rendered} rendered in {render_s:.1f} s = {render_s / max(rendered, 1) * 1000:.1f} s per "
            "1,000 pairs (512 px JPEG, one 48-vertex polygon each; before the push, as `prelabel` does)"
            + (f"; {copied} more pairs given a copy (--render-all draws every one)" if copied else "")
        )

        t0 = time.perf_counter()
        running = ls_server.start(base / "ls-data", location.media_dir)
        print(f"server start (template database): {time.perf_counter() - t0:.1f} s at {running.url}")
        try:
            conn = connect(running.url, running.api_key)
            t0 = time.perf_counter()
            with unit_of_work(engine) as work:
                report = push_pairs(work, location, conn, title="bench", batch_size=args.batch_size)
            push_s = time.perf_counter() - t0
            print(
                f"push: {report.pushed} tasks in {push_s:.2f} s = {report.pushed / push_s:.0f} tasks/s "
                f"(batch size {args.batch_size}, {report.batches} requests, with the overlay images, "
                f"{report.overlays_rendered} drawn during the push, media checked: "
                f"{', '.join(report.media_checked)}; target ≥ 500 tasks/s)"
            )

            t0 = time.perf_counter()
            with unit_of_work(engine) as work:
                again = push_pairs(work, location, conn, title="bench", batch_size=args.batch_size)
            print(f"push again (nothing new): {again.pushed} tasks in {time.perf_counter() - t0:.2f} s")

            tasks = list(task_ids_by_pair(engine).values())[: args.annotations]
            users = [make_annotator(conn, f"annotator{i}")[0] for i in range(3)]
            with unit_of_work(engine) as work:
                pull_reviews(work, conn)  # checkpoint before the annotations
            t0 = time.perf_counter()
            classes = [c.value for c in CLASS_ORDER]
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(lambda i: annotate(conn, tasks[i], classes[i % 13], users[i % 3]), range(len(tasks))))
            print(
                f"setup: {len(tasks)} annotations created in {time.perf_counter() - t0:.1f} s ({args.threads} threads)"
            )

            t0 = time.perf_counter()
            with unit_of_work(engine) as work:
                inc = pull_reviews(work, conn)
            inc_s = time.perf_counter() - t0
            print(f"incremental pull: {inc.tasks_seen} tasks, {inc.reviews_added} reviews in {inc_s:.2f} s")
            t0 = time.perf_counter()
            with unit_of_work(engine) as work:
                full = pull_reviews(work, conn, full=True)
            full_s = time.perf_counter() - t0
            print(f"full pull: {full.tasks_seen} tasks, {full.reviews_added} new reviews in {full_s:.2f} s")
        finally:
            ls_server.stop(running.data_dir)


if __name__ == "__main__":
    main()
