"""Log-mel features against librosa (an independent implementation, test-only) and the image reader."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from model.features import (
    CLIP_SAMPLES,
    FMAX,
    HOP,
    N_FFT,
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    clip_log_mel,
    fit_clip,
    log_mel,
    mel_filterbank,
    read_image,
)


def test_mel_filterbank_matches_librosa() -> None:
    reference = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=FMAX)
    np.testing.assert_allclose(mel_filterbank().numpy(), reference, rtol=1e-5, atol=1e-8)


def test_log_mel_matches_librosa_on_a_tone_in_noise() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    ours = log_mel(torch.from_numpy(y)).numpy()
    power = librosa.feature.melspectrogram(
        y=y,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=N_MELS,
        fmin=0.0,
        fmax=FMAX,
    )
    reference = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == reference.shape == (N_MELS, N_FRAMES + 1)
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_clip_log_mel_resamples_and_fits_ten_seconds(tmp_path: Path) -> None:
    """A 3 s clip at 22.05 kHz is looped to 10 s at 16 kHz: 400 frames, energy where the tone is."""
    sr = 22_050
    t = np.arange(3 * sr) / sr
    soundfile.write(tmp_path / "a.wav", (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), sr)
    mel = clip_log_mel(tmp_path / "a.wav")
    assert mel.shape == (N_MELS, N_FRAMES) and mel.dtype == np.float16
    centres = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=0.0, fmax=FMAX)[1:-1]
    assert abs(centres[int(mel[:, 200].argmax())] - 1000) < 100
    # The looped part (after 3 s) carries the tone too: no silent padding.
    assert float(mel[:, 350].max()) > 0


def test_fit_clip_loops_short_and_truncates_long() -> None:
    short = np.arange(3, dtype=np.float32)
    assert fit_clip(short, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert fit_clip(np.arange(10, dtype=np.float32), 4).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        fit_clip(np.zeros(0, dtype=np.float32), 4)


def test_read_image_is_uint8_channels_first_rgb(tmp_path: Path) -> None:
    Image.new("L", (80, 60), 200).save(tmp_path / "grey.png")
    array = read_image(tmp_path / "grey.png", 32)
    assert array.shape == (3, 32, 32) and array.dtype == np.uint8
    assert int(array.min()) == int(array.max()) == 200
