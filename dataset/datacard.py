"""The data card of an export: the facts it is rendered from, ``ATTRIBUTION.csv``, and the public form of sources.

The facts are gathered from the store by :mod:`annotator.export.datacard`; ``README.md`` is rendered from them by
:mod:`dataset.datacard_readme`. Same facts, same bytes: no dates but those the store holds, numbers in fixed
formats, every listing sorted. Nothing of the curator's machine or credentials reaches an export: sources are
shown by :func:`public_source`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from annotator.vocabulary import IMAGE_SOURCE_MANIFEST

#: Columns of ATTRIBUTION.csv, in this order.
ATTRIBUTION_COLUMNS: tuple[str, ...] = ("recording", "source_id", "author", "license", "source_url", "samples")
#: Query parameters of an imagery URL whose values are credentials, never written into an export.
_SECRET_PARAM = re.compile(r"key|token|secret|passw|signature|sig$|auth|credential", re.IGNORECASE)
_URL = re.compile(r"^(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*:)?(?P<url>[A-Za-z][A-Za-z0-9+.-]*://.*)$")
UNKNOWN = "unknown"
SPLIT_NAMES = ("train", "val", "test")
WEBDATASET = "webdataset"  # parameters["format"] of a shard export


def public_source(spec: str | None) -> str:
    """An imagery SOURCE as an export may show it: no credentials, no folders of the curator's machine.

    URLs keep their host and path; a password and the values of key-like query parameters become ``***``.
    A local path keeps its last folder or file (and a ``{z}/{x}/{y}`` template after it).

    >>> public_source("https://u:pw@tiles.example.org/{z}/{x}/{y}.png?access_token=abc&style=sat")
    'https://tiles.example.org/{z}/{x}/{y}.png?access_token=***&style=sat'
    >>> public_source("/home/ann/ortho/tiles/{z}/{x}/{y}.png")
    'tiles/{z}/{x}/{y}.png'
    """
    if not spec:
        return ""
    if spec == IMAGE_SOURCE_MANIFEST:
        return spec
    match = _URL.match(spec)
    if match:
        return (match["prefix"] or "") + _redacted_url(match["url"])
    parts = [p for p in PurePosixPath(spec.replace("\\", "/")).parts if p not in ("/", "")]
    templated = next((i for i, part in enumerate(parts) if "{" in part), None)
    if templated is not None:
        return "/".join(parts[max(templated - 1, 0) :])
    return parts[-1] if parts else ""


def _redacted_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = "&".join(
        f"{key}=***" if sep and _SECRET_PARAM.search(key) else f"{key}{sep}{value}"
        for key, sep, value in (piece.partition("=") for piece in parts.query.split("&") if piece)
    )
    return urlunsplit(parts._replace(netloc=host, query=query))


# ------------------------------------------------------------------------------------------ the facts


@dataclass(frozen=True)
class Attribution:
    """One recording of the export as ATTRIBUTION.csv lists it."""

    recording: str  # the export's recording id (metadata.csv ``recording``)
    source_id: str  # the id in its source (e.g. the Freesound id)
    author: str
    license: str
    source_url: str
    samples: int

    def as_record(self) -> list[str]:
        return [self.recording, self.source_id, self.author, self.license, self.source_url, str(self.samples)]


@dataclass(frozen=True)
class SourceUse:
    """A source (OSM extract or endpoint, imagery) with its date and the number of exported pairs it gave."""

    source: str
    date: str  # "" when the store does not know it
    pairs: int


@dataclass(frozen=True)
class CorrectionMatrix:
    """OSM label (rows, ``none`` for no class) against the human label (columns) of the exported originals."""

    rows: list[str]
    columns: list[str]
    counts: list[list[int]]


@dataclass(frozen=True)
class Agreement:
    """What the store says about the reviewers (all of its review projects, not only the exported pairs)."""

    annotators: int
    alpha: float | None  # Krippendorff's alpha, nominal; None when no pair has two annotators' verdicts
    alpha_units: int


@dataclass(frozen=True)
class CardFacts:
    """Everything the data card says, as plain values (class and split keys are their string values)."""

    tool_version: str
    parameters: Mapping[str, Any]
    per_class_split: Mapping[str, Mapping[str, int]]  # class → split → samples, classes in index order
    originals: Mapping[str, int]
    offsets: Mapping[str, int]
    dropped: Mapping[str, int]
    augmented: Sequence[str]
    label_sources: Mapping[str, int]  # over the exported originals
    final_reasons: Mapping[str, int]  # how the human labels of the exported originals were decided
    reviewers: int  # distinct annotators of the exported originals
    correction: CorrectionMatrix
    agreement: Agreement | None
    osm_sources: Sequence[SourceUse]
    imagery_sources: Sequence[SourceUse]
    attribution: Sequence[Attribution]
    split: Mapping[str, Any]  # :meth:`dataset.split.SplitPlan.to_json`
    footprint_side_m: float = 256.0
    looped_recordings: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(sum(s.values()) for s in self.per_class_split.values())

    @property
    def total_originals(self) -> int:
        return sum(self.originals.values())


# ------------------------------------------------------------------------------------------ ATTRIBUTION.csv


def attribution_csv_bytes(rows: Sequence[Attribution]) -> bytes:
    """ATTRIBUTION.csv: header + one row per recording, sorted by recording id; ``\\n`` line ends, UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ATTRIBUTION_COLUMNS)
    for row in sorted(rows, key=lambda r: r.recording):
        writer.writerow(row.as_record())
    return buffer.getvalue().encode("utf-8")
