"""dataset.audio and dataset.images on generated files: probing, every bad file's reason, windows, images."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from annotator.errors import BadAudio, BadImage
from dataset.audio import (
    clip_window_start,
    cut_clip,
    loop_to_min_duration,
    probe_audio,
    read_clip_source,
    read_mono,
    resample,
    write_wav_pcm16,
)
from dataset.images import normalise_image, save_jpeg
from tests.data.generate import make_audio, make_empty, make_image, make_png_named, make_text, make_truncated


@pytest.mark.parametrize(
    ("suffix", "rate", "channels", "seconds"),
    [
        (".wav", 8000, 1, 1.5),
        (".flac", 44100, 2, 5.0),
        (".ogg", 48000, 6, 9.99),
        (".mp3", 32000, 2, 10.0),
        (".aiff", 16000, 1, 2.0),
    ],
)
def test_probe_reads_format_rate_channels_and_duration(tmp_path, suffix, rate, channels, seconds):
    info = probe_audio(make_audio(tmp_path / f"a{suffix}", seconds, rate, channels))
    assert (info.sample_rate, info.channels) == (rate, channels)
    assert abs(info.duration_s - seconds) < 0.01
    assert info.format == suffix[1:].upper()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p / "missing.wav", "missing_file"),
        (lambda p: make_empty(p / "e.wav"), "empty_file"),
        (lambda p: make_truncated(p / "t.wav"), "corrupt_audio"),
        (lambda p: make_truncated(p / "t.aiff"), "corrupt_audio"),
        (lambda p: make_text(p / "x.wav"), "not_audio"),
        (lambda p: make_png_named(p / "x.wav"), "not_audio"),
    ],
)
def test_probe_names_the_reason_of_each_bad_file(tmp_path, make, reason):
    with pytest.raises(BadAudio) as err:
        probe_audio(make(tmp_path))
    assert err.value.reason == reason


@pytest.mark.parametrize(("suffix", "seconds"), [(".flac", 5.0), (".mp3", 30.0), (".flac", 30.0)])
def test_truncation_a_header_hides_is_caught_when_the_clip_is_read(tmp_path, suffix, seconds):
    path = make_truncated(tmp_path / f"t{suffix}", duration_s=seconds, keep=0.5)
    info = probe_audio(path)  # the header still promises the whole recording
    with pytest.raises(BadAudio) as err:
        read_clip_source(path, info, seed=0, key="k")
    assert err.value.reason == "corrupt_audio"


def test_loop_replicates_until_ten_seconds():
    sr = 1000
    samples = np.arange(2 * sr, dtype=np.float32)
    looped = loop_to_min_duration(samples, sr)
    assert looped.shape[0] == 10 * sr and np.array_equal(looped[2 * sr : 4 * sr], samples)
    assert loop_to_min_duration(samples[:9990], sr).shape[0] >= 10 * sr
    assert loop_to_min_duration(np.zeros(12 * sr, np.float32), sr).shape[0] == 12 * sr  # long: as is


def test_clip_window_start_is_deterministic_in_range_and_spread():
    starts = [clip_window_start(120.0, 7, f"manifest:{i}") for i in range(2000)]
    assert starts == [clip_window_start(120.0, 7, f"manifest:{i}") for i in range(2000)]
    assert all(0.0 <= s <= 110.0 for s in starts)
    assert 50 < np.mean(starts) < 60 and min(starts) < 2 and max(starts) > 108  # uniform over [0, 110]
    assert clip_window_start(120.0, 8, "manifest:1") != starts[1]
    assert clip_window_start(10.0, 7, "x") == 0.0


def test_cut_write_and_read_back_an_exact_ten_second_clip(tmp_path):
    sr = 22050
    samples = np.sin(np.arange(15 * sr) / 10).astype(np.float32) * 0.5
    clip = cut_clip(samples, sr, 4.99999)
    write_wav_pcm16(tmp_path / "c.wav", clip, sr)
    info = sf.info(tmp_path / "c.wav")
    assert (info.frames, info.channels, info.subtype) == (10 * sr, 1, "PCM_16")
    back, _ = read_mono(tmp_path / "c.wav")
    assert np.max(np.abs(back - samples[5 * sr : 15 * sr])) < 1 / 32768 + 1e-6
    assert list(tmp_path.iterdir()) == [tmp_path / "c.wav"]  # no temp file left behind


def test_resample_keeps_duration():
    out = resample(np.zeros(44100, np.float32), 44100, 22050)
    assert out.shape[0] == 22050 and out.dtype == np.float32


def test_normalise_crops_the_centre_square_and_saves_a_deterministic_jpeg(tmp_path):
    wide = Image.new("RGB", (300, 100), (255, 0, 0))
    wide.paste((0, 0, 255), (100, 0, 200, 100))  # blue centre square, red sides
    square = normalise_image(wide)
    assert square.size == (512, 512) and square.mode == "RGB"
    assert square.getpixel((5, 256)) == (0, 0, 255) and square.getpixel((506, 256)) == (0, 0, 255)
    save_jpeg(square, tmp_path / "a.jpg")
    save_jpeg(normalise_image(wide), tmp_path / "b.jpg")
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()
    rgba = make_image(tmp_path / "p.png", (64, 80), seed=3)
    assert normalise_image(rgba).size == (512, 512)


def test_bad_images_raise_their_reason(tmp_path):
    with pytest.raises(BadImage) as err:
        normalise_image(make_text(tmp_path / "x.jpg"))
    assert err.value.reason == "bad_image"
    with pytest.raises(BadImage) as err:
        normalise_image(tmp_path / "none.jpg")
    assert err.value.reason == "missing_image"
