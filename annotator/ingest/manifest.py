"""Manifest readers: CSV, JSON Lines and Freesound search-results JSON, streamed row by row (SPEC §5).

Every reader yields :class:`ManifestRow` objects with the raw text of each field; checking the values is the
importer's job, so one bad row is one reject and never stops the reader: a field the store cannot hold (a NUL
byte, more than :data:`MAX_FIELD_CHARS` characters, or a CSV field past the csv module's limit) makes that row a
``bad_field`` reject. A manifest whose layout is unusable (missing columns, not JSON, no ``results`` list) or
that is not UTF-8 anywhere in it raises :class:`~annotator.errors.BadManifest` before anything is imported: the
whole file is scanned first (the same pass counts its lines for the progress display), because an encoding error
found while streaming, at row 601, would come after three batches were committed.
"""

from __future__ import annotations

import codecs
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
#: The longest field a row may have: far above any path (4,096 bytes on Linux), id, licence or URL, far below
#: the csv module's own limit (131,072), so every format rejects an overlong field the same way.
MAX_FIELD_CHARS = 8_192
#: The store's recording id columns (recordings.source_id, import_rejects.recording_ref) hold this many characters;
#: PostgreSQL enforces it (SQLite does not), so a longer id is a reject, never an aborted batch.
MAX_ID_CHARS = 128
_SCAN_CHUNK = 1 << 20


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


def scan_text(path: Path) -> int:
    """Check that the whole file is UTF-8 and count its newlines, in one streamed pass.

    Raises:
        BadManifest: the file is not UTF-8; the message names the line and byte offset of the first bad byte.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = offset = 0
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(_SCAN_CHUNK)
            pending = len(decoder.getstate()[0])  # bytes of a character split across the last chunk boundary
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise _not_utf8_error(path, offset - pending + exc.start, exc.object) from None
            if not chunk:
                return lines
            lines += chunk.count(b"\n")
            offset += len(chunk)


def _not_utf8_error(path: Path, position: int, data: bytes) -> BadManifest:
    with path.open("rb") as fh:
        before = fh.read(position)
        bad = fh.read(1)
    line = before.count(b"\n") + 1
    return BadManifest(
        f"manifest {path.name} is not UTF-8 text: line {line} has the byte 0x{bad.hex()} at byte {position} "
        "(nothing was imported); save the file as UTF-8 and import it again"
    )


def _field_problem(values: dict[str, str | None]) -> tuple[RejectReason, str] | None:
    """``bad_field`` for a field the store cannot hold (a NUL byte, or too long), else None."""
    for name, value in values.items():
        if value is None:
            continue
        if "\x00" in value:
            return RejectReason.BAD_FIELD, f"{name} contains a NUL byte"
        limit = MAX_ID_CHARS if name in ("recording_id", "id") else MAX_FIELD_CHARS
        if len(value) > limit:
            return RejectReason.BAD_FIELD, f"{name} is {len(value):,} characters long (at most {limit:,})"
    return None


def _row_from_mapping(line: int, source: RecordingSource, values: dict[str, object]) -> ManifestRow:
    fields = {name: _clean(values.get(name)) for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    problem = _field_problem(fields)
    if problem is not None:
        recording_id = fields["recording_id"]
        if recording_id is not None and ("\x00" in recording_id or len(recording_id) > MAX_ID_CHARS):
            recording_id = None  # not even the rejects file should hold it
        return ManifestRow(line, source, recording_id, None, None, None, problem=problem)
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


def _unparsable_csv_row(line: int, error: csv.Error) -> ManifestRow:
    """A CSV row the csv module refused; its only error in the non-strict dialect is a field past its limit."""
    if "field limit" in str(error):
        detail = f"a field is longer than the CSV reader's limit of {csv.field_size_limit():,} characters"
        problem = (RejectReason.BAD_FIELD, detail)
    else:
        problem = (RejectReason.BAD_ROW, f"unreadable CSV row: {error}")
    return ManifestRow(line, RecordingSource.MANIFEST, None, None, None, None, problem=problem)


def _open_csv(path: Path) -> Manifest:
    lines = scan_text(path)
    fh = path.open(newline="", encoding="utf-8-sig")
    sample = fh.read(4096)
    fh.seek(0)
    try:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else csv.Sniffer().sniff(sample, ",;\t").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(fh, delimiter=delimiter)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        fh.close()
        raise BadManifest(f"manifest {path.name} has an unreadable header line ({exc})") from None
    columns = [c.strip().lower() for c in header] if header else []
    if any(c not in columns for c in REQUIRED_COLUMNS):
        fh.close()
        raise _missing_columns_error(path, columns)

    def rows() -> Iterator[ManifestRow]:
        with fh:
            line = 0
            while True:
                line += 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # a field past the csv module's limit: the reader resumes on the next line
                    yield _unparsable_csv_row(line, exc)
                    continue
                except UnicodeDecodeError as exc:  # changed since the scan
                    raise BadManifest(f"manifest {path.name} is not UTF-8 text at data row {line}: {exc}") from None
                if not any(cell.strip() for cell in cells):
                    continue
                yield _row_from_mapping(line, RecordingSource.MANIFEST, dict(zip(columns, cells, strict=False)))

    return Manifest(path, "csv", tuple(columns), max(lines - 1, 0), rows())


def _open_jsonl(path: Path) -> Manifest:
    lines = scan_text(path)
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
                if absent and row.problem is None:
                    row = replace(row, problem=(RejectReason.BAD_ROW, f"no {', '.join(absent)} field"))
                yield row

    return Manifest(path, "jsonl", tuple(columns), lines, rows())


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
            text = {name: _clean(result.get(name)) for name in ("license", "username", "url")}
            problem = _field_problem({"id": sound_id, "geotag": geotag, **text})
            audio = files.get(sound_id or "")
            if problem is not None:
                sound_id = lat = lon = None
            elif sound_id and audio is None:
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
            scan_text(path)
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
