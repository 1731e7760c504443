"""The ADVANCE dataset layout: where files go, metadata.csv, manifest.json, and verification (SPEC §8).

An export folder holds ``vision/<class>/<id>.jpg`` (512×512 RGB JPEG), ``sound/<class>/<id>.wav`` (10 s mono
PCM16), ``metadata.csv`` (one row per sample, columns :data:`METADATA_COLUMNS`), ``statistics.png``,
``samples.png`` and ``manifest.json`` (parameters, counts, tool version and the sha256 of every other file).
Everything here is deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.errors import DatasetError, ExportError
from annotator.vocabulary import SceneClass

VISION_DIR = "vision"
SOUND_DIR = "sound"
METADATA_FILE = "metadata.csv"
MANIFEST_FILE = "manifest.json"
STATISTICS_FILE = "statistics.png"
SAMPLES_FILE = "samples.png"

#: Columns of metadata.csv, in this order (shared interface with the training loader).
METADATA_COLUMNS: tuple[str, ...] = (
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
)

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def safe_id(text: str) -> str:
    """A filesystem-safe id part: letters, digits, ``.`` and ``-`` only.

    ``_`` is replaced too, because ``_`` separates a recording from its offset index (``12345_3``) and readers
    recover the recording with ``id.split("_", 1)[0]``.
    """
    cleaned = _UNSAFE.sub("-", text.strip()).strip(".-")
    return cleaned or "recording"


def image_relpath(cls: SceneClass, sample_id: str) -> str:
    return f"{VISION_DIR}/{cls.value}/{sample_id}.jpg"


def sound_relpath(cls: SceneClass, sample_id: str) -> str:
    return f"{SOUND_DIR}/{cls.value}/{sample_id}.wav"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ metadata.csv


@dataclass(frozen=True)
class MetadataRow:
    """One sample of an export, as written to metadata.csv."""

    id: str
    cls: SceneClass
    recording: str
    lat: float
    lon: float
    origin: str  # "original" or "offset"
    direction: str  # "" for originals, N/E/S/W for offsets
    split: str  # train / val / test
    osm_label: str  # "" when OSM gave no class
    human_label: str  # "" when no human reviewed the pair
    label_source: str  # "human" or "osm"
    reviewers: str  # ";"-joined reviewer names, sorted
    license: str
    author: str

    def as_record(self) -> list[str]:
        return [
            self.id,
            self.cls.value,
            self.recording,
            f"{self.lat:.7f}",
            f"{self.lon:.7f}",
            self.origin,
            self.direction,
            self.split,
            self.osm_label,
            self.human_label,
            self.label_source,
            self.reviewers,
            self.license,
            self.author,
        ]


def metadata_csv_bytes(rows: Iterable[MetadataRow]) -> bytes:
    """metadata.csv as bytes: header + one row per sample, ``\\n`` line ends, UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METADATA_COLUMNS)
    for row in rows:
        writer.writerow(row.as_record())
    return buffer.getvalue().encode("utf-8")


def read_metadata(dataset: Path) -> list[dict[str, str]]:
    """The rows of ``dataset/metadata.csv`` as dicts; raises DatasetError when it is missing or malformed."""
    path = dataset / METADATA_FILE
    if not path.is_file():
        raise DatasetError(f"no {METADATA_FILE} in {dataset}; is it an annotator export?")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in METADATA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path} lacks the column(s) {', '.join(missing)}")
        return list(reader)


# ------------------------------------------------------------------------------------------ manifest.json


def manifest_bytes(
    *,
    tool_version: str,
    parameters: Mapping[str, Any],
    per_class: Mapping[str, int],
    per_split: Mapping[str, int],
    files: Mapping[str, str],
) -> bytes:
    """manifest.json as bytes: sorted keys, two-space indent, trailing newline; no timestamps."""
    document = {
        "tool_version": tool_version,
        "parameters": dict(parameters),
        "counts": {"per_class": dict(per_class), "per_split": dict(per_split)},
        "files": dict(sorted(files.items())),
    }
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_manifest(dataset: Path) -> dict[str, Any]:
    """The parsed manifest.json of an export; raises DatasetError when it is missing or unreadable."""
    path = dataset / MANIFEST_FILE
    if not dataset.is_dir():
        raise DatasetError(f"{dataset} is not a folder")
    if not path.is_file():
        raise DatasetError(f"no {MANIFEST_FILE} in {dataset}; is it an annotator export?")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("files"), dict):
        raise DatasetError(f"{path} has no 'files' table; it was not written by annotator export")
    return document


# ------------------------------------------------------------------------------------------ verification


@dataclass
class VerifyReport:
    """What :func:`verify_dataset` found: files named by their path relative to the dataset folder."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    def problems(self) -> list[tuple[str, str]]:
        """(kind, relpath) for every problem, sorted by path within each kind."""
        return (
            [("missing", p) for p in self.missing]
            + [("changed", p) for p in self.changed]
            + [("extra", p) for p in self.extra]
        )


def _listed_files(dataset: Path) -> set[str]:
    return {
        path.relative_to(dataset).as_posix()
        for path in dataset.rglob("*")
        if path.is_file() or path.is_symlink()
    }


def verify_dataset(dataset: Path, *, progress: Any = None) -> VerifyReport:
    """Re-hash every file of an export against its manifest.json.

    Args:
        dataset: the export folder.
        progress: optional callable taking the number of files just checked (for a progress bar).

    Returns:
        A :class:`VerifyReport` naming every missing, changed and unexpected file.
    """
    files: dict[str, str] = read_manifest(dataset)["files"]
    report = VerifyReport()
    for relpath in sorted(files):
        path = dataset / relpath
        if not path.is_file():
            report.missing.append(relpath)
        elif sha256_file(path) != files[relpath]:
            report.changed.append(relpath)
        report.checked += 1
        if progress is not None:
            progress(1)
    report.extra = sorted(_listed_files(dataset) - set(files) - {MANIFEST_FILE})
    return report


def count_by(values: Sequence[str], order: Sequence[str]) -> dict[str, int]:
    """Counts of `values` keyed in `order` (keys with zero count included)."""
    counts = dict.fromkeys(order, 0)
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


# ------------------------------------------------------------------------------------------ writing samples

IMAGE_SIZE = 512


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
    error: str | None = None


def clip_wav_bytes(clip: Path, sample_rate: int, clip_s: float) -> bytes:
    """The clip as exactly `clip_s` seconds of mono PCM16 WAV at `sample_rate` (soxr), deterministically."""
    import numpy as np
    import soundfile

    from dataset.audio import read_mono, resample

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


def image_jpeg_bytes(image: Path, scratch: Path) -> bytes:
    """The stored image's bytes when already a 512×512 RGB JPEG (the media dir's norm), else re-encoded."""
    from PIL import Image

    data = image.read_bytes()
    with Image.open(io.BytesIO(data)) as opened:
        if opened.format == "JPEG" and opened.size == (IMAGE_SIZE, IMAGE_SIZE) and opened.mode == "RGB":
            return data
        from dataset.images import normalise_image, save_jpeg

        save_jpeg(normalise_image(opened, size=IMAGE_SIZE), scratch)
    encoded = scratch.read_bytes()
    scratch.unlink()
    return encoded


def warm_up() -> None:
    """A first pool job: import what :func:`write_sample` needs before the first sample arrives."""
    import soundfile  # noqa: F401
    import soxr  # noqa: F401
    from PIL import Image  # noqa: F401

    import dataset.audio  # noqa: F401
    import dataset.images  # noqa: F401


def watch_owner(owner_pid: int, interval_s: float = 0.5) -> None:
    """Pool-worker initializer: exit as soon as the exporting process is gone.

    A pool worker blocked on its task queue never notices that the process that made the pool was killed
    (SIGKILL runs no cleanup); this daemon thread makes it exit instead of lingering forever.
    """

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if not _pid_alive(owner_pid):
                os._exit(1)

    threading.Thread(target=watch, name="watch-owner", daemon=True).start()


def write_sample(task: SampleTask) -> SampleResult:
    """Write one sample's WAV and JPEG into the layout and hash them (runs in a worker process)."""
    from annotator.errors import AnnotatorError

    sound_dst, image_dst = Path(task.sound_dst), Path(task.image_dst)
    if task.owner_pid and not _pid_alive(task.owner_pid):
        return SampleResult(task.index, error="the export that asked for this sample is gone")
    try:
        wav = clip_wav_bytes(Path(task.clip_src), task.sample_rate, task.clip_s)
        jpeg = image_jpeg_bytes(Path(task.image_src), image_dst.with_suffix(".tmp.jpg"))
        # The class folders are made by the exporting process; never re-created here, so a worker that
        # outlives a killed export cannot resurrect its deleted temp folder.
        sound_dst.write_bytes(wav)
        image_dst.write_bytes(jpeg)
    except (OSError, RuntimeError, ValueError, AnnotatorError) as exc:
        for path in (sound_dst, image_dst):
            path.unlink(missing_ok=True)
        return SampleResult(task.index, error=f"{type(exc).__name__}: {exc}")
    return SampleResult(task.index, sound_sha256=sha256_bytes(wav), image_sha256=sha256_bytes(jpeg))


# ------------------------------------------------------------------------------------------ the output folder
# An export is written to `.OUT.export-tmp-<pid>` beside OUT (same filesystem) and renamed to OUT when complete,
# so OUT is either absent, the old export, or the new complete one: never half-written. With --force the old
# OUT is moved to `.OUT.export-old-<pid>` only after the new one is complete, then removed.


def _marker(out: Path, kind: str) -> str:
    return f".{out.name}.export-{kind}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_outputs(out: Path) -> list[Path]:
    """Remove temp folders that killed exports to `out` left behind (their process is gone); returns them.

    An ``export-old`` folder of a run killed between its two renames is put back as OUT when OUT is missing.
    """
    cleaned = []
    for kind in ("tmp", "old"):
        prefix = _marker(out, kind)
        for path in sorted(out.parent.glob(glob.escape(prefix) + "*")):
            pid_text = path.name[len(prefix) :]
            if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
                continue
            if kind == "old" and not out.exists() and not out.is_symlink():
                os.rename(path, out)
            else:
                _remove(path)
            cleaned.append(path)
    return cleaned


def _remove(path: Path, attempts: int = 20) -> None:
    """Remove a file or folder tree; retried, since a killed export's last worker may still be finishing."""
    for _ in range(attempts):
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
        if not path.exists() and not path.is_symlink():
            return
        time.sleep(0.05)


def prepare_output(out: Path, *, force: bool) -> None:
    """Refuse an existing OUT unless `force` (and even then refuse to replace a folder that is no export)."""
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ExportError(f"{out} exists and is not a folder; choose another OUT")
        if not force:
            raise ExportError(
                f"{out} already exists; pass --force to replace it (the old export is removed only after the "
                "new one is complete) or choose another OUT"
            )
        if any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
            raise ExportError(
                f"{out} is not empty and has no {MANIFEST_FILE}, so it is not an annotator export; refusing to "
                "replace it even with --force"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_outputs(out)


@contextmanager
def temporary_output(out: Path) -> Iterator[Path]:
    """A fresh temp folder beside `out`; removed on the way out unless it was renamed into place."""
    tmp = out.parent / f"{_marker(out, 'tmp')}{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            _remove(tmp)


def finalize_output(tmp: Path, out: Path, *, force: bool) -> None:
    """Rename the complete `tmp` folder to `out`, replacing an old export only when `force`."""
    if out.exists() or out.is_symlink():
        if not force:
            raise ExportError(f"{out} appeared while exporting; pass --force to replace it or choose another OUT")
        old = out.parent / f"{_marker(out, 'old')}{os.getpid()}"
        os.rename(out, old)
        os.rename(tmp, out)
        _remove(old)
    else:
        os.rename(tmp, out)
