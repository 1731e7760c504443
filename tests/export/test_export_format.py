"""`export --format webdataset`: the folder export packed into shards at OUT, with the folder's guarantees.

The shards' content is tested with :mod:`dataset.shards`; here: the plumbing of the export command (the data card
and manifest at OUT, verify, refuse-to-overwrite, --force, no temporary folder left, a byte-identical re-export).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from annotator.vocabulary import SceneClass
from tests.export.world import labelled, plant_pairs

pytest.importorskip("dataset.shards")

ARGS = ("--min-per-class", "1", "--augment-below", "0", "--workers", "1", "--format", "webdataset")


def tree_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.sqlite_only
def test_webdataset_export_is_shards_with_the_card_and_keeps_the_folder_guarantees(engine, location, cli, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.LAKE, 6) + labelled(SceneClass.BEACH, 5))
    out = tmp_path / "shards"
    report = json.loads(cli("export", str(out), *ARGS, "--shard-size", "2", "--json").stdout)
    assert report["format"] == "webdataset" and report["total"] == 11
    assert report["shards"]["per_split"] == report["per_split"]
    names = sorted(p.name for p in out.glob("*.tar"))
    assert names and all(n.split("-")[0] in ("train", "val", "test") for n in names)
    assert not (out / "vision").exists() and not (out / "sound").exists()
    for name in ("README.md", "ATTRIBUTION.csv", "metadata.csv", "splits/train.txt"):
        assert (out / name).is_file()
    card = (out / "README.md").read_text()
    shards_per_split = report["shards"]["shards_per_split"]
    assert "webdataset shards of 2 samples (" + ", ".join(f"{s} {n}" for s, n in shards_per_split.items()) in card
    assert f"train-{{000000..{shards_per_split['train'] - 1:06d}}}.tar" in card and "vision/<class>" not in card
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["format"] == "webdataset" and manifest["parameters"]["shard_size"] == 2
    assert set(manifest["files"]) >= {*names, "README.md", "ATTRIBUTION.csv"}
    assert report["manifest_sha256"] == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert json.loads(cli("verify", str(out), "--json").stdout)["ok"] is True
    assert not list(tmp_path.glob(".*"))  # no temporary folder (nor the intermediate folder export) left

    before = tree_bytes(out)
    refused = cli("export", str(out), *ARGS, "--shard-size", "2", expect=1)
    assert "already exists" in refused.stderr and tree_bytes(out) == before
    cli("export", str(out), *ARGS, "--shard-size", "2", "--force")
    assert tree_bytes(out) == before  # replaced by a byte-identical export
    (out / "notes.txt").write_text("mine")
    refused = cli("export", str(out), *ARGS, "--force", expect=1)
    assert "notes.txt" in refused.stderr and (out / "notes.txt").read_text() == "mine"
