"""``--features paper``: the authors' log-mel against their own librosa formula, and caches that never mix."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import soundfile
import torch

from model.cache import cache_key, open_or_build_cache
from model.data import SceneDataset, open_dataset
from model.features import N_FRAMES, N_MELS, SAMPLE_RATE, clip_log_mel, paper_clip_log_mel, paper_log_mel


def authors_log_mel(wav: np.ndarray) -> np.ndarray:
    """``audio_extract`` of the authors' model/CVS_dataset.py after ``librosa.load(sr=16000)``, in our
    mel × time layout (theirs is its transpose)."""
    spec = librosa.core.stft(
        wav, n_fft=4096, hop_length=400, win_length=1024, window="hann", center=True, pad_mode="constant"
    )
    mel = librosa.feature.melspectrogram(S=np.abs(spec), sr=16000, n_mels=64, fmax=8000)
    return librosa.core.power_to_db(mel[:, :400])


def _tone_in_noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    # A tone that starts after 3 s of near silence: the 80 dB floor (top_db) is reached, so it is tested too.
    tone = 0.5 * np.sin(2 * np.pi * 700 * t) * (t > 3.0) + 0.05 * rng.normal(size=t.size) * (t > 6.0)
    return (tone + 1e-7 * rng.normal(size=t.size)).astype(np.float32)


def test_paper_log_mel_matches_the_authors_formula_to_a_thousandth_of_a_db() -> None:
    """Exactly their formula, top_db floor included: in float64 every value agrees to 1e-3 dB."""
    wav = _tone_in_noise(10.0, SAMPLE_RATE).astype(np.float64)
    reference = authors_log_mel(wav)
    ours = paper_log_mel(torch.from_numpy(wav)).numpy()
    assert ours.shape == reference.shape == (N_MELS, N_FRAMES)
    assert reference.min() == reference.max() - 80.0  # the top_db floor is active in this clip
    assert (reference > reference.min() + 1).mean() > 0.3
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-3)


def test_paper_log_mel_in_float32_agrees_above_float32_rounding() -> None:
    """In float32 (what runs, and what the authors ran) both FFTs round at about 1e-7 of the peak magnitude,
    i.e. 70 units below it on this magnitude-dB scale; within 50 of the peak they agree to 5e-3 dB."""
    wav = _tone_in_noise(10.0, SAMPLE_RATE)
    reference = authors_log_mel(wav)
    ours = paper_log_mel(torch.from_numpy(wav)).numpy()
    assert ours.dtype == np.float32 and ours.max() == np.float32(reference.max())
    loud = reference > reference.max() - 50
    np.testing.assert_allclose(ours[loud], reference[loud], rtol=0, atol=5e-3)


def test_paper_clip_log_mel_reads_files_as_librosa_load_does(tmp_path: Path) -> None:
    """A 12 s stereo file at 22.05 kHz: mono, resampled to 16 kHz, the first 400 frames of the whole file."""
    left, right = _tone_in_noise(12.0, 22_050, 1), _tone_in_noise(12.0, 22_050, 2)
    soundfile.write(tmp_path / "a.wav", np.stack([left, 0.5 * right], axis=1), 22_050, subtype="FLOAT")
    reference = authors_log_mel(librosa.load(tmp_path / "a.wav", sr=16_000)[0])
    ours = paper_clip_log_mel(tmp_path / "a.wav")
    assert ours.shape == (N_MELS, N_FRAMES) and ours.dtype == np.float16
    loud = reference > reference.max() - 50  # above float32's rounding floor (see the test before)
    np.testing.assert_allclose(ours.astype(np.float32)[loud], reference[loud], rtol=0, atol=0.05)  # float16


def test_feature_caches_of_the_two_definitions_never_mix(planted_export: Path, tmp_path: Path) -> None:
    full = open_dataset(planted_export)
    index = replace(full, samples=full.samples[:3])
    assert cache_key(index, 32) != cache_key(index, 32, "paper")
    default = open_or_build_cache(index, 32, tmp_path)
    paper = open_or_build_cache(index, 32, tmp_path, features="paper")
    assert default.directory != paper.directory
    assert (default.features, paper.features) == ("default", "paper")
    assert json.loads((paper.directory / "meta.json").read_text())["features"] == "paper"
    sample = index.samples[0]
    assert np.array_equal(paper.log_mel(sample.id), paper_clip_log_mel(sample.audio_path))
    assert np.array_equal(default.log_mel(sample.id), clip_log_mel(sample.audio_path))
    assert not np.array_equal(paper.log_mel(sample.id), default.log_mel(sample.id))
    decoded = SceneDataset(index.samples, image_size=32, features="paper")[0]["audio"][0].numpy()
    assert np.array_equal(decoded, paper.log_mel(sample.id))
