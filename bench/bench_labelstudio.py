"""Benchmark the Label Studio round trip against a real local server it starts (issue 5).

Pushes an ADVANCE-sized corpus (5,075 pairs, published class counts), creates annotations for 500 tasks through
the admin token, then times an incremental pull of those 500 and a full pull. Prints the figures.

Usage: .venv/bin/python bench/bench_labelstudio.py [--pairs 5075] [--annotations 500] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotator.config import resolve_store  # noqa: E402
from annotator.labelstudio import server as ls_server  # noqa: E402
from annotator.labelstudio.client import connect  # noqa: E402
from annotator.labelstudio.pull import pull_reviews  # noqa: E402
from annotator.labelstudio.push import push_pairs  # noqa: E402
from annotator.store import open_store, unit_of_work, upgrade_to_head  # noqa: E402
from annotator.vocabulary import ADVANCE_COUNTS, CLASS_ORDER  # noqa: E402
from tests.labelstudio.helpers import annotate, make_annotator, task_ids_by_pair  # noqa: E402
from tests.labelstudio.pairs import make_pairs  # noqa: E402


def advance_labels(total: int) -> list:
    labels = [c for c in CLASS_ORDER for _ in range(ADVANCE_COUNTS[c])]
    return (labels * (total // len(labels) + 1))[:total]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5075)
    parser.add_argument("--annotations", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4, help="parallel annotation requests (setup only)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ls-") as tmp:
        base = Path(tmp)
        location = resolve_store(str(base / "store" / "annotator.db"), base / "store" / "media")
        engine = open_store(location, create=True)
        upgrade_to_head(engine)
        t0 = time.perf_counter()
        make_pairs(engine, location.media_dir, advance_labels(args.pairs), shared_media=True)
        print(f"store: {args.pairs} pairs written in {time.perf_counter() - t0:.1f} s")

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
                f"(batch size {args.batch_size}, {report.batches} requests; target ≤ 15 s, ≥ 340 tasks/s)"
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
