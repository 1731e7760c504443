"""`annotator export` and `annotator verify` end to end on a real store with real media."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image
from sqlalchemy import func, select

from annotator.export import ExportOptions
from annotator.store import session_scope
from annotator.store.models import ExportRecord, Pair
from annotator.vocabulary import SceneClass
from dataset.audio import read_mono
from dataset.imagery.geo import offset_point
from tests.export.world import PairSpec, labelled, plant_pairs, run_export


def rows_of(out: Path) -> list[dict[str, str]]:
    with (out / "metadata.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def tree_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_min_per_class_edge_nine_dropped_ten_kept(engine, location, cli, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.AIRPORT, 9) + labelled(SceneClass.BEACH, 10))
    out = tmp_path / "dataset"
    result = cli("export", str(out), "--augment-below", "0")
    rows = rows_of(out)
    assert {r["class"] for r in rows} == {SceneClass.BEACH.value}
    assert len(rows) == 10
    assert not (out / "vision" / SceneClass.AIRPORT.value).exists()
    assert "Dropped airport: 9 pairs" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["per_class"] == {SceneClass.BEACH.value: 10}
    assert manifest["parameters"]["min_per_class"] == 10


@pytest.mark.slow
def test_augment_below_edge_ninety_nine_augmented_hundred_not(engine, location, cli, tmp_path, tiles):
    plant_pairs(engine, location, labelled(SceneClass.LAKE, 99) + labelled(SceneClass.FOREST, 100), tiles=tiles)
    out = tmp_path / "dataset"
    cli("export", str(out), "--sample-rate", "8000")
    rows = rows_of(out)
    lake = [r for r in rows if r["class"] == SceneClass.LAKE.value]
    forest = [r for r in rows if r["class"] == SceneClass.FOREST.value]
    assert len(lake) == 99 * 5 and sum(r["origin"] == "offset" for r in lake) == 99 * 4
    assert len(forest) == 100 and all(r["origin"] == "original" for r in forest)


def test_offsets_are_distinct_recorded_with_provenance_and_reused(engine, location, cli, tmp_path, tiles):
    parents = plant_pairs(engine, location, labelled(SceneClass.HARBOUR, 2) + labelled(SceneClass.LAKE, 3), tiles=tiles)
    first = tmp_path / "first"
    cli("export", str(first), "--min-per-class", "2", "--augment-below", "3", "--offset-m", "64")
    files = tree_bytes(first)
    with session_scope(engine) as session:
        offsets = session.scalars(select(Pair).where(Pair.origin == "offset").order_by(Pair.id)).all()
        assert len(offsets) == 8
        for parent_id in parents[:2]:
            parent = session.get(Pair, parent_id)
            mine = [p for p in offsets if p.parent_pair_id == parent_id]
            assert [(p.direction, p.offset_index, p.offset_m) for p in mine] == [
                ("N", 1, 64.0),
                ("E", 2, 64.0),
                ("S", 3, 64.0),
                ("W", 4, 64.0),
            ]
            for p in mine:
                assert (p.lat, p.lon) == pytest.approx(offset_point(parent.lat, parent.lon, p.direction, 64.0))
                assert p.image_status == "present" and p.footprint is not None and p.recording_id == parent.recording_id
            # four new clips, none the original's window nor each other's
            starts = [parent.clip_start_s] + [p.clip_start_s for p in mine]
            assert min(abs(a - b) for i, a in enumerate(starts) for b in starts[i + 1 :]) >= 0.25
            clips = [read_mono(location.media_dir / q.clip_path)[0] for q in [parent, *mine]]
            assert all(not np.array_equal(clips[i], clips[j]) for i in range(5) for j in range(i + 1, 5))
            rec = parent.recording.source_id
            ids = [rec] + [f"{rec}_{k}" for k in range(1, 5)]
            images = {sha(files[f"vision/harbour/{i}.jpg"]) for i in ids}
            sounds = {sha(files[f"sound/harbour/{i}.wav"]) for i in ids}
            assert len(images) == 5 and len(sounds) == 5
        count_before = session.scalar(select(func.count()).select_from(Pair))

    second = tmp_path / "second"
    result = cli("export", str(second), "--min-per-class", "2", "--augment-below", "3", "--offset-m", "64")
    assert "0 made now, 8 reused" in result.stdout
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Pair)) == count_before
    assert tree_bytes(second) == files  # reused offsets: byte-identical dataset


def test_no_recording_straddles_splits(engine, location, tiles):
    plant_pairs(engine, location, labelled(SceneClass.BRIDGE, 12) + labelled(SceneClass.ORCHARD, 25), tiles=tiles)
    report = run_export(
        engine,
        location,
        location.media_dir.parent / "ds",
        ExportOptions(min_per_class=5, augment_below=13, seed=3, workers=1),
    )
    rows = rows_of(report.out)
    splits_of_recording = defaultdict(set)
    for row in rows:
        splits_of_recording[row["recording"]].add(row["split"])
    assert all(len(s) == 1 for s in splits_of_recording.values())
    assert sum(r["origin"] == "offset" for r in rows) == 12 * 4
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert report.per_split == json.loads((report.out / "manifest.json").read_text())["counts"]["per_split"]


def test_reexport_is_byte_identical_whatever_the_workers(engine, location, tiles, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.GRASSLAND, 4) + labelled(SceneClass.RESIDENTIAL, 6), tiles=tiles)
    base = ExportOptions(min_per_class=3, augment_below=5, seed=7)
    one = run_export(engine, location, tmp_path / "one", ExportOptions(**{**base.__dict__, "workers": 1}))
    two = run_export(engine, location, tmp_path / "two", ExportOptions(**{**base.__dict__, "workers": 2}))
    assert tree_bytes(one.out) == tree_bytes(two.out)
    assert one.manifest_sha256 == two.manifest_sha256
    other_seed = run_export(engine, location, tmp_path / "three", ExportOptions(**{**base.__dict__, "seed": 8}))
    assert rows_of(other_seed.out) != rows_of(one.out)  # the seed moves the split


def test_layout_is_what_the_release_promises(engine, location, cli, tmp_path, tiles):
    plant_pairs(engine, location, labelled(SceneClass.SPORTS_LAND, 3), tiles=tiles)
    out = tmp_path / "dataset"
    cli("export", str(out), "--min-per-class", "1", "--augment-below", "2", "--sample-rate", "16000")
    rows = rows_of(out)
    assert list(rows[0]) == [
        "id",
        "class",
        "recording",
        "lat",
        "lon",
        "origin",
        "direction",
        "split",
        "osm_label",
        "human_label",
        "label_source",
        "reviewers",
        "license",
        "author",
        "source_url",
        "image_source",
    ]
    for row in rows:
        with Image.open(out / "vision" / row["class"] / f"{row['id']}.jpg") as image:
            assert (image.format, image.size, image.mode) == ("JPEG", (512, 512), "RGB")
        info = soundfile.info(out / "sound" / row["class"] / f"{row['id']}.wav")
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 160000, "PCM_16")
    for figure in ("statistics.png", "samples.png"):
        with Image.open(out / figure) as image:
            assert image.format == "PNG" and image.size[0] > 400
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == listed
    assert manifest["parameters"]["sample_rate"] == 16000 and manifest["tool_version"]


def test_refuses_existing_out_and_force_replaces_only_exports(engine, location, cli, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.BEACH, 3))
    out = tmp_path / "dataset"
    args = ("--min-per-class", "1", "--augment-below", "0")
    cli("export", str(out), *args)
    before = tree_bytes(out)
    refused = cli("export", str(out), *args, expect=1)
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert tree_bytes(out) == before
    (out / "stray.txt").write_text("old")
    refused = cli("export", str(out), *args, "--force", expect=1)
    assert "stray.txt" in refused.stderr and (out / "stray.txt").read_text() == "old"  # not ours: never removed
    (out / "stray.txt").unlink()
    cli("export", str(out), *args, "--force")
    assert tree_bytes(out) == before  # replaced by a complete new export
    elsewhere = tmp_path / "notes"
    elsewhere.mkdir()
    (elsewhere / "thesis.tex").write_text("precious")
    refused = cli("export", str(elsewhere), *args, "--force", expect=1)
    assert "not an annotator export" in refused.stderr
    assert (elsewhere / "thesis.tex").read_text() == "precious"
    assert not list(tmp_path.glob(".*export-*"))  # no temp folders left behind


def test_verify_names_changed_missing_and_extra_files(engine, location, cli, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.FARMLAND, 3))
    out = tmp_path / "dataset"
    cli("export", str(out), "--min-per-class", "1", "--augment-below", "0", "--verify")
    assert "OK" in cli("verify", str(out)).stdout
    wav = out / "sound" / "farmland" / "farm2.wav"
    data = bytearray(wav.read_bytes())
    data[-1] ^= 0x01  # one flipped bit in the last sample
    wav.write_bytes(bytes(data))
    (out / "vision" / "farmland" / "farm3.jpg").unlink()
    (out / "vision" / "farmland" / "intruder.jpg").write_bytes(b"x")
    result = cli("verify", str(out), expect=1)
    assert "changed: sound/farmland/farm2.wav" in result.stdout
    assert "missing: vision/farmland/farm3.jpg" in result.stdout
    assert "extra: vision/farmland/intruder.jpg" in result.stdout
    assert "1 missing, 1 changed, 1 unexpected" in result.stderr
    nothing = cli("verify", str(tmp_path), expect=1)
    assert "no manifest.json" in nothing.stderr


def test_unreviewed_pairs_need_the_flag_and_are_marked(engine, location, cli, tmp_path):
    plant_pairs(
        engine,
        location,
        [
            *labelled(SceneClass.LAKE, 2),
            PairSpec("osm1", osm_label=SceneClass.LAKE),
            PairSpec("unus", final_label="unusable", osm_label=SceneClass.LAKE),
        ],
    )
    out = tmp_path / "reviewed"
    result = cli("export", str(out), "--min-per-class", "1", "--augment-below", "0")
    assert [r["id"] for r in rows_of(out)] == ["lake1", "lake2"]
    assert "Left out 1 pairs: no human review yet" in result.stdout
    out2 = tmp_path / "all"
    result = cli("export", str(out2), "--min-per-class", "1", "--augment-below", "0", "--include-unreviewed")
    assert "OSM label" in result.stderr
    by_id = {r["id"]: r for r in rows_of(out2)}
    assert set(by_id) == {"lake1", "lake2", "osm1"}  # the unusable one stays out
    assert (by_id["osm1"]["label_source"], by_id["osm1"]["human_label"]) == ("osm", "")
    assert by_id["lake1"]["label_source"] == "human"


def test_export_is_recorded_in_the_store(engine, location, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.FOREST, 2))
    report = run_export(engine, location, tmp_path / "ds", ExportOptions(min_per_class=1, augment_below=0))
    with session_scope(engine) as session:
        record = session.get(ExportRecord, report.export_id)
        assert record.out_path == str(tmp_path / "ds")
        assert record.manifest_sha256 == sha((tmp_path / "ds" / "manifest.json").read_bytes())
        assert record.params["seed"] == 0 and record.counts["per_class"] == {"forest": 2}
        assert record.tool_version and record.created_at is not None
    assert "created" not in (tmp_path / "ds" / "manifest.json").read_text()


def test_nothing_to_export_is_one_clear_error(engine, location, cli, tmp_path):
    plant_pairs(engine, location, [PairSpec("u1", osm_label=SceneClass.LAKE)])
    result = cli("export", str(tmp_path / "ds"), expect=1)
    assert "nothing to export" in result.stderr and "--include-unreviewed" in result.stderr
    assert not (tmp_path / "ds").exists()


def test_short_and_exact_ten_second_recordings_get_distinct_offset_clips(engine, location, tiles, tmp_path):
    specs = [
        PairSpec("short", SceneClass.BEACH.value, duration_s=2.5),
        PairSpec("exact", SceneClass.BEACH.value, duration_s=10.0),
    ]
    plant_pairs(engine, location, specs, tiles=tiles)
    report = run_export(engine, location, tmp_path / "ds", ExportOptions(min_per_class=1, augment_below=5))
    assert report.offsets == {"beach": 8}
    for rec in ("short", "exact"):
        sounds = [
            (report.out / "sound" / "beach" / f"{i}.wav").read_bytes()
            for i in [rec] + [f"{rec}_{k}" for k in range(1, 5)]
        ]
        assert len({sha(s) for s in sounds}) == 5


def test_offset_clips_fall_back_to_the_stored_clip_when_the_original_is_gone(engine, location, cli, tmp_path, tiles):
    plant_pairs(engine, location, labelled(SceneClass.ORCHARD, 1), tiles=tiles)
    originals = location.media_dir.parent / "recordings"
    moved = tmp_path / "moved"
    moved.mkdir()
    originals.rename(moved / "recordings")
    out = tmp_path / "ds"
    result = cli("export", str(out), "--min-per-class", "1", "--augment-below", "2")
    assert "cut from the stored clip" in result.stderr and "--audio-root" in result.stderr
    assert len(rows_of(out)) == 5
    # with --audio-root the originals are found again (new offset_m: new offsets, from the whole recording)
    result = cli(
        "export",
        str(tmp_path / "ds2"),
        "--min-per-class",
        "1",
        "--augment-below",
        "2",
        "--offset-m",
        "32",
        "--audio-root",
        str(moved),
    )
    assert "stored clip" not in result.stderr and "4 made now" in result.stdout


def test_stale_temp_folder_of_a_dead_export_is_removed(engine, location, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.LAKE, 1))
    stale = tmp_path / ".ds.export-tmp-999999999"
    (stale / "sound").mkdir(parents=True)
    run_export(engine, location, tmp_path / "ds", ExportOptions(min_per_class=1, augment_below=0))
    assert not stale.exists() and (tmp_path / "ds" / "manifest.json").is_file()
