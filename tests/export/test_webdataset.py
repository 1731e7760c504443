"""WebDataset shards of a real export: read back by the webdataset library, byte-identical on re-export, verified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import webdataset as wds

from annotator.export import ExportOptions
from annotator.vocabulary import SceneClass
from dataset.layout import read_metadata, verify_dataset
from dataset.shards import SHARD_FORMAT, check_shards, pack_export
from tests.export.world import labelled, plant_pairs, run_export


@pytest.fixture
def exported(engine, location, tiles, tmp_path):
    """Beach with 5 recordings (offset copies: 25 pairs) and 3 train-station recordings whose ids hold a dot."""
    specs = labelled(SceneClass.BEACH, 5) + labelled(SceneClass.TRAIN_STATION, 3, prefix="st.")
    plant_pairs(engine, location, specs, tiles=tiles)
    options = ExportOptions(min_per_class=2, augment_below=6, seed=1, workers=1)
    return run_export(engine, location, tmp_path / "folder", options).out


def _read_split(folder: Path, split: str) -> list[dict]:
    """Every sample of a split's shards, as the webdataset library yields them (in shard order)."""
    urls = sorted(str(p) for p in folder.glob(f"{split}-*.tar"))
    return list(wds.WebDataset(urls, shardshuffle=False)) if urls else []


def test_shards_read_back_sample_for_sample_identical_to_the_folder_export(exported, tmp_path):
    report = pack_export(exported, tmp_path / "shards", shard_size=4)
    shards = tmp_path / "shards"
    rows = {row["id"]: row for row in read_metadata(exported)}
    assert any("." in sample_id for sample_id in rows)  # the dotted ids exercise the %2E key
    seen: set[str] = set()
    for split in ("train", "val", "test"):
        samples = _read_split(shards, split)
        expected = {i for i, row in rows.items() if row["split"] == split}
        assert report.per_split()[split] == len(samples) == len(expected)
        for sample in samples:
            meta = json.loads(sample["json"])
            row = rows[meta["id"]]
            assert sample["__key__"].replace("%2E", ".") == meta["id"]
            assert meta["metadata"] == row and meta["split"] == split
            assert meta["class"] == row["class"] and meta["label"] == SceneClass.parse(row["class"]).index
            assert sample["jpg"] == (exported / "vision" / row["class"] / f"{meta['id']}.jpg").read_bytes()
            assert sample["wav"] == (exported / "sound" / row["class"] / f"{meta['id']}.wav").read_bytes()
            seen.add(meta["id"])
        assert {json.loads(s["json"])["id"] for s in samples} == expected
    assert seen == set(rows)
    assert all(info.samples <= 4 for info in report.shards)

    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["parameters"]["format"] == SHARD_FORMAT and manifest["parameters"]["shard_size"] == 4
    assert manifest["counts"]["per_shard"] == {info.name: info.samples for info in report.shards}
    assert "metadata.csv" in manifest["files"] and all(info.name in manifest["files"] for info in report.shards)
    assert verify_dataset(shards).ok and check_shards(shards) == []

    again = pack_export(exported, tmp_path / "again", shard_size=4)
    assert [(i.name, i.sha256) for i in again.shards] == [(i.name, i.sha256) for i in report.shards]
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (shards / "manifest.json").read_bytes()

    # A shard replaced by another export's: verify sees the hash, check_shards the contents.
    first, second = report.shards[0].name, report.shards[1].name
    (shards / first).write_bytes((shards / second).read_bytes())
    assert verify_dataset(shards).changed == [first]
    assert any(first in problem for problem in check_shards(shards))
