"""The ADVANCE dataset layout: where files go, metadata.csv, manifest.json, and verification (SPEC §8).

An export folder holds ``vision/<class>/<id>.jpg`` (512×512 RGB JPEG), ``sound/<class>/<id>.wav`` (10 s mono
PCM16), ``metadata.csv`` (one row per sample, columns :data:`METADATA_COLUMNS`), ``README.md`` (the data card),
``ATTRIBUTION.csv`` (author, licence and source of every recording), ``splits/<split>.txt`` (the sample ids of each
split), ``statistics.png``, ``samples.png`` and ``manifest.json`` (parameters, counts, the split and its leakage,
tool version and the sha256 of every other file).
Everything here is deterministic: the same inputs give the same bytes. This module is the format only, shared by
the writer (:mod:`dataset.samples`, :mod:`dataset.output`, :mod:`annotator.export`) and the readers
(:mod:`model.data`, ``annotator verify``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.errors import DatasetError
from annotator.files import sha256_file
from annotator.vocabulary import LabelSource, OffsetDirection, PairOrigin, SceneClass

VISION_DIR = "vision"
SOUND_DIR = "sound"
METADATA_FILE = "metadata.csv"
MANIFEST_FILE = "manifest.json"
STATISTICS_FILE = "statistics.png"
SAMPLES_FILE = "samples.png"
README_FILE = "README.md"
ATTRIBUTION_FILE = "ATTRIBUTION.csv"
SPLITS_DIR = "splits"
#: Side of the square exported images, in pixels.
IMAGE_SIZE = 512

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
    "source_url",
    "image_source",
)
#: The columns a reader needs (exports written before ``source_url`` and ``image_source`` lack those two).
METADATA_REQUIRED: tuple[str, ...] = METADATA_COLUMNS[:-2]

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def safe_id(text: str) -> str:
    """A filesystem-safe id part: letters, digits, ``.`` and ``-`` only.

    ``_`` is replaced too, because ``_`` separates a recording from its offset index (``12345_3``) and readers
    recover the recording with ``id.split("_", 1)[0]``.
    """
    cleaned = _UNSAFE.sub("-", text.strip()).strip(".-")
    return cleaned or "recording"


def image_relpath(cls: SceneClass, sample_id: str) -> str:
    """``vision/<class>/<id>.jpg``: a sample's image, relative to the dataset folder."""
    return f"{VISION_DIR}/{cls.value}/{sample_id}.jpg"


def sound_relpath(cls: SceneClass, sample_id: str) -> str:
    """``sound/<class>/<id>.wav``: a sample's clip, relative to the dataset folder."""
    return f"{SOUND_DIR}/{cls.value}/{sample_id}.wav"


# ------------------------------------------------------------------------------------------ metadata.csv


@dataclass(frozen=True)
class MetadataRow:
    """One sample of an export, as written to metadata.csv."""

    id: str
    cls: SceneClass
    recording: str
    lat: float
    lon: float
    origin: PairOrigin
    direction: OffsetDirection | None  # None (an empty cell) for originals
    split: str  # train / val / test
    osm_label: str  # "" when OSM gave no class
    human_label: str  # "" when no human reviewed the pair
    label_source: LabelSource
    reviewers: str  # ";"-joined reviewer names, sorted
    license: str
    author: str
    source_url: str = ""  # the recording's page (CC-BY attribution needs it)
    image_source: str = ""  # the imagery source, as :func:`dataset.datacard.public_source` shows it

    def as_record(self) -> list[str]:
        """The row's cells in :data:`METADATA_COLUMNS` order."""
        return [
            self.id,
            self.cls.value,
            self.recording,
            f"{self.lat:.7f}",
            f"{self.lon:.7f}",
            self.origin.value,
            self.direction.value if self.direction is not None else "",
            self.split,
            self.osm_label,
            self.human_label,
            self.label_source.value,
            self.reviewers,
            self.license,
            self.author,
            self.source_url,
            self.image_source,
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
        missing = [c for c in METADATA_REQUIRED if c not in (reader.fieldnames or [])]
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
    split: Mapping[str, Any] | None = None,
) -> bytes:
    """manifest.json as bytes: sorted keys, two-space indent, trailing newline; no timestamps.

    Args:
        tool_version: the version of the tool that wrote the dataset (passed in by the caller).
        parameters: the export parameters that decide the dataset's bytes.
        per_class: samples per class value.
        per_split: samples per split value.
        files: sha256 of every file of the dataset but the manifest, keyed by relative path.
        split: how the split was drawn, its leakage and realised shares (:meth:`dataset.split.SplitPlan.to_json`).
    """
    document: dict[str, Any] = {
        "tool_version": tool_version,
        "parameters": dict(parameters),
        "counts": {"per_class": dict(per_class), "per_split": dict(per_split)},
        "files": dict(sorted(files.items())),
    }
    if split is not None:
        document["split"] = dict(split)
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


#: The keys of the manifest :func:`manifest_bytes` writes, and the type of each value.
_MANIFEST_SHAPE: dict[str, type] = {"tool_version": str, "parameters": dict, "counts": dict, "files": dict}
#: Keys it may write besides (manifests written before they existed lack them).
_MANIFEST_OPTIONAL: dict[str, type] = {"split": dict}
#: A manifest larger than this is no export's (ours list a few hundred bytes per file).
_MANIFEST_MAX_BYTES = 256 * 2**20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def export_manifest_files(dataset: Path) -> set[str] | None:
    """The files the ``manifest.json`` of an export lists, or None when there is none or it is not ours.

    Ours is the document :func:`manifest_bytes` writes: its four keys (and the optional ``split``) with their
    types, and a files table of relative paths (no ``..``) to sha256 hex digests. Used to decide whether a folder
    may be replaced.
    """
    path = dataset / MANIFEST_FILE
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > _MANIFEST_MAX_BYTES:
            return None
        document = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict) or not set(_MANIFEST_SHAPE) <= set(document):
        return None
    shape = {**_MANIFEST_SHAPE, **_MANIFEST_OPTIONAL}
    if not set(document) <= set(shape) or not all(isinstance(document[key], shape[key]) for key in document):
        return None
    files = document["files"]
    for relpath, digest in files.items():
        parts = relpath.split("/")
        if relpath.startswith("/") or ".." in parts or "" in parts or relpath == MANIFEST_FILE:
            return None
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            return None
    return set(files)


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
        """True when every listed file is there unchanged and nothing else is."""
        return not (self.missing or self.changed or self.extra)

    def problems(self) -> list[tuple[str, str]]:
        """(kind, relpath) for every problem, sorted by path within each kind."""
        return (
            [("missing", p) for p in self.missing]
            + [("changed", p) for p in self.changed]
            + [("extra", p) for p in self.extra]
        )


def _listed_files(dataset: Path) -> set[str]:
    return {path.relative_to(dataset).as_posix() for path in dataset.rglob("*") if path.is_file() or path.is_symlink()}


def verify_dataset(dataset: Path, *, progress: Callable[[int], object] | None = None) -> VerifyReport:
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
