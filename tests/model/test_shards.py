"""Training from WebDataset shards (model.shards): one process, the rank plan, the batch sampler, bad shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from advance_generator import write_export

from annotator.errors import DatasetError, TrainingError
from annotator.vocabulary import CLASS_ORDER
from dataset.shards import pack_export, shard_name
from model.data import open_dataset
from model.distributed import GlobalBatchSampler, LocalBatchSampler
from model.shards import Shard, ShardSet, open_shards, plan_rank, resolve_shards
from model.train import evaluate_checkpoint

#: Samples per shard of the small export: train (24 samples) gets 2 shards, val and test (12 each) one each.
SHARD_SIZE = 12
TRAIN_ARGS = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--seed", "7", "--image-size", "32"]
TRAIN_ARGS += ["--audio-width", "4", "--workers", "0", "--lr", "1e-3"]


def write_small_shards(root: Path) -> tuple[Path, Path]:
    """A 48-pair export of four classes (2 s clips, 32 px images) and its shards; returns (folder, shards)."""
    folder = root / "folder"
    write_export(folder, per_class=4, offsets_every=2, image_size=32, seed=5, duration_s=2.0, classes=CLASS_ORDER[:4])
    pack_export(folder, root / "shards", shard_size=SHARD_SIZE)
    return folder, root / "shards"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_small_shards(tmp_path_factory.mktemp("small-shards"))


@pytest.mark.slow
def test_one_process_on_shards_trains_exactly_as_on_the_folder(small, cli, tmp_path):
    """The shard path reuses the folder path's loop: same samples, same batches, same numbers (and --json)."""
    folder, shards = small
    cache = ["--cache-dir", str(tmp_path / "cache")]
    cli("train", str(folder), "--out", str(tmp_path / "folder-run"), *cache, *TRAIN_ARGS)
    on_folder = json.loads((tmp_path / "folder-run" / "metrics.json").read_text())
    pattern = f"{shards}/train-{{000000..000001}}.tar"  # val and test shards come from the manifest beside them
    done = cli("train", pattern, "--out", str(tmp_path / "run"), *cache, *TRAIN_ARGS, "--json")
    summary = json.loads(done.stdout)
    assert summary["dataset"]["layout"] == "shards" and summary["dataset"]["shards"] == {
        "train": 2,
        "val": 1,
        "test": 1,
    }
    assert summary["dataset"]["per_split"] == {"train": 24, "val": 12, "test": 12}
    assert summary["test"]["samples"] == 12 and summary["best_epoch"] == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["history"][0]["train_loss"] == on_folder["history"][0]["train_loss"]
    assert metrics["test"]["confusion_matrix"] == on_folder["test"]["confusion_matrix"]
    assert not list((tmp_path / "cache" / "shard-staging").rglob("*.wav"))  # staged files removed after caching
    # evaluate reads a shard folder too, and reproduces the run's test metrics from the checkpoint.
    again = evaluate_checkpoint(tmp_path / "run" / "checkpoint.pt", shards, device="cpu")
    assert again["confusion_matrix"] == metrics["test"]["confusion_matrix"]


def _set(names_by_split: dict[str, int]) -> ShardSet:
    shards = [Shard(f"/x/{shard_name(s, i)}", shard_name(s, i), s) for s, n in names_by_split.items() for i in range(n)]
    return ShardSet("/x", tuple(shards))


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_the_rank_plans_split_every_shard_or_sample_exactly_once(world):
    shard_set = _set({"train": 4, "val": 2, "test": 1})
    plans = [plan_rank(shard_set, rank, world) for rank in range(world)]
    for split, n in (("train", 4), ("val", 2), ("test", 1)):
        if n >= world:  # by shard: the ranks' shard lists partition the split's shards
            names = [name for p in plans for name in p[split].describe()["shards"]]
            assert sorted(names) == sorted(s.name for s in shard_set.of_split(split))
            assert all(p[split].by == "shard" for p in plans)
        else:  # by sample: every rank reads all shards, and the kept positions partition the stream
            assert all(p[split].by == "sample" and len(p[split].shards) == n for p in plans)
            kept = [k for p in plans for k in range(100) if k % p[split].every == p[split].offset]
            assert sorted(kept) == list(range(100))


def test_local_batches_step_together_and_match_the_global_sampler_alone():
    alone = LocalBatchSampler([21], 8, seed=3)
    assert list(alone) == list(GlobalBatchSampler(21, 8, seed=3)) and alone.global_sizes() == [8, 8, 5]
    ranks = [LocalBatchSampler([10, 7], 8, seed=3, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2  # ⌈7 / 4⌉: the rank with fewer samples decides
    assert ranks[0].global_sizes() == ranks[1].global_sizes() == [8, 7]
    for rank, size in zip(ranks, (10, 7), strict=True):
        batches = list(rank)
        flat = [i for b in batches for i in b]
        assert len(set(flat)) == len(flat) and all(0 <= i < size for i in flat)
    with pytest.raises(TrainingError, match="smaller than the 4 processes"):
        LocalBatchSampler([5, 5, 5, 5], 3, seed=0, world_size=4)


def test_bad_shards_fail_with_one_sentence(small, cli, tmp_path):
    folder, shards = small
    with pytest.raises(DatasetError, match="holds WebDataset shards"):
        open_dataset(shards)
    bad_names = tmp_path / "renamed"
    bad_names.mkdir()
    (bad_names / "part-0.tar").write_bytes((shards / "train-000000.tar").read_bytes())
    with pytest.raises(DatasetError, match="cannot tell the split"):
        resolve_shards(f"{bad_names}/part-{{0..0}}.tar")
    with pytest.raises(DatasetError, match="no manifest.json"):
        resolve_shards(str(folder / "vision"))
    # A shard from another export (same name, other bytes) is caught by the manifest's sha256 as it streams.
    damaged = tmp_path / "damaged"
    pack_export(folder, damaged, shard_size=SHARD_SIZE)
    (damaged / "val-000000.tar").write_bytes((damaged / "test-000000.tar").read_bytes())
    with pytest.raises(DatasetError, match="is in split test, not val"):
        open_shards(damaged, tmp_path / "staging")
    assert not (tmp_path / "staging").exists()  # nothing staged is left behind
    done = cli("train", str(damaged), "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path), *TRAIN_ARGS, expect=1)
    assert "val-000000.tar: sample" in done.stderr and "Traceback" not in done.output
    truncated = tmp_path / "truncated"
    pack_export(folder, truncated, shard_size=SHARD_SIZE)
    data = (truncated / "test-000000.tar").read_bytes()
    (truncated / "test-000000.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="test-000000.tar"):
        open_shards(truncated, tmp_path / "staging")
