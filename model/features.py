"""Audio and image features exactly as the model sees them (SPEC §9, the paper's protocol).

Audio: mono, resampled to 16 kHz, 10 s (looped if shorter, first 10 s if longer), STFT with a 1024-sample
periodic Hann window and a 400-sample hop (25 ms), power spectrum, 64 Slaney mel bands from 0 to 8 kHz,
10·log10 (dB, floor 1e-10), 400 frames. Computed in torch, checked against librosa in the tests.
Log-mels are rounded to float16 on every path, so features read from the cache equal freshly decoded ones
bit for bit. Images: RGB, resized to ``size``×``size`` (bilinear), uint8 channels-first.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP = 400
N_MELS = 64
FMIN = 0.0
FMAX = 8_000.0
N_FRAMES = 400
CLIP_SAMPLES = N_FRAMES * HOP  # 160 000 samples = 10 s at 16 kHz
DB_FLOOR = 1e-10


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's default, htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    mel = hz / f_sp
    above = hz >= min_log_hz
    mel[above] = min_log_mel + np.log(hz[above] / min_log_hz) / logstep
    return mel


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    hz = f_sp * mel
    above = mel >= min_log_mel
    hz[above] = min_log_hz * np.exp(logstep * (mel[above] - min_log_mel))
    return hz


@lru_cache(maxsize=4)
def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX
) -> torch.Tensor:
    """Triangular Slaney-normalised mel filters, shape (n_mels, n_fft // 2 + 1)."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array([fmin]))[0], hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]  # equal area per band
    return torch.from_numpy(weights.astype(np.float32))


def log_mel(waveform: torch.Tensor) -> torch.Tensor:
    """Log-mel spectrogram in dB of a 16 kHz waveform (…, samples) → (…, 64, frames), float32.

    Frames are centred (zero padding of n_fft/2 at both ends), so 10 s gives 401 frames; callers keep 400.
    """
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float32, device=waveform.device)
    spec = torch.stft(
        waveform.float(), N_FFT, HOP, N_FFT, window, center=True, pad_mode="constant", return_complex=True
    )
    power = spec.real.square() + spec.imag.square()  # (…, freq, frames)
    mel = torch.matmul(mel_filterbank().to(waveform.device), power)
    return 10.0 * torch.log10(torch.clamp(mel, min=DB_FLOOR))


def fit_clip(samples: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Exactly `length` samples: the first `length`, or the clip looped until it is long enough."""
    if samples.size == 0:
        raise ValueError("empty audio")
    if samples.size < length:
        samples = np.tile(samples, math.ceil(length / samples.size))
    return samples[:length]


def read_clip(path: Path) -> np.ndarray:
    """Read an audio file as a mono float32 10 s clip at 16 kHz (soundfile + soxr)."""
    import soundfile
    import soxr

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
    return fit_clip(mono)


def clip_log_mel(path: Path) -> np.ndarray:
    """The model's audio input for one file: (64, 400) float16 log-mel in dB (not yet normalised)."""
    with torch.no_grad():
        mel = log_mel(torch.from_numpy(read_clip(path)))[:, :N_FRAMES]
    return mel.numpy().astype(np.float16)


def read_image(path: Path, size: int) -> np.ndarray:
    """The model's image input for one file: (3, size, size) uint8, RGB, bilinear resize."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
