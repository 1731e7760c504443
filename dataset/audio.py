"""Audio: probe, read, loop, pick a clip window, cut, resample and write clips (SPEC §1, §5).

Everything libsndfile reads is accepted (WAV, FLAC, OGG/Vorbis, MP3, AIFF, …), at any rate and channel count.
Clips are mono 16-bit PCM WAV files written atomically. Failures raise :class:`~annotator.errors.BadAudio`
with a :class:`~annotator.vocabulary.RejectReason` (``missing_file``, ``unreadable_file``, ``empty_file``,
``corrupt_audio``, ``not_audio``, ``implausible_audio``), so an importer can report each bad file by its cause.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from annotator.errors import BadAudio
from annotator.files import atomic_path
from annotator.vocabulary import RejectReason

CLIP_S = 10.0
MIN_LOOP_S = 10.0

#: Leading bytes of containers libsndfile can read: a file starting like this that libsndfile cannot open is
#: corrupt audio; anything else is not audio at all.
_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"FORM", b"fLaC", b"OggS", b"ID3", b".snd", b"caff", b"riff")
_OTHER_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
}
#: Sample rates a real recording has: below 1 kHz no microphone recording is plausible (a header claiming 1 Hz
#: would turn 64,800 samples into an 18-hour recording); 384 kHz is the highest rate audio interfaces offer.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
#: More channels than any field recorder or 7th-order ambisonics (64) writes is a broken header.
MAX_CHANNELS = 64
#: How many frames at the end of a file are read back to catch truncation that a header does not reveal.
_TAIL_FRAMES = 1024


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says (frames as libsndfile counts them)."""

    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    format: str  # libsndfile's major format name: WAV, FLAC, OGG, MP3, AIFF, …


def _describe_non_audio(head: bytes) -> str:
    for magic, what in _OTHER_MAGIC.items():
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a format libsndfile knows"
    return "a text file"


def _looks_like_audio(head: bytes) -> bool:
    if head.startswith(_AUDIO_MAGIC):
        return True
    # A bare MPEG audio stream starts with an 11-bit frame sync.
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def probe_audio(path: Path) -> AudioInfo:
    """Read the header of `path` and check it describes usable audio.

    Raises:
        BadAudio: ``missing_file`` (no file, or a folder or pipe), ``unreadable_file`` (permission denied, an I/O
            error), ``empty_file``, ``not_audio`` (libsndfile does not know the format and the file does not
            start like audio), ``corrupt_audio`` (an audio container that cannot be decoded, a header that
            promises more data than the file holds, or no frames at all) or ``implausible_audio`` (a sample rate
            or channel count no real recording has).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadAudio(RejectReason.MISSING_FILE, f"no file at {path}") from None
    except OSError as exc:
        raise BadAudio(RejectReason.UNREADABLE_FILE, f"cannot read {path}: {exc.strerror}") from None
    if not path.is_file():
        raise BadAudio(RejectReason.MISSING_FILE, f"{path} is not a file")
    if size == 0:
        raise BadAudio(RejectReason.EMPTY_FILE, f"{path.name} is empty (0 bytes)")
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise BadAudio(RejectReason.UNREADABLE_FILE, f"cannot read {path}: {exc.strerror}") from None
    try:
        with sf.SoundFile(path) as f:
            info = AudioInfo(
                sample_rate=int(f.samplerate),
                channels=int(f.channels),
                frames=int(f.frames),
                duration_s=f.frames / f.samplerate,
                format=str(f.format),
            )
            log = f.extra_info
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        if _looks_like_audio(head):
            raise BadAudio(RejectReason.CORRUPT_AUDIO, f"{path.name} cannot be decoded ({exc})") from None
        raise BadAudio(RejectReason.NOT_AUDIO, f"{path.name} is not audio ({_describe_non_audio(head)})") from None
    # libsndfile adjusts the frame count of a truncated WAV/AIFF to what is there and notes it in its log.
    if "(should be" in log or "> file length" in log:
        raise BadAudio(
            RejectReason.CORRUPT_AUDIO, f"{path.name} is truncated: the file is shorter than its header says"
        )
    if info.frames <= 0 or info.sample_rate <= 0:
        raise BadAudio(RejectReason.CORRUPT_AUDIO, f"{path.name} holds no decodable audio frames")
    _check_plausible(path, info)
    return info


def _check_plausible(path: Path, info: AudioInfo) -> None:
    """Refuse a header no real recording has, rather than import it as what it claims."""
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise BadAudio(
            RejectReason.IMPLAUSIBLE_AUDIO,
            f"{path.name} claims a sample rate of {info.sample_rate} Hz "
            f"(plausible: {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz); its header is probably broken",
        )
    if info.channels > MAX_CHANNELS:
        raise BadAudio(
            RejectReason.IMPLAUSIBLE_AUDIO,
            f"{path.name} claims {info.channels} channels (at most {MAX_CHANNELS} are plausible); "
            "its header is probably broken",
        )


def _downmix(block: np.ndarray) -> np.ndarray:
    """(frames, channels) → (frames,) float32: the mean of the channels."""
    if block.ndim == 1:
        return block.astype(np.float32, copy=False)
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float32)


def read_mono(path: Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Decode `path` (or `frames` frames from `start`) and downmix to mono float32 in [-1, 1].

    Raises:
        BadAudio: ``corrupt_audio`` when decoding fails or returns fewer frames than asked for.
    """
    path = Path(path)
    try:
        with sf.SoundFile(path) as f:
            sr = int(f.samplerate)
            if start:
                f.seek(start)
            block = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise BadAudio(RejectReason.CORRUPT_AUDIO, f"{path.name} cannot be decoded ({exc})") from None
    if frames >= 0 and block.shape[0] < frames:
        raise BadAudio(
            RejectReason.CORRUPT_AUDIO,
            f"{path.name} is truncated: asked for {frames} frames at {start}, got {block.shape[0]}",
        )
    return _downmix(block), sr


def read_clip_source(
    path: Path, info: AudioInfo, *, seed: int, key: str, clip_s: float = CLIP_S
) -> tuple[np.ndarray, float, bool]:
    """The mono 10 s clip of a recording, decoding no more of the file than needed.

    A recording shorter than ``MIN_LOOP_S`` is decoded whole and looped; a longer one is decoded only inside its
    window (plus a few frames at the end to catch truncation), so a 2-minute file is never decoded twice.

    Returns:
        (clip samples, clip start in seconds of the looped recording, whether the recording was looped).

    Raises:
        BadAudio: ``corrupt_audio`` when the file cannot be decoded where it must be.
    """
    sr = info.sample_rate
    clip_frames = round(clip_s * sr)
    if info.duration_s < MIN_LOOP_S:
        samples, _ = read_mono(path, 0, info.frames)
        looped = loop_to_min_duration(samples, sr, MIN_LOOP_S)
        start_s = clip_window_start(looped.shape[0] / sr, seed, key, clip_s)
        return cut_clip(looped, sr, start_s, clip_s), start_s, True
    start_s = clip_window_start(info.duration_s, seed, key, clip_s)
    start = min(round(start_s * sr), info.frames - clip_frames)
    tail_start = max(info.frames - _TAIL_FRAMES, start + clip_frames)
    tail_wanted = info.frames - tail_start
    try:
        with sf.SoundFile(path) as f:
            # The tail first: libsndfile's Ogg reader returns short reads when it seeks forward after a read.
            got_tail = 0
            if tail_wanted > 0:
                f.seek(tail_start)
                got_tail = f.read(frames=tail_wanted, dtype="float32", always_2d=True).shape[0]
            f.seek(start)
            block = f.read(frames=clip_frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise BadAudio(RejectReason.CORRUPT_AUDIO, f"{path.name} cannot be decoded ({exc})") from None
    if block.shape[0] < clip_frames or got_tail < tail_wanted:
        raise BadAudio(RejectReason.CORRUPT_AUDIO, f"{path.name} is truncated: the file ends before its header says")
    return _downmix(block), start / sr, False


def loop_to_min_duration(samples: np.ndarray, sr: int, min_s: float = MIN_LOOP_S) -> np.ndarray:
    """Replicate `samples` end to end until they last at least `min_s` seconds (ADVANCE's rule for 2–10 s)."""
    needed = math.ceil(min_s * sr)
    n = samples.shape[0]
    if n == 0:
        raise ValueError("cannot loop an empty recording")
    if n >= needed:
        return samples
    return np.tile(samples, math.ceil(needed / n))


def clip_window_start(duration_s: float, seed: int, key: str, clip_s: float = CLIP_S) -> float:
    """Start (s) of a uniformly random `clip_s` window of a `duration_s` recording, fixed by (`seed`, `key`).

    The draw comes from a hash of the seed and the key, not from a global generator, so it does not depend on
    the order recordings are imported in, and reruns give identical clips.
    """
    span = duration_s - clip_s
    if span <= 0:
        return 0.0
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return u * span


def cut_clip(samples: np.ndarray, sr: int, start_s: float, clip_s: float = CLIP_S) -> np.ndarray:
    """Exactly `clip_s` seconds of `samples` from `start_s` (clamped so the window fits)."""
    frames = round(clip_s * sr)
    if samples.shape[0] < frames:
        raise ValueError(f"{samples.shape[0]} frames is shorter than a {clip_s} s clip at {sr} Hz; loop it first")
    start = min(max(round(start_s * sr), 0), samples.shape[0] - frames)
    return samples[start : start + frames]


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a mono float signal with soxr (high quality); returns the input when the rates agree."""
    if sr_in == sr_out:
        return samples
    import soxr

    return soxr.resample(samples, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def write_wav_pcm16(path: Path, samples: np.ndarray, sr: int) -> None:
    """Write mono 16-bit PCM WAV atomically (temp file in the same folder, then renamed onto `path`)."""
    pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    with atomic_path(Path(path)) as tmp:
        sf.write(tmp, pcm, sr, subtype="PCM_16", format="WAV")
