"""`export --split-by block`, the leakage report, `splits/*.txt`, and `--json` of export and verify, through the CLI."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest

from annotator.store import session_scope
from annotator.store.models import Pair
from annotator.vocabulary import SceneClass
from dataset.imagery.geo import offset_point
from tests.export.world import labelled, plant_pairs

SITES = 6


def plant_clustered(engine, location) -> None:
    """Two classes × 12 recordings on 6 sites 3 km apart; a site's 4 recordings lie within ~60 m of each other, so
    their images overlap (a recording split scatters them over the splits)."""
    ids = plant_pairs(engine, location, labelled(SceneClass.LAKE, 12) + labelled(SceneClass.FOREST, 12))
    with session_scope(engine) as session:
        for n, pair_id in enumerate(ids):
            site, k = n % SITES, n // SITES
            lat, lon = offset_point(60.0, 25.0, "E", 3000.0 * site)
            lat, lon = offset_point(lat, lon, "N", 20.0 * k)
            pair = session.get(Pair, pair_id)
            pair.lat, pair.lon = lat, lon
            pair.image_resolution_m = 0.5


def rows_of(out: Path) -> list[dict[str, str]]:
    with (out / "metadata.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def site_of(rows: list[dict[str, str]]) -> dict[str, int]:
    """Sample id → site, recovered from the longitude the planting gave it."""
    lons = sorted({round(float(r["lon"]), 3) for r in rows})
    return {r["id"]: lons.index(round(float(r["lon"]), 3)) for r in rows}


@pytest.mark.sqlite_only  # the split is pure; one backend is enough
def test_block_split_leaves_no_overlap_across_splits_where_the_recording_split_leaks(engine, location, cli, tmp_path):
    plant_clustered(engine, location)
    common = ("--min-per-class", "1", "--augment-below", "0", "--seed", "1", "--workers", "1", "--json")
    by_recording = json.loads(cli("export", str(tmp_path / "rec"), *common).stdout)
    by_block = json.loads(cli("export", str(tmp_path / "block"), *common, "--split-by", "block").stdout)

    assert by_recording["split"]["by"] == "recording" and by_recording["leakage"] > 0
    assert by_block["split"]["by"] == "block" and by_block["leakage"] == 0
    assert by_block["split"]["block_m"] == 256.0  # the footprint side: 512 px × 0.5 m/px
    assert by_block["split"]["groups"] == SITES
    assert by_block["split"]["leakage_by_mode"] == {"recording": by_recording["leakage"], "block": 0}
    assert by_block["total"] == 24 and set(by_block["split"]["shares"]) == {"forest", "lake"}

    rows = rows_of(tmp_path / "block")
    sites = site_of(rows)
    splits_per_site = defaultdict(set)
    for row in rows:
        splits_per_site[sites[row["id"]]].add(row["split"])
    assert all(len(s) == 1 for s in splits_per_site.values())  # every site (block) in one split
    assert len({split for s in splits_per_site.values() for split in s}) == 3  # and all three splits used
    manifest = json.loads((tmp_path / "block" / "manifest.json").read_text())
    assert manifest["split"]["leakage"]["pairs"] == 0 and manifest["parameters"]["split_by"] == "block"
    assert (
        json.loads((tmp_path / "rec" / "manifest.json").read_text())["split"]["leakage"]["pairs"]
        == (by_recording["leakage"])
    )
    for split in ("train", "val", "test"):
        listed = (tmp_path / "block" / "splits" / f"{split}.txt").read_text().splitlines()
        assert listed == sorted(r["id"] for r in rows if r["split"] == split)
    assert f"Leakage: {by_recording['leakage']} pairs" in (tmp_path / "rec" / "README.md").read_text().replace("*", "")


@pytest.mark.sqlite_only
def test_summary_table_reports_the_leakage_and_json_of_verify_parses(engine, location, cli, tmp_path):
    plant_clustered(engine, location)
    out = tmp_path / "ds"
    result = cli("export", str(out), "--min-per-class", "1", "--augment-below", "0", "--split-by", "block")
    assert "Leakage: 0 pairs of samples in different splits have overlapping footprints" in result.stdout
    assert "by recording: " in result.stdout
    verified = json.loads(cli("verify", str(out), "--json").stdout)
    assert (
        verified["ok"] is True and verified["checked"] == 24 * 2 + 8
    )  # media, metadata, card (2), figures (2), split lists (3)
    again = json.loads(
        cli("export", str(out), "--min-per-class", "1", "--augment-below", "0", "--force", "--verify", "--json").stdout
    )
    assert again["verify"]["ok"] is True and again["split"]["by"] == "recording"


def test_bad_split_and_format_options_are_one_sentence(engine, location, cli, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.LAKE, 2))
    bad = cli("export", str(tmp_path / "a"), "--split-by", "country", expect=2)
    assert "country" in bad.output
    bad = cli("export", str(tmp_path / "b"), "--format", "parquet", expect=1)
    assert "--format must be one of folder, webdataset" in bad.stderr and "Traceback" not in bad.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.sqlite_only
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_sample_whose_media_will_not_load_is_left_out_of_the_split_lists_and_card(
    engine, location, cli, tmp_path, workers
):
    ids = plant_pairs(engine, location, labelled(SceneClass.LAKE, 4))
    with session_scope(engine) as session:
        broken = session.get(Pair, ids[1])
        (location.media_dir / broken.clip_path).write_bytes(b"not a wav file")
    out = tmp_path / "ds"
    args = ("--min-per-class", "1", "--augment-below", "0", "--workers", workers, "--json", "--verify")
    report = json.loads(cli("export", str(out), *args).stdout)
    assert [f["id"] for f in report["failed"]] == ["lake2"] and report["total"] == 3
    assert report["verify"]["ok"] is True
    listed = [
        line for split in ("train", "val", "test") for line in (out / "splits" / f"{split}.txt").read_text().split()
    ]
    assert sorted(listed) == ["lake1", "lake3", "lake4"] == sorted(r["id"] for r in rows_of(out))
    assert "3 samples" in (out / "README.md").read_text()
    counts = {split: len((out / "splits" / f"{split}.txt").read_text().split()) for split in ("train", "val", "test")}
    assert report["per_split"] == counts
