"""Bad inputs, library level: image modes, implausible audio headers, manifest fields and encodings, rejects paths.

The same faults run end to end through the CLI in tests/faults/test_import_faults.py; these pin the pieces.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from annotator.errors import AnnotatorError, BadAudio, BadManifest
from annotator.ingest.manifest import MAX_FIELD_CHARS, open_manifest, scan_text
from annotator.ingest.rejects import open_rejects
from dataset.audio import MAX_CHANNELS, probe_audio
from dataset.images import normalise_image, to_rgb
from tests.data.generate import (
    MODE_COLOURS,
    MODE_PIXELS,
    freesound_result,
    make_audio,
    make_image_in_mode,
    make_wav_claiming_rate,
    write_csv_manifest,
    write_freesound_json,
)


@pytest.mark.parametrize("mode", list(MODE_PIXELS))
def test_every_image_mode_becomes_rgb_with_the_right_colours(tmp_path, mode):
    path = make_image_in_mode(tmp_path / ("image.tif" if mode == "CMYK" else "image.png"), mode)
    with Image.open(path) as opened:
        assert opened.mode == mode  # the file really holds that mode
    square = np.asarray(normalise_image(path), dtype=int)
    left, right = MODE_COLOURS[mode]
    assert np.abs(square[256, 64] - left).max() <= 1, square[256, 64]
    assert np.abs(square[256, 448] - right).max() <= 1, square[256, 448]


@pytest.mark.parametrize(("mode", "value", "grey"), [("I", 65535, 255), ("I", 257 * 40, 40), ("F", 0.5, 128)])
def test_high_depth_greyscale_is_scaled_by_its_range(mode, value, grey):
    assert to_rgb(Image.new(mode, (4, 4), value)).getpixel((1, 1)) == (grey, grey, grey)


def test_rgb_with_a_transparent_colour_key_becomes_white_there(tmp_path):
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "key.png", transparency=(1, 2, 3))
    with Image.open(tmp_path / "key.png") as image:
        assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("rate", "plausible"), [(1, False), (999, False), (1000, True), (384000, True), (400000, False)]
)
def test_sample_rates_outside_1_khz_to_384_khz_are_implausible(tmp_path, rate, plausible):
    path = make_wav_claiming_rate(tmp_path / "a.wav", rate)
    if plausible:
        assert probe_audio(path).sample_rate == rate
        return
    with pytest.raises(BadAudio) as err:
        probe_audio(path)
    assert err.value.reason == "implausible_audio" and f"{rate} Hz" in err.value.detail


def test_absurd_channel_count_is_implausible(tmp_path):
    path = tmp_path / "many.wav"
    sf.write(path, np.zeros((800, MAX_CHANNELS + 1), np.float32), 8000, subtype="PCM_16")
    with pytest.raises(BadAudio) as err:
        probe_audio(path)
    assert err.value.reason == "implausible_audio"
    make_audio(tmp_path / "six.wav", 1.0, 8000, 6)
    assert probe_audio(tmp_path / "six.wav").channels == 6


def test_scan_finds_the_first_bad_byte_across_chunk_boundaries(tmp_path):
    path = tmp_path / "m.csv"
    # A 3-byte character split across the 1 MiB read boundary is fine; the bad byte after it is found exactly.
    body = b"\xef\xbb\xbfa,b\n" + b"x" * ((1 << 20) - 8) + "€".encode() + b"\n" * 3 + b"ok,\xff\n"
    path.write_bytes(body)
    with pytest.raises(BadManifest) as err:
        scan_text(path)
    bad_at = body.index(b"\xff")
    assert f"line 5 has the byte 0xff at byte {bad_at}" in str(err.value)
    path.write_bytes(body.replace(b"\xff", b"y"))
    assert scan_text(path) == 5


def test_an_overlong_csv_field_is_one_bad_field_row_and_the_reader_goes_on(tmp_path):
    rows = [
        {"recording_id": "a", "lat": 1, "lon": 2, "audio": "a.wav"},
        {"recording_id": "b", "lat": 1, "lon": 2, "audio": "b.wav", "license": "x" * 200_000},
        {"recording_id": "c", "lat": 1, "lon": 2, "audio": "c.wav", "author": "y" * (MAX_FIELD_CHARS + 1)},
        {"recording_id": "d", "lat": 1, "lon": 2, "audio": "d\x00.wav"},
        {"recording_id": "e", "lat": 1, "lon": 2, "audio": "e.wav"},
    ]
    read = list(open_manifest(write_csv_manifest(tmp_path / "m.csv", rows)).rows())
    assert [(r.line, r.recording_id, r.problem and r.problem[0]) for r in read] == [
        (1, "a", None),
        (2, None, "bad_field"),
        (3, "c", "bad_field"),
        (4, "d", "bad_field"),
        (5, "e", None),
    ]


def test_json_lines_and_freesound_fields_are_checked_the_same_way(tmp_path):
    jsonl = tmp_path / "m.jsonl"
    lines = [
        {"recording_id": "a", "lat": 1, "lon": 2, "audio": "a\x00.wav"},
        {"recording_id": "b", "lat": 1, "lon": 2, "audio": "b.wav", "author": "z" * 200_000},
    ]
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [r.problem and r.problem[0] for r in open_manifest(jsonl).rows()] == ["bad_field", "bad_field"]
    result = freesound_result(7, 1.0, 2.0, username="u" * 200_000)
    rows = list(open_manifest(write_freesound_json(tmp_path / "f.json", [result])).rows())
    assert [r.problem and r.problem[0] for r in rows] == ["bad_field"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_a_manifest_that_is_not_utf8_is_refused_before_any_row(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    path.write_bytes(b'{"results": []}\n' if suffix == ".json" else b"recording_id,lat,lon,audio\n")
    path.write_bytes(path.read_bytes() + "caf\u00e9".encode("cp1252"))
    with pytest.raises(BadManifest, match="not UTF-8 text: line 2"):
        open_manifest(path)


def test_rejects_path_problems_are_raised_before_the_import_starts(tmp_path):
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path, tmp_path / "file" / "r.csv"):
        with pytest.raises(AnnotatorError, match="cannot write the rejects file"), open_rejects(bad):
            pytest.fail("the block must not run")
    with open_rejects(tmp_path / "new" / "deeper" / "r.csv") as rejects:  # missing folders are made
        rejects.write(1, "a", "missing_file", "gone")
    assert (tmp_path / "new" / "deeper" / "r.csv").read_text().splitlines()[1] == "1,a,missing_file,gone"
