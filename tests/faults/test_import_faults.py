"""Import faults (issue 11 items 5 and 6, and two imports at once), each run through the real CLI in a subprocess.

One bad row is one reject with its reason, never the end of the import: the good rows of the batch it sits in
(every test puts them before and after it in one open batch) all land. Problems of the manifest as a whole (its
encoding, an unusable ``--rejects`` path) are found before any row is committed. Wrong data (a 16-bit PNG, a WAV
header claiming 1 Hz) is converted correctly or rejected, never imported as something else.

Tests run as root here, and root reads a ``chmod 000`` file. The unreadable-file cases therefore run the CLI
without the capabilities that let root ignore file modes (``setpriv`` drops CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH from the bounding set), so ``open`` fails with EACCES exactly as it does for a curator's own
account; as another user the CLI runs as is.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.data.generate import (
    MODE_COLOURS,
    make_audio,
    make_image_in_mode,
    make_wav_claiming_rate,
    write_csv_manifest,
)

REPO = Path(__file__).resolve().parents[2]
GOOD_ROWS = 6
#: Every test's rows fit one batch, so a crash on the bad row would take the good ones before it with it.
BATCH = "50"


def _without_file_mode_override() -> list[str]:
    """The prefix that makes file modes bind the CLI even when the tests run as root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a chmod 000 file stays readable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]


class Store:
    """A temp SQLite store driven by `python -m annotator` subprocesses (the code of this checkout)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.db = folder / "annotator.db"
        self.media = folder / "media"
        self.run("init").check()

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "annotator", "--db", str(self.db), "--media-dir", str(self.media), *args]

    def run(self, *args: str, prefix: list[str] | None = None) -> Done:
        proc = subprocess.run(
            [*(prefix or []), *self.command(*args)], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        return Done(proc.returncode, proc.stdout, proc.stderr)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as con:
            return con.execute(sql).fetchall()

    def accepted(self) -> set[str]:
        rows = self.query("SELECT r.source_id FROM recordings r JOIN pairs p ON p.recording_id = r.id")
        return {str(r[0]) for r in rows}


class Done:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def check(self, code: int = 0) -> Done:
        assert self.code == code, f"exit {self.code} != {code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        return self

    def one_sentence(self) -> str:
        """The error line a failing command printed: one line, no traceback."""
        assert "Traceback" not in self.stderr and "Traceback" not in self.stdout, self.stderr
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, self.stderr
        return lines[0]


def _good_rows(folder: Path) -> list[dict[str, object]]:
    rows = []
    for i in range(GOOD_ROWS):
        make_audio(folder / f"good{i}.wav", 2.5 + i % 3, 8000, 1, seed=i)
        rows.append({"recording_id": f"good{i}", "lat": 10 + i / 100, "lon": 20, "audio": f"good{i}.wav"})
    return rows


def _around(folder: Path, bad: dict[str, object], name: str = "m.csv") -> Path:
    """A manifest with the bad row in the middle of the good ones (all in one batch)."""
    rows = _good_rows(folder)
    middle = GOOD_ROWS // 2
    return write_csv_manifest(folder / name, [*rows[:middle], bad, *rows[middle:]])


def _rejects(path: Path) -> dict[str, str]:
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        return {row["line"]: row["reason"] for row in csv.DictReader(fh)}


def _import_one_bad_row(fault, tmp_path: Path, bad: dict[str, object], prefix: list[str] | None = None) -> Store:  # type: ignore[no-untyped-def]
    """Import the good rows around `bad`; the import must finish, keep every good row and reject line 4."""
    store = Store(tmp_path / "store")
    manifest = _around(tmp_path / "in", bad)
    rejects = tmp_path / "rejects.csv"
    done = store.run("import", str(manifest), "--batch-size", BATCH, "--rejects", str(rejects), prefix=prefix)
    fault.lost(GOOD_ROWS - len(store.accepted() & {f"good{i}" for i in range(GOOD_ROWS)}))
    assert fault.rows_lost == 0, done.stderr[-2000:]
    done.check(0)
    assert "Traceback" not in done.stderr
    assert f"{GOOD_ROWS} new, 0 unchanged, 1 rejected." in done.stdout
    return store


# ------------------------------------------------------------------------------------------ one bad row


def test_unreadable_audio_file_is_one_reject(fault, tmp_path):
    """A chmod 000 recording (read as a user the mode binds) is ``unreadable_file``; the rows around it land."""
    prefix = _without_file_mode_override()
    locked = make_audio(tmp_path / "in" / "locked.wav", 3.0, 8000, 1, seed=50)
    locked.chmod(0o000)
    _import_one_bad_row(fault, tmp_path, {"recording_id": "locked", "lat": 1, "lon": 2, "audio": "locked.wav"}, prefix)
    assert _rejects(tmp_path / "rejects.csv") == {"4": "unreadable_file"}


def test_unreadable_image_is_one_reject(fault, tmp_path):
    prefix = _without_file_mode_override()
    make_audio(tmp_path / "in" / "withimage.wav", 3.0, 8000, 1, seed=51)
    picture = make_image_in_mode(tmp_path / "in" / "locked.png", "RGBA")
    picture.chmod(0o000)
    bad = {"recording_id": "pic", "lat": 1, "lon": 2, "audio": "withimage.wav", "image": "locked.png"}
    _import_one_bad_row(fault, tmp_path, bad, prefix)
    assert _rejects(tmp_path / "rejects.csv") == {"4": "unreadable_file"}


def test_nul_byte_in_a_path_is_one_reject(fault, tmp_path):
    _import_one_bad_row(fault, tmp_path, {"recording_id": "nul", "lat": 1, "lon": 2, "audio": "good1\x00.wav"})
    assert _rejects(tmp_path / "rejects.csv") == {"4": "bad_field"}


def test_200000_character_field_is_one_reject(fault, tmp_path):
    """Past the csv module's field limit (131,072): the row is ``bad_field`` and the reader goes on."""
    bad = {"recording_id": "long", "lat": 1, "lon": 2, "audio": "good1.wav", "author": "x" * 200_000}
    _import_one_bad_row(fault, tmp_path, bad)
    assert _rejects(tmp_path / "rejects.csv") == {"4": "bad_field"}


# ------------------------------------------------------------------------------------------ manifest-level


def test_invalid_utf8_at_row_601_stops_before_anything_is_committed(fault, tmp_path):
    """Latin-1 on data row 601 of 700: exit 2 naming the line and byte, and not one of the 600 rows before."""
    folder = tmp_path / "in"
    make_audio(folder / "a.wav", 2.5, 8000, 1, seed=1)
    rows = [{"recording_id": f"r{i}", "lat": 10, "lon": 20, "audio": "a.wav"} for i in range(1, 701)]
    rows[600]["author"] = "PLACEHOLDER"
    manifest = write_csv_manifest(folder / "m.csv", rows)
    data = manifest.read_bytes()
    manifest.write_bytes(data.replace(b"PLACEHOLDER", "Jos\u00e9".encode("latin-1")))
    offset = manifest.read_bytes().index(b"Jos\xe9") + 3

    store = Store(tmp_path / "store")
    done = store.run("import", str(manifest))
    committed = store.query("SELECT count(*) FROM recordings")[0][0]
    done.check(2)
    message = done.one_sentence()
    assert committed == 0
    assert "not UTF-8" in message and "line 602" in message and f"byte {offset}" in message, message
    assert "UTF-8 and import it again" in message


@pytest.mark.parametrize("case", ["parent_is_a_file", "folder_cannot_be_made", "read_only_folder", "is_a_folder"])
def test_bad_rejects_path_fails_before_any_row_is_committed(fault, tmp_path, case):
    store = Store(tmp_path / "store")
    manifest = write_csv_manifest(tmp_path / "in" / "m.csv", _good_rows(tmp_path / "in"))
    prefix: list[str] | None = None
    if case == "parent_is_a_file":
        (tmp_path / "notes.txt").write_text("the user's notes\n")
        rejects = tmp_path / "notes.txt" / "rejects.csv"
    elif case == "folder_cannot_be_made":  # a missing folder inside a folder nobody may write to
        prefix = _without_file_mode_override()
        (tmp_path / "locked").mkdir(mode=0o555)
        rejects = tmp_path / "locked" / "new" / "rejects.csv"
    elif case == "read_only_folder":
        prefix = _without_file_mode_override()
        (tmp_path / "locked").mkdir(mode=0o555)
        rejects = tmp_path / "locked" / "rejects.csv"
    else:
        (tmp_path / "taken").mkdir()
        rejects = tmp_path / "taken"
    done = store.run("import", str(manifest), "--rejects", str(rejects), prefix=prefix)
    committed = store.query("SELECT count(*) FROM recordings")[0][0]
    assert done.code != 0, done.stdout
    message = done.one_sentence()
    assert committed == 0
    assert "rejects file" in message and "--rejects" in message, message
    if case == "parent_is_a_file":
        assert (tmp_path / "notes.txt").read_text() == "the user's notes\n"


# ------------------------------------------------------------------------------------------ wrong data


def test_16_bit_greyscale_png_is_scaled_not_white(fault, tmp_path):
    folder = tmp_path / "in"
    make_audio(folder / "a.wav", 3.0, 8000, 1, seed=2)
    make_image_in_mode(folder / "grey16.png", "I;16")
    manifest = write_csv_manifest(
        folder / "m.csv", [{"recording_id": "g", "lat": 1, "lon": 2, "audio": "a.wav", "image": "grey16.png"}]
    )
    store = Store(tmp_path / "store")
    store.run("import", str(manifest)).check(0)
    (image_path,) = store.query("SELECT image_path FROM pairs")[0]
    pixels = np.asarray(Image.open(store.media / str(image_path)).convert("RGB"), dtype=int)
    left, right = MODE_COLOURS["I;16"]
    assert np.abs(pixels[256, 100] - left).max() <= 2, pixels[256, 100]  # mid grey, not white
    assert np.abs(pixels[256, 400] - right).max() <= 2


def test_wav_header_claiming_1_hz_is_rejected_not_imported_as_18_hours(fault, tmp_path):
    make_wav_claiming_rate(tmp_path / "in" / "one_hz.wav", 1)
    store = _import_one_bad_row(fault, tmp_path, {"recording_id": "hz", "lat": 1, "lon": 2, "audio": "one_hz.wav"})
    assert _rejects(tmp_path / "rejects.csv") == {"4": "implausible_audio"}
    assert store.query("SELECT count(*) FROM recordings WHERE source_id = 'hz'") == [(0,)]


# ------------------------------------------------------------------------------------------ two at once


def _snapshot(store: Store) -> dict[str, tuple[object, ...]]:
    """Per recording: its stored facts and the bytes of its clip (pair ids differ between runs, ids do not)."""
    rows = store.query(
        "SELECT r.source_id, r.sha256, r.status, r.duration_s, p.clip_start_s, p.clip_path "
        "FROM recordings r LEFT JOIN pairs p ON p.recording_id = r.id"
    )
    return {
        str(rid): (sha, status, duration, start, (store.media / str(clip)).read_bytes() if clip else None)
        for rid, sha, status, duration, start, clip in rows
    }


def test_two_imports_of_one_manifest_at_once_both_finish_with_one_clean_store(fault, tmp_path):
    """Two `annotator import` processes on one manifest and store end as one uninterrupted import would."""
    folder = tmp_path / "in"
    rows = []
    for i in range(60):
        make_audio(folder / f"r{i}.wav", 2.5 + i % 4, 8000, 1, seed=i)
        rows.append({"recording_id": f"r{i}", "lat": 10 + i / 1000, "lon": 20, "audio": f"r{i}.wav"})
    rows.append({"recording_id": "gone", "lat": 1, "lon": 2, "audio": "missing.wav"})  # and a reject
    manifest = write_csv_manifest(folder / "m.csv", rows)
    store = Store(tmp_path / "store")

    def start(name: str) -> subprocess.Popen[str]:
        args = store.command("import", str(manifest), "--batch-size", "3", "--rejects", str(tmp_path / name))
        return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = [start("a.csv"), start("b.csv")]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    clean = Store(tmp_path / "clean")
    clean.run("import", str(manifest), "--batch-size", "3", "--rejects", str(tmp_path / "c.csv")).check(0)
    expected = _snapshot(clean)
    got = _snapshot(store)
    fault.lost(len(set(expected) - set(got)))
    for proc, (_stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr
    assert fault.rows_lost == 0
    assert got == expected
    assert store.query("SELECT count(*) FROM pairs") == [(60,)]
    assert store.query("SELECT line, reason FROM import_rejects") == [(61, "missing_file")]
    for name in ("a.csv", "b.csv"):
        assert _rejects(tmp_path / name) == {"61": "missing_file"}
