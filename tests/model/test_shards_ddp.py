"""torchrun with two CPU processes (gloo) on shards, local and over a loopback HTTP server: the ranks' samples
never overlap and together are every split.

Run by pytest, this file starts torchrun on itself: under torchrun (``__main__``) each rank reads its part of
every DATASET given on the command line with :func:`model.shards.open_shards`, and rank 0 prints the ids each
rank holds, per split, as JSON.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from test_shards import write_small_shards

    return write_small_shards(tmp_path_factory.mktemp("ddp-shards"))


@pytest.fixture(scope="module")
def served(shards: tuple[Path, Path]) -> Iterator[str]:
    """The shard folder over HTTP on 127.0.0.1 (a thread of this process); yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(shards[1]))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "ANNOTATOR_DB": str(tmp_path / "no.db"),
        "ANNOTATOR_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)]),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def _split_ids(folder: Path) -> dict[str, set[str]]:
    from dataset.layout import read_metadata

    ids: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for row in read_metadata(folder):
        ids[row["split"]].add(row["id"])
    return ids


@pytest.mark.slow
def test_two_ranks_read_disjoint_parts_that_cover_every_split(shards, served, tmp_path):
    folder, local = shards
    specs = [
        str(local),  # the shard folder
        f"{local}/train-{{000000..000001}}.tar",  # a local brace pattern (val and test from the manifest)
        f"{served}/",  # the folder over HTTP
        f"{served}/train-{{000000..000001}}.tar",  # a URL brace pattern
    ]
    done = _torchrun([__file__, str(tmp_path / "staging"), *specs], tmp_path)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = _split_ids(folder)
    for spec in specs:
        ranks = result[spec]
        assert len(ranks) == 2
        for split, ids in expected.items():
            parts = [set(rank[split]) for rank in ranks]
            assert parts[0] and parts[1], (spec, split)  # both ranks hold part of every split
            assert not parts[0] & parts[1], (spec, split)  # never the same sample on two ranks
            assert parts[0] | parts[1] == ids, (spec, split)  # and together the whole split
    assert not any((tmp_path / "staging").iterdir())  # every rank removed its staged files


@pytest.mark.slow
def test_torchrun_trains_from_shards_over_http(shards, served, tmp_path):
    folder, _ = shards
    args = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--seed", "7", "--image-size", "32"]
    args += ["--audio-width", "4", "--workers", "0", "--json"]
    url = f"{served}/train-{{000000..000001}}.tar"
    done = _torchrun(["-m", "annotator", "train", url, "--out", str(tmp_path / "run"), *args], tmp_path)
    summary = json.loads(done.stdout)  # one JSON object: only rank 0 prints
    assert "× 2 processes" in done.stderr
    dataset = summary["dataset"]
    assert dataset["split_by"] == {"train": "shard", "val": "sample", "test": "sample"}
    sizes = {split: len(ids) for split, ids in _split_ids(folder).items()}
    assert dataset["per_split"] == sizes
    assert [rank["train"] for rank in dataset["per_rank"]] == [12, 12]  # one 12-sample training shard each
    assert summary["test"]["samples"] == sizes["test"] and summary["val"]["samples"] == sizes["val"]


def _rank_main(staging: Path, specs: list[str]) -> None:
    """Under torchrun: this rank's ids per split for every spec; rank 0 prints all ranks' as JSON."""
    import torch.distributed as dist

    from model.shards import open_shards

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = {}
    for number, spec in enumerate(specs):
        data = open_shards(spec, staging / f"{number}-rank{rank}", rank=rank, world_size=world)
        mine[spec] = {
            split: [s.id for s in data.index.samples if s.split == split] for split in ("train", "val", "test")
        }
        data.remove_staging()
    gathered: list[dict] = [{} for _ in range(world)]
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        print(json.dumps({spec: [g[spec] for g in gathered] for spec in specs}))
    dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(Path(sys.argv[1]), sys.argv[2:])
