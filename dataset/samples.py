"""The sample writer of an export: one sample's WAV and JPEG into the layout, in a pool worker (SPEC §8).

A :class:`SampleTask` holds plain values only (paths as strings), so it pickles cheaply to a worker process;
:func:`write_sample` resamples the clip to exactly 10 s of PCM16 (soxr), copies or re-encodes the image, writes
both and returns their sha256 for the manifest. A worker whose exporting process died writes nothing more
(:func:`watch_owner`, ``owner_pid``).

Two kinds of failure are kept apart: source media that will not load (``error``: that one sample is left out)
and a destination that cannot be written (``write_failure``: a full disk or a file size limit, which must stop
the whole export, never shrink it).
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from annotator.errors import AnnotatorError
from annotator.files import pid_alive, sha256_bytes
from dataset.audio import read_mono, resample
from dataset.images import normalise_image, save_jpeg
from dataset.layout import IMAGE_SIZE
from dataset.output import WriteFailure, write_failure


@dataclass(frozen=True)
class SampleTask:
    """One sample to write: its source media (absolute) and its two destinations in the layout (absolute)."""

    index: int
    clip_src: str
    image_src: str
    sound_dst: str
    image_dst: str
    sample_rate: int
    clip_s: float
    owner_pid: int = 0  # the exporting process; a worker orphaned by its death writes nothing more


@dataclass(frozen=True)
class SampleResult:
    """What a worker did with a :class:`SampleTask`: the sha256 of both written files, or why it could not."""

    index: int
    sound_sha256: str | None = None
    image_sha256: str | None = None
    error: str | None = None  # the source media would not load: leave this sample out
    write_failure: WriteFailure | None = None  # a destination could not be written: stop the export


def clip_wav_bytes(clip: Path, sample_rate: int, clip_s: float) -> bytes:
    """The clip as exactly `clip_s` seconds of mono PCM16 WAV at `sample_rate` (soxr), deterministically."""
    samples, rate = read_mono(clip)
    if rate != sample_rate:
        samples = resample(samples, rate, sample_rate)
    frames = round(clip_s * sample_rate)
    # Resampling can leave a frame too many or too few; the layout promises exactly clip_s seconds.
    samples = samples[:frames] if len(samples) >= frames else np.pad(samples, (0, frames - len(samples)))
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _loaded_image(image: Path) -> bytes | Image.Image:
    """The stored image's bytes when already a 512×512 RGB JPEG (the media dir's norm), else the image to re-encode."""
    data = image.read_bytes()
    with Image.open(io.BytesIO(data)) as opened:
        if opened.format == "JPEG" and opened.size == (IMAGE_SIZE, IMAGE_SIZE) and opened.mode == "RGB":
            return data
        return normalise_image(opened, size=IMAGE_SIZE)


def _encoded(image: bytes | Image.Image, scratch: Path) -> bytes:
    """JPEG bytes of a loaded image (re-encoded through `scratch`, with :func:`save_jpeg`'s fixed settings)."""
    if isinstance(image, bytes):
        return image
    save_jpeg(image, scratch)
    encoded = scratch.read_bytes()
    scratch.unlink()
    return encoded


def warm_up() -> None:
    """A first pool job: import what :func:`write_sample` needs before the first sample arrives."""
    import soxr  # noqa: F401  (imported lazily by dataset.audio.resample)


def watch_owner(owner_pid: int, interval_s: float = 0.5) -> None:
    """Pool-worker initializer: exit as soon as the exporting process is gone.

    A pool worker blocked on its task queue never notices that the process that made the pool was killed
    (SIGKILL runs no cleanup); this daemon thread makes it exit instead of lingering forever.
    """

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if not pid_alive(owner_pid):
                os._exit(1)

    threading.Thread(target=watch, name="watch-owner", daemon=True).start()


def write_sample(task: SampleTask) -> SampleResult:
    """Write one sample's WAV and JPEG into the layout and hash them (runs in a worker process)."""
    sound_dst, image_dst = Path(task.sound_dst), Path(task.image_dst)
    if task.owner_pid and not pid_alive(task.owner_pid):
        return SampleResult(task.index, error="the export that asked for this sample is gone")
    try:
        wav = clip_wav_bytes(Path(task.clip_src), task.sample_rate, task.clip_s)
        image = _loaded_image(Path(task.image_src))
    except (OSError, RuntimeError, ValueError, AnnotatorError) as exc:
        return SampleResult(task.index, error=f"{type(exc).__name__}: {exc}")
    scratch = image_dst.with_suffix(".tmp.jpg")
    writing = scratch
    try:
        jpeg = _encoded(image, scratch)
        # The class folders are made by the exporting process; never re-created here, so a worker that
        # outlives a killed export cannot resurrect its deleted temp folder.
        writing = sound_dst
        sound_dst.write_bytes(wav)
        writing = image_dst
        image_dst.write_bytes(jpeg)
    except OSError as exc:
        for path in (sound_dst, image_dst, scratch):
            path.unlink(missing_ok=True)
        return SampleResult(task.index, write_failure=write_failure(writing, exc))
    return SampleResult(task.index, sound_sha256=sha256_bytes(wav), image_sha256=sha256_bytes(jpeg))
