"""Audio and image features exactly as the model sees them (SPEC §9, the paper's protocol).

Audio: mono, resampled to 16 kHz, 10 s (looped if shorter, first 10 s if longer), STFT with a 1024-sample
periodic Hann window and a 400-sample hop (25 ms), power spectrum, 64 Slaney mel bands from 0 to 8 kHz,
10·log10 (dB, floor 1e-10), 400 frames. Computed in torch, checked against librosa in the tests.
Log-mels are rounded to float16 on every path, so features read from the cache equal freshly decoded ones
bit for bit. Images: RGB, resized to ``size``×``size`` (bilinear), uint8 channels-first.

``features="paper"`` (:func:`paper_log_mel`) is the authors' log-mel instead (Hu et al.'s ``audio_extract`` in
``model/CVS_dataset.py``): librosa at 16 kHz, STFT with n_fft 4096, a 1024-sample Hann window and hop 400,
the *magnitude* spectrum through the same 64 Slaney mel bands (0–8 kHz, filters for n_fft 4096),
``power_to_db`` with ref 1, amin 1e-10 and top_db 80 over the first 400 frames. Their layout is time × mel
(400, 64); every feature in this project is stored mel × time (64, 400), and the authors' audio network
(:class:`model.networks.AudioResNet50`) transposes to their layout itself, so caches and batches have one shape.

Why the default stays as it is (the issue allows it): it is SPEC §9's definition, existing caches and trained
checkpoints depend on it, and the paper's n_fft 4096 with a 1024-sample window adds no frequency resolution
(the window is zero-padded: a 4× finer grid of the same spectrum) at four times the STFT cost, while top_db 80
per clip throws away the quiet end of the dynamic range that per-bin normalisation keeps.
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

# The authors' log-mel (features="paper").
PAPER_N_FFT = 4096
PAPER_WIN = 1024
PAPER_TOP_DB = 80.0
#: Samples that the first 400 centred frames of the paper's STFT can see (the last centre + n_fft / 2):
#: longer clips are cut here, so the 400 frames equal those of the whole file.
PAPER_CLIP_SAMPLES = (N_FRAMES - 1) * HOP + PAPER_N_FFT // 2
FEATURE_CHOICES = ("default", "paper")


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


def paper_log_mel(waveform: torch.Tensor) -> torch.Tensor:
    """The authors' log-mel of a 16 kHz waveform (…, samples) → (…, 64, min(frames, 400)) in dB, float32
    (float64 for a float64 waveform).

    ``power_to_db(melspectrogram(S=|stft|)[:, :400])`` with librosa's defaults: the magnitude (not power)
    spectrum through the mel filters, 10·log10 with a 1e-10 floor, then everything more than 80 dB below the
    clip's maximum (over its 64 × 400 values) raised to that level.
    """
    # float64 stays float64 (the tests compare with librosa below float32's rounding floor); else float32.
    x = waveform if waveform.dtype == torch.float64 else waveform.float()
    window = torch.hann_window(PAPER_WIN, periodic=True, dtype=x.dtype, device=x.device)
    # win_length < n_fft: torch (like librosa) centres the 1024-sample window in the 4096-sample frame.
    spec = torch.stft(
        x,
        PAPER_N_FFT,
        HOP,
        PAPER_WIN,
        window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    filters = mel_filterbank(SAMPLE_RATE, PAPER_N_FFT).to(x.device, x.dtype)
    mel = torch.matmul(filters, spec.abs())[..., :N_FRAMES]  # (…, 64, frames ≤ 400)
    db = 10.0 * torch.log10(torch.clamp(mel, min=DB_FLOOR))
    peak = db.amax(dim=(-2, -1), keepdim=True)
    return torch.maximum(db, peak - PAPER_TOP_DB)


def fit_clip(samples: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Exactly `length` samples: the first `length`, or the clip looped until it is long enough."""
    if samples.size == 0:
        raise ValueError("empty audio")
    if samples.size < length:
        samples = np.tile(samples, math.ceil(length / samples.size))
    return samples[:length]


def read_mono(path: Path) -> np.ndarray:
    """Read a whole audio file as mono float32 at 16 kHz: the channel mean, resampled with soxr's HQ quality
    (what ``librosa.load(path, sr=16000)`` does)."""
    import soundfile
    import soxr

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
    return mono


def read_clip(path: Path) -> np.ndarray:
    """Read an audio file as a mono float32 10 s clip at 16 kHz (soundfile + soxr)."""
    return fit_clip(read_mono(path))


def clip_log_mel(path: Path) -> np.ndarray:
    """The model's audio input for one file: (64, 400) float16 log-mel in dB (not yet normalised)."""
    with torch.no_grad():
        mel = log_mel(torch.from_numpy(read_clip(path)))[:, :N_FRAMES]
    return mel.numpy().astype(np.float16)


def paper_clip_log_mel(path: Path) -> np.ndarray:
    """The authors' audio input for one file: (64, 400) float16 log-mel in dB (mel × time; not normalised).

    A clip of 10 s or more gives exactly their 400 frames. A shorter one is looped to 10 s as the default
    features do: their code yields fewer than 400 frames there (and an earlier script of theirs pads 0 dB).
    """
    mono = read_mono(path)
    mono = fit_clip(mono) if mono.size < CLIP_SAMPLES else mono[:PAPER_CLIP_SAMPLES]
    with torch.no_grad():
        mel = paper_log_mel(torch.from_numpy(np.ascontiguousarray(mono)))
    return mel.numpy().astype(np.float16)


def clip_features(path: Path, features: str = "default") -> np.ndarray:
    """The (64, 400) float16 log-mel of one file for a ``TrainConfig.features`` choice."""
    if features == "paper":
        return paper_clip_log_mel(path)
    if features != "default":
        raise ValueError(f"features must be one of {'|'.join(FEATURE_CHOICES)}, not {features!r}")
    return clip_log_mel(path)


def read_image(path: Path, size: int) -> np.ndarray:
    """The model's image input for one file: (3, size, size) uint8, RGB, bilinear resize."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
