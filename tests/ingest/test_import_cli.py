"""`annotator import` end to end on generated files: every bad input by its reason, good rows beside them land."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.store.models import ImportReject, Pair
from dataset.audio import loop_to_min_duration, read_mono
from tests.data.generate import (
    freesound_result,
    make_audio,
    write_csv_manifest,
    write_freesound_json,
    write_jsonl_manifest,
)
from tests.ingest.conftest import read_rejects, recordings_by_id

BAD_REASONS = {
    "too_short",
    "missing_file",
    "empty_file",
    "corrupt_audio",
    "not_audio",
    "missing_coordinates",
    "bad_coordinates",
    "coordinates_out_of_range",
    "bad_image",
    "missing_image",
    "path_escapes_root",
    "duplicate_id",
}


def _expected_by_line(rows) -> dict[int, tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {i: (r.row["recording_id"], r.expect) for i, r in enumerate(rows, start=1) if r.expect != "new"}


def _check_standard_import(cli, engine, location, root: Path, rows, manifest: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rejects = tmp_path / "rejects.csv"
    result = cli("import", str(manifest), "--seed", "3", "--rejects", str(rejects))
    good = [r for r in rows if r.expect == "new"]
    assert f"{len(good)} new, 0 unchanged" in result.stdout

    # Every bad row is in the rejects file with its own reason, on its own line.
    listed = {int(r["line"]): (r["recording_id"], r["reason"]) for r in read_rejects(rejects)}
    assert listed == _expected_by_line(rows)
    assert {reason for _, reason in listed.values()} == BAD_REASONS
    # ... and in the store, where status counts them.
    with Session(engine) as session:
        stored = {(line, reason) for line, reason in session.execute(select(ImportReject.line, ImportReject.reason))}
    assert stored == {(line, reason) for line, (_, reason) in listed.items()}

    # The good rows beside them all landed, with a clip on disk.
    recordings = recordings_by_id(engine)
    accepted = {rid for rid, r in recordings.items() if r.status == "accepted"}
    assert accepted == {r.row["recording_id"] for r in good}
    assert recordings["short"].status == "rejected" and recordings["short"].reject_reason == "too_short"
    assert recordings["short"].pairs == []
    for expected in good:
        rec = recordings[expected.row["recording_id"]]
        assert len(rec.pairs) == 1
        pair = rec.pairs[0]
        assert (location.media_dir / pair.clip_path).is_file()
        assert rec.sha256 == hashlib.sha256((root / str(expected.row["audio"])).read_bytes()).hexdigest()
        assert rec.sample_rate == expected.sample_rate and rec.channels == expected.channels
        assert abs(rec.duration_s - expected.duration_s) < 0.01
        assert rec.looped == (expected.duration_s < 10.0)
        assert (pair.origin, pair.lat, pair.lon, pair.clip_seed) == ("original", rec.lat, rec.lon, 3)
        assert pair.image_status == ("present" if expected.row.get("image") else "needs_imagery")


def test_csv_import_rejects_each_bad_row_by_reason_and_keeps_the_good(
    cli, engine, location, corpus, csv_manifest, tmp_path
):
    root, rows = corpus
    _check_standard_import(cli, engine, location, root, rows, csv_manifest, tmp_path)


def test_jsonl_import_behaves_like_csv(cli, engine, location, corpus, tmp_path):
    root, rows = corpus
    manifest = write_jsonl_manifest(root / "manifest.jsonl", [r.row for r in rows])
    _check_standard_import(cli, engine, location, root, rows, manifest, tmp_path)


def test_clip_is_ten_seconds_mono_pcm16_at_the_source_rate(cli, engine, location, corpus, csv_manifest):
    root, rows = corpus
    cli("import", str(csv_manifest), "--seed", "3")
    recordings = recordings_by_id(engine)
    for expected in (r for r in rows if r.expect == "new"):
        pair = recordings[expected.row["recording_id"]].pairs[0]
        info = sf.info(location.media_dir / pair.clip_path)
        assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", 1)
        assert info.samplerate == expected.sample_rate == pair.clip_sample_rate
        assert info.frames == 10 * expected.sample_rate


def test_short_recording_is_looped_and_multichannel_is_downmixed(cli, engine, location, corpus, csv_manifest):
    root, _ = corpus
    cli("import", str(csv_manifest), "--seed", "3")
    pair = recordings_by_id(engine)["good5"].pairs[0]  # 2.0 s, 16 kHz, 6 channels
    clip, sr = sf.read(location.media_dir / pair.clip_path, dtype="float32")
    source, channels_sr = sf.read(root / "audio" / "wav_6ch_2s.wav", dtype="float32")
    assert source.shape[1] == 6 and channels_sr == sr
    looped = loop_to_min_duration(source.mean(axis=1), sr)
    assert looped.shape[0] >= 10 * sr
    start = round(pair.clip_start_s * sr)
    expected = looped[start : start + 10 * sr]
    assert np.max(np.abs(clip - expected)) < 2 / 32768  # equal up to 16-bit rounding
    # The loop really repeats the 2 s of content: second 0 and second 2 of the looped signal are identical.
    assert np.array_equal(looped[: 2 * sr], looped[2 * sr : 4 * sr])


def test_long_recording_clip_is_the_window_at_its_stored_start(cli, engine, location, corpus, csv_manifest):
    root, _ = corpus
    cli("import", str(csv_manifest), "--seed", "3")
    pair = recordings_by_id(engine)["good6"].pairs[0]  # 60 s FLAC, 11025 Hz
    clip, sr = sf.read(location.media_dir / pair.clip_path, dtype="float32")
    whole, _ = read_mono(root / "audio" / "flac_mono_60s.flac")
    start = round(pair.clip_start_s * sr)
    assert 0 < pair.clip_start_s <= 50.0
    assert np.max(np.abs(clip - whole[start : start + 10 * sr])) < 2 / 32768


def test_manifest_image_is_normalised_to_512_rgb_jpeg(cli, engine, location, csv_manifest):
    cli("import", str(csv_manifest), "--seed", "3")
    recordings = recordings_by_id(engine)
    for rid in ("good0", "good1"):  # an 800×600 JPEG and a 300×700 PNG
        pair = recordings[rid].pairs[0]
        assert pair.image_path == f"images/{pair.id}.jpg" and pair.image_source == "manifest"
        with Image.open(location.media_dir / pair.image_path) as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (512, 512))


def test_reimport_changes_nothing_and_says_so(cli, engine, location, csv_manifest, tmp_path):
    cli("import", str(csv_manifest), "--seed", "3")
    clips_before = {p: p.read_bytes() for p in (location.media_dir / "clips").iterdir()}
    with Session(engine) as session:
        rejects_before = session.scalar(select(func.count()).select_from(ImportReject))
    again = cli("import", str(csv_manifest), "--seed", "3", "--rejects", str(tmp_path / "again.csv"))
    assert "0 new, 8 unchanged" in again.stdout  # 7 accepted + the too-short one, already recorded
    clips_after = {p: p.read_bytes() for p in (location.media_dir / "clips").iterdir()}
    assert clips_after == clips_before
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Pair)) == 7
        assert session.scalar(select(func.count()).select_from(ImportReject)) == rejects_before


def test_changed_file_and_changed_coordinates_are_reported_not_overwritten(cli, engine, location, tmp_path):
    audio = make_audio(tmp_path / "a.wav", 4.0, 16000, 1, seed=1)
    make_audio(tmp_path / "b.wav", 4.0, 16000, 1, seed=2)
    rows = [
        {"recording_id": "a", "lat": 1.0, "lon": 2.0, "audio": "a.wav"},
        {"recording_id": "b", "lat": 1.0, "lon": 2.0, "audio": "b.wav"},
    ]
    manifest = write_csv_manifest(tmp_path / "m.csv", rows)
    cli("import", str(manifest))
    before = recordings_by_id(engine)
    clip_a = (location.media_dir / before["a"].pairs[0].clip_path).read_bytes()

    make_audio(audio, 4.0, 16000, 1, seed=77)  # new content under the same id
    rows[1]["lat"] = 1.5  # b moved
    write_csv_manifest(manifest, rows)
    cli("import", str(manifest), "--rejects", str(tmp_path / "r.csv"))
    listed = {r["recording_id"]: r["reason"] for r in read_rejects(tmp_path / "r.csv")}
    assert listed == {"a": "changed_file", "b": "changed_metadata"}
    after = recordings_by_id(engine)
    assert after["a"].sha256 == before["a"].sha256 and after["b"].lat == 1.0
    assert (location.media_dir / after["a"].pairs[0].clip_path).read_bytes() == clip_a


def test_clip_window_is_reproducible_across_stores_and_changes_with_the_seed(tmp_path, corpus, csv_manifest):
    from annotator.config import resolve_store
    from tests.conftest import Cli

    def run(name: str, seed: str) -> dict[str, float]:
        location = resolve_store(str(tmp_path / name / "s.db"))
        cli = Cli(location=location, db_path=location.sqlite_path)
        cli("init")
        cli("import", str(csv_manifest), "--seed", seed)
        from annotator.store import open_store

        engine = open_store(location)
        starts = {rid: r.pairs[0].clip_start_s for rid, r in recordings_by_id(engine).items() if r.pairs}
        clips = {
            rid: (location.media_dir / r.pairs[0].clip_path).read_bytes()
            for rid, r in recordings_by_id(engine).items()
            if r.pairs
        }
        engine.dispose()
        return starts, clips

    starts1, clips1 = run("one", "5")
    starts2, clips2 = run("two", "5")
    starts3, _ = run("three", "6")
    assert starts1 == starts2 and clips1 == clips2
    assert starts1["good2"] != starts3["good2"]  # the 60 s OGG gets another window under another seed


def test_missing_column_fails_the_whole_command_naming_it(cli, engine, tmp_path):
    make_audio(tmp_path / "a.wav", 3.0)
    manifest = write_csv_manifest(
        tmp_path / "m.csv",
        [{"recording_id": "a", "lat": 1, "audio": "a.wav"}],
        columns=("recording_id", "lat", "audio"),
    )
    result = cli("import", str(manifest), "--rejects", str(tmp_path / "r.csv"), expect=2)
    assert "lon" in result.stderr and "found: recording_id, lat, audio" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "r.csv").exists()
    assert recordings_by_id(engine) == {}


def test_import_into_an_uninitialised_store_fails_with_one_sentence(cli, tmp_path):
    make_audio(tmp_path / "a.wav", 3.0)
    manifest = write_csv_manifest(tmp_path / "m.csv", [{"recording_id": "a", "lat": 1, "lon": 2, "audio": "a.wav"}])
    result = cli("import", str(manifest), expect=None)
    assert result.exit_code != 0 and "annotator init" in result.stderr


def test_freesound_results_find_files_by_id_under_the_audio_root(cli, engine, tmp_path):
    sounds = tmp_path / "downloads"
    make_audio(sounds / "1001__alice__harbour.wav", 3.0, 22050, 2, seed=1)
    make_audio(sounds / "sub" / "1002.flac", 12.0, 44100, 1, seed=2)
    manifest = write_freesound_json(
        tmp_path / "search.json",
        [
            freesound_result(1001, 60.17, 24.95, "alice"),
            freesound_result(1002, 60.18, 24.96, "bob"),
            freesound_result(1003, 60.19, 24.97),  # no file downloaded
            freesound_result(1004, None, None),  # no geotag
        ],
    )
    cli("import", str(manifest), "--audio-root", str(sounds), "--rejects", str(tmp_path / "r.csv"))
    listed = {r["recording_id"]: r["reason"] for r in read_rejects(tmp_path / "r.csv")}
    assert listed == {"1003": "missing_file", "1004": "missing_coordinates"}
    recordings = recordings_by_id(engine)
    assert set(recordings) == {"1001", "1002"}
    alice = recordings["1001"]
    assert (alice.source, alice.author, alice.lat, alice.original_path) == (
        "freesound",
        "alice",
        60.17,
        "1001__alice__harbour.wav",
    )
    assert alice.source_url.endswith("/sounds/1001/") and "zero" in alice.license
    assert recordings["1002"].original_path == "sub/1002.flac"


def test_audio_root_and_image_root_replace_the_manifest_folder(cli, engine, tmp_path):
    make_audio(tmp_path / "sounds" / "x.ogg", 3.0, 22050, 1)
    from tests.data.generate import make_image

    make_image(tmp_path / "pics" / "x.png", (100, 100))
    manifest = write_csv_manifest(
        tmp_path / "lists" / "m.csv", [{"recording_id": "x", "lat": 0, "lon": 0, "audio": "x.ogg", "image": "x.png"}]
    )
    cli("import", str(manifest), "--audio-root", str(tmp_path / "sounds"), "--image-root", str(tmp_path / "pics"))
    pair = recordings_by_id(engine)["x"].pairs[0]
    assert pair.image_status == "present"
