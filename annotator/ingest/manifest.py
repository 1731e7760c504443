"""Manifest readers: CSV, JSON Lines and Freesound search-results JSON, streamed row by row (SPEC §5).

Every reader yields :class:`ManifestRow` objects with the raw text of each field; checking the values is the
importer's job, so one bad row is one reject and never stops the reader. A manifest whose layout is unusable
(missing columns, not JSON, no ``results`` list) raises :class:`~annotator.errors.BadManifest` before anything
is imported.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from annotator.errors import BadManifest
from annotator.vocabulary import RecordingSource, RejectReason

REQUIRED_COLUMNS = ("recording_id", "lat", "lon", "audio")
OPTIONAL_COLUMNS = ("image", "license", "author", "source_url")


@dataclass(frozen=True)
class ManifestRow:
    """One row as written in the manifest (strings, or None where a field is absent or empty)."""

    line: int  # 1-based data row number (header excluded)
    source: RecordingSource
    recording_id: str | None
    lat: str | None
    lon: str | None
    audio: str | None  # as written (CSV/JSONL) or as found under the audio root (Freesound)
    image: str | None = None
    license: str | None = None
    author: str | None = None
    source_url: str | None = None
    problem: tuple[RejectReason, str] | None = None  # (reason, detail) when the reader already knows it is bad

    @classmethod
    def unreadable(cls, line: int, source: RecordingSource, detail: str) -> ManifestRow:
        """A row the reader cannot make sense of (a JSON line that is not an object, …): ``bad_row``."""
        return cls(line, source, None, None, None, None, problem=(RejectReason.BAD_ROW, detail))

    def fingerprint(self) -> bytes:
        """A short digest of the row's data, to tell an identical duplicate from a conflicting one."""
        data = (self.lat, self.lon, self.audio, self.image, self.license, self.author, self.source_url)
        return hashlib.blake2b(repr(data).encode(), digest_size=8).digest()


@dataclass
class Manifest:
    """An opened manifest: its format, the columns it has and a way to stream its rows."""

    path: Path
    format: str  # "csv", "jsonl" or "freesound"
    columns: tuple[str, ...]
    approx_rows: int | None = None
    _rows: Iterator[ManifestRow] | None = field(default=None, repr=False)

    def rows(self) -> Iterator[ManifestRow]:
        assert self._rows is not None, "rows() can be iterated once"
        rows, self._rows = self._rows, None
        return rows


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _missing_columns_error(path: Path, present: list[str]) -> BadManifest:
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    found = ", ".join(present) if present else "none"
    return BadManifest(
        f"manifest {path.name} lacks the required column(s) {', '.join(missing)} "
        f"(found: {found}); it needs {', '.join(REQUIRED_COLUMNS)} and may have {', '.join(OPTIONAL_COLUMNS)}"
    )


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _row_from_mapping(line: int, source: RecordingSource, values: dict[str, object]) -> ManifestRow:
    return ManifestRow(
        line=line,
        source=source,
        recording_id=_clean(values.get("recording_id")),
        lat=_clean(values.get("lat")),
        lon=_clean(values.get("lon")),
        audio=_clean(values.get("audio")),
        image=_clean(values.get("image")),
        license=_clean(values.get("license")),
        author=_clean(values.get("author")),
        source_url=_clean(values.get("source_url")),
    )


def _open_csv(path: Path) -> Manifest:
    fh = path.open(newline="", encoding="utf-8-sig")
    sample = fh.read(4096)
    fh.seek(0)
    try:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else csv.Sniffer().sniff(sample, ",;\t").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(fh, delimiter=delimiter)
    header = next(reader, None)
    columns = [c.strip().lower() for c in header] if header else []
    if any(c not in columns for c in REQUIRED_COLUMNS):
        fh.close()
        raise _missing_columns_error(path, columns)

    def rows() -> Iterator[ManifestRow]:
        with fh:
            for line, cells in enumerate(reader, start=1):
                if not any(cell.strip() for cell in cells):
                    continue
                yield _row_from_mapping(line, RecordingSource.MANIFEST, dict(zip(columns, cells, strict=False)))

    return Manifest(path, "csv", tuple(columns), max(_count_lines(path) - 1, 0), rows())


def _open_jsonl(path: Path) -> Manifest:
    fh = path.open(encoding="utf-8-sig")
    first: dict[str, object] | None = None
    for text in fh:
        if text.strip():
            try:
                first = json.loads(text)
            except json.JSONDecodeError as exc:
                fh.close()
                raise BadManifest(f"manifest {path.name} is not JSON Lines: first line: {exc}") from None
            break
    if not isinstance(first, dict):
        fh.close()
        raise BadManifest(f"manifest {path.name} has no JSON object on its first line")
    columns = [str(k).strip().lower() for k in first]
    if any(c not in columns for c in REQUIRED_COLUMNS):
        fh.close()
        raise _missing_columns_error(path, columns)
    fh.seek(0)

    def rows() -> Iterator[ManifestRow]:
        with fh:
            line = 0
            for text in fh:
                if not text.strip():
                    continue
                line += 1
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield ManifestRow.unreadable(line, RecordingSource.MANIFEST, str(exc))
                    continue
                if not isinstance(obj, dict):
                    yield ManifestRow.unreadable(line, RecordingSource.MANIFEST, "not a JSON object")
                    continue
                values = {str(k).strip().lower(): v for k, v in obj.items()}
                row = _row_from_mapping(line, RecordingSource.MANIFEST, values)
                absent = [c for c in ("recording_id", "audio") if c not in values]
                if absent:
                    row = replace(row, problem=(RejectReason.BAD_ROW, f"no {', '.join(absent)} field"))
                yield row

    return Manifest(path, "jsonl", tuple(columns), _count_lines(path), rows())


_FREESOUND_NAME = re.compile(r"^(\d+)(?=[._])")


def index_audio_by_id(root: Path) -> dict[str, str]:
    """Map Freesound ids to files under `root` named ``<id>.<ext>`` or ``<id>_<anything>.<ext>``.

    One walk of the folder; an exact ``<id>.<ext>`` wins over ``<id>_…``, then the shortest, then the first in
    sorted order, so the choice is deterministic. Paths are relative to `root` (POSIX separators).
    """
    best: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            match = _FREESOUND_NAME.match(name)
            if not match or name.startswith("."):
                continue
            rel = Path(os.path.relpath(Path(folder) / name, root)).as_posix()
            key = match.group(1)

            def rank(r: str, k: str = key) -> tuple[bool, int, str]:
                return (not Path(r).name.startswith(f"{k}."), len(r), r)

            if key not in best or rank(rel) < rank(best[key]):
                best[key] = rel
    return best


def _open_freesound(path: Path, document: object, audio_root: Path) -> Manifest:
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise BadManifest(
            f"manifest {path.name} is JSON but not a Freesound search result: it needs a 'results' list "
            "(use CSV or JSON Lines with columns recording_id, lat, lon, audio otherwise)"
        )
    results: list[object] = document["results"]
    present = sorted({k for r in results if isinstance(r, dict) for k in r})
    if results and not any(isinstance(r, dict) and "id" in r for r in results):
        raise BadManifest(
            f"manifest {path.name}: the Freesound results lack the required field id (found: {', '.join(present)})"
        )
    files = index_audio_by_id(audio_root) if audio_root.is_dir() else {}

    def rows() -> Iterator[ManifestRow]:
        for line, result in enumerate(results, start=1):
            if not isinstance(result, dict):
                yield ManifestRow.unreadable(line, RecordingSource.FREESOUND, "not an object")
                continue
            sound_id = _clean(result.get("id"))
            geotag = _clean(result.get("geotag"))
            lat = lon = None
            if geotag:
                parts = geotag.replace(",", " ").split()
                # A malformed geotag goes on as text in both fields, to be reported as bad coordinates.
                lat, lon = parts if len(parts) == 2 else (geotag, geotag)
            problem: tuple[RejectReason, str] | None = None
            audio = files.get(sound_id or "")
            if sound_id and audio is None:
                problem = (
                    RejectReason.MISSING_FILE,
                    f"no file named {sound_id}.* or {sound_id}_*.* under {audio_root}",
                )
            yield ManifestRow(
                line=line,
                source=RecordingSource.FREESOUND,
                recording_id=sound_id,
                lat=lat,
                lon=lon,
                audio=audio,
                license=_clean(result.get("license")),
                author=_clean(result.get("username")),
                source_url=_clean(result.get("url")),
                problem=problem,
            )

    return Manifest(path, "freesound", tuple(present), len(results), rows())


def open_manifest(path: Path, *, audio_root: Path | None = None) -> Manifest:
    """Open `path` as CSV (``.csv``/``.tsv``), JSON Lines (``.jsonl``/``.ndjson``) or Freesound JSON (``.json``).

    CSV and JSON Lines are streamed; a Freesound search result is one JSON document (a page of at most a few
    hundred results) and is parsed whole.

    Raises:
        BadManifest: the file is missing or unreadable, or lacks a required column (the message names the
            missing and the found columns).
    """
    path = Path(path)
    if not path.is_file():
        raise BadManifest(f"manifest {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            return _open_jsonl(path)
        if suffix == ".json":
            try:
                with path.open(encoding="utf-8-sig") as fh:
                    document = json.load(fh)
            except json.JSONDecodeError as exc:
                raise BadManifest(f"manifest {path.name} is not valid JSON: {exc}") from None
            return _open_freesound(path, document, audio_root or path.parent)
        return _open_csv(path)
    except UnicodeDecodeError as exc:
        raise BadManifest(f"manifest {path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BadManifest(f"cannot read manifest {path}: {exc.strerror}") from None
