"""The lifecycle of an export's output folder: never half-written, old export replaced only when complete.

An export is written to ``.OUT.export-tmp-<pid>`` beside OUT (same filesystem) and renamed to OUT when complete,
so OUT is either absent, the old export, or the new complete one: never half-written. With ``--force`` the old
OUT is moved to ``.OUT.export-old-<pid>`` only after the new one is complete, then removed. Folders left by a
killed export (its pid gone) are cleaned by the next export to the same OUT.

Nothing of the user's is ever removed: ``--force`` replaces only a folder whose ``manifest.json`` is an export's
and lists every file in it (:func:`check_replaceable`), never the store or its media (:func:`refuse_protected`).
Free space is checked before anything is written (:func:`check_free_space`), and a write that fails (full disk,
file size limit) aborts the whole export with one sentence (:func:`write_failure_error`) instead of leaving a
smaller export that looks complete.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from annotator.errors import ExportError
from annotator.files import pid_alive
from dataset.layout import MANIFEST_FILE, export_manifest_files

#: Unexpected files named in a refusal (the rest are counted).
NAMED_FILES = 5
#: Room asked for beyond the estimated files: figures, metadata.csv, manifest.json and filesystem slack.
MARGIN_BYTES = 4 * 2**20
MARGIN_FRACTION = 0.02
#: Files are counted in whole blocks of this size, as a filesystem stores them.
BLOCK_BYTES = 4096
#: A WAV header (RIFF, fmt and data chunks) in bytes.
WAV_HEADER_BYTES = 44
MB = 2**20


class _Scratch(StrEnum):
    """The two kinds of folder an export keeps beside OUT while it runs."""

    TMP = "tmp"  # the new export being written
    OLD = "old"  # the previous export, between the two renames of --force


def _marker(out: Path, kind: _Scratch) -> str:
    return f".{out.name}.export-{kind.value}-"


def _scratch_path(out: Path, kind: _Scratch) -> Path:
    return out.parent / f"{_marker(out, kind)}{os.getpid()}"


def clean_stale_outputs(out: Path) -> list[Path]:
    """Remove temp folders that killed exports to `out` left behind (their process is gone); returns them.

    An ``export-old`` folder of a run killed between its two renames is put back as OUT when OUT is missing.
    """
    cleaned = []
    for kind in _Scratch:
        prefix = _marker(out, kind)
        for path in sorted(out.parent.glob(glob.escape(prefix) + "*")):
            pid_text = path.name[len(prefix) :]
            if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
                continue
            if kind is _Scratch.OLD and not out.exists() and not out.is_symlink():
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


@dataclass(frozen=True)
class Protected:
    """A path an export never writes into nor replaces: the store's database file or its media directory."""

    path: Path
    what: str  # "the store", "the store's media directory"


def prepare_output(out: Path, *, force: bool, protected: Sequence[Protected] = ()) -> None:
    """Refuse an existing OUT unless `force`, and even then anything that is not solely an earlier export.

    Args:
        out: the absolute OUT folder.
        force: replace an earlier export at OUT (checked again by :func:`finalize_output`).
        protected: the store and its media: OUT may not be, hold or lie inside any of them.

    Raises:
        ExportError: OUT exists and may not be replaced, or cannot be made where it is.
    """
    refuse_protected(out, protected)
    _check_ancestors(out)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ExportError(f"{out} exists and is not a folder; choose another OUT")
        if not force:
            raise ExportError(
                f"{out} already exists; pass --force to replace it (the old export is removed only after the "
                "new one is complete) or choose another OUT"
            )
        try:
            check_replaceable(out)
        except OSError as exc:
            raise ExportError(f"cannot look into {out}: {exc.strerror}; choose another OUT") from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot make the folder {out.parent}: {exc.strerror}; choose another OUT") from None
    clean_stale_outputs(out)


def refuse_protected(out: Path, protected: Sequence[Protected]) -> None:
    """Raise ExportError when OUT is, holds or lies inside the store or its media directory."""
    real_out = Path(os.path.realpath(out))
    for item in protected:
        real = Path(os.path.realpath(item.path))
        if real_out == real or real_out in real.parents:
            what = f"is {item.what}" if real_out == real else f"holds {item.what} ({item.path})"
            raise ExportError(f"{out} {what}, which an export never replaces, even with --force; choose another OUT")
        if real in real_out.parents:
            raise ExportError(f"{out} lies inside {item.what} ({item.path}); choose another OUT outside it")


def _check_ancestors(out: Path) -> None:
    """Raise ExportError when a folder above OUT exists as a file, so OUT can never be made."""
    for ancestor in reversed(out.parents):
        if ancestor.exists() and not ancestor.is_dir():
            raise ExportError(f"{ancestor} is a file, not a folder, so {out} cannot be made there; choose another OUT")
        if not ancestor.exists():
            return


def _unexpected_entries(out: Path, listed: set[str]) -> list[str]:
    """Everything under `out` an export did not write: files not in `listed`, symlinks, special files."""
    unexpected = []
    for dirpath, dirnames, filenames in os.walk(out):
        base = Path(dirpath)
        for name in sorted(dirnames):
            if (base / name).is_symlink():  # os.walk does not descend into it; it is no folder an export makes
                unexpected.append((base / name).relative_to(out).as_posix())
        for name in sorted(filenames):
            path = base / name
            relpath = path.relative_to(out).as_posix()
            ours = relpath == MANIFEST_FILE or relpath in listed
            if not ours or path.is_symlink() or not path.is_file():
                unexpected.append(relpath)
        dirnames.sort()
    return unexpected


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMED_FILES])
    return shown + (f" and {len(names) - NAMED_FILES} more" if len(names) > NAMED_FILES else "")


def check_replaceable(out: Path) -> None:
    """Raise ExportError unless the folder `out` is empty or solely an annotator export.

    An export is a folder whose ``manifest.json`` is the one :func:`dataset.layout.manifest_bytes` writes and lists
    every file in it (files it lists may be missing: a damaged export can still be replaced). Anything else is
    someone's data: refuse and name what is there.
    """
    if not any(out.iterdir()):
        return
    listed = export_manifest_files(out)
    if listed is None:
        everything = sorted({MANIFEST_FILE} & {p.name for p in out.iterdir()}) + _unexpected_entries(out, set())
        why = (
            f"its {MANIFEST_FILE} was not written by annotator export"
            if (out / MANIFEST_FILE).exists()
            else f"it is not empty and has no {MANIFEST_FILE}"
        )
        raise ExportError(
            f"{out} is not an annotator export ({why}) and holds {_files(len(everything))} ({_some(everything)}); "
            "refusing to replace it even with --force; choose another OUT"
        )
    unexpected = _unexpected_entries(out, listed)
    if unexpected:
        raise ExportError(
            f"{out} holds {_files(len(unexpected))} its {MANIFEST_FILE} does not list ({_some(unexpected)}); "
            "refusing to replace it even with --force; move them out of it or choose another OUT"
        )


# ------------------------------------------------------------------------------------------ free space


def _existing_ancestor(path: Path) -> Path:
    """`path` or the nearest folder above it that exists."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return Path(os.sep)


def _mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding the existing folder `path`."""
    path = Path(os.path.realpath(path))
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path


def _mb(n: int) -> int:
    """Whole megabytes, rounded up, so "free N MB" is always enough."""
    return max(1, -(-n // MB))


def _in_blocks(size: int) -> int:
    return -(-size // BLOCK_BYTES) * BLOCK_BYTES


def estimated_size(image_sizes: Iterable[int], sample_rate: int, clip_s: float) -> int:
    """Bytes an export of these samples takes: each source image as is, each clip as PCM16 WAV, plus a margin.

    Args:
        image_sizes: the size of every sample's source image (copied or re-encoded at about that size).
        sample_rate: the WAVs' sample rate.
        clip_s: the WAVs' length in seconds.
    """
    wav = _in_blocks(WAV_HEADER_BYTES + round(sample_rate * clip_s) * 2)
    total = sum(_in_blocks(size) + wav for size in image_sizes)
    return total + round(total * MARGIN_FRACTION) + MARGIN_BYTES


def check_free_space(out: Path, needed: int) -> None:
    """Raise ExportError when the filesystem OUT goes on has less than `needed` bytes free."""
    folder = _existing_ancestor(out.parent)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ExportError(
            f"not enough free space on {_mount_point(folder)} for the export to {out}: it needs about "
            f"{_mb(needed)} MB and {free // MB} MB are free; free {_mb(needed - free)} MB or choose another OUT"
        )


# ------------------------------------------------------------------------------------------ failed writes


@dataclass(frozen=True)
class WriteFailure:
    """A file of the export that could not be written: where, and the OS error (plain values, picklable)."""

    path: str
    errno: int | None
    strerror: str


class OutputWriteError(Exception):
    """Writing a file into the export's temporary folder failed; :func:`temporary_output` turns it into a sentence."""

    def __init__(self, failure: WriteFailure) -> None:
        super().__init__(f"{failure.path}: {failure.strerror}")
        self.failure = failure


def write_failure(path: Path | str, exc: OSError) -> WriteFailure:
    """The :class:`WriteFailure` of `exc`, raised while writing `path`."""
    return WriteFailure(str(path), exc.errno, exc.strerror or str(exc))


def write_output_file(path: Path, data: bytes) -> None:
    """Write one file of the export; raises :class:`OutputWriteError` when the write fails."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise OutputWriteError(write_failure(path, exc)) from None


def make_output_folder(path: Path) -> None:
    """Make a folder (and its parents) inside the export; raises :class:`OutputWriteError` when that fails."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(write_failure(path, exc)) from None


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def write_failure_error(failure: WriteFailure, tmp: Path, out: Path, needed: int) -> ExportError:
    """One sentence for a failed write into `tmp`, naming the file by where it was to go in OUT."""
    try:
        shown = out / Path(failure.path).relative_to(tmp)
    except ValueError:
        shown = Path(failure.path)
    if failure.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = _existing_ancestor(tmp)
        missing = needed - shutil.disk_usage(folder).free - _tree_size(tmp)  # the temp folder's bytes come back
        return ExportError(
            f"no space left on {_mount_point(folder)} while writing {shown}; free {_mb(missing)} MB or choose "
            "another OUT (nothing was exported)"
        )
    if failure.errno == errno.EFBIG:
        return ExportError(
            f"the file size limit (ulimit -f) was reached while writing {shown}; raise the limit or choose another "
            "OUT (nothing was exported)"
        )
    return ExportError(
        f"cannot write {shown} ({failure.strerror}); fix that or choose another OUT (nothing was exported)"
    )


@contextmanager
def temporary_output(out: Path, needed: int) -> Iterator[Path]:
    """A fresh temp folder beside `out`; removed on the way out unless it was renamed into place.

    An :class:`OutputWriteError` inside the block becomes one :class:`ExportError` sentence (`needed`, the
    estimated size of the export, says how much space to free).
    """
    tmp = _scratch_path(out, _Scratch.TMP)
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as exc:
        raise ExportError(f"cannot make the folder {tmp}: {exc.strerror}; choose another OUT") from None
    try:
        yield tmp
    except OutputWriteError as exc:
        raise write_failure_error(exc.failure, tmp, out, needed) from None
    finally:
        if tmp.exists():
            _remove(tmp)


def finalize_output(tmp: Path, out: Path, *, force: bool) -> None:
    """Rename the complete `tmp` folder to `out`, replacing an old export only when `force`.

    Raises:
        ExportError: OUT appeared while exporting and `force` is not set, or OUT now holds files no export wrote.
    """
    try:
        if out.exists() or out.is_symlink():
            if not force:
                raise ExportError(f"{out} appeared while exporting; pass --force to replace it or choose another OUT")
            if not out.is_dir():
                raise ExportError(f"{out} appeared while exporting and is not a folder; choose another OUT")
            check_replaceable(out)  # again: files may have been added while this export ran
            old = _scratch_path(out, _Scratch.OLD)
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old, out)  # put the old export back
                raise
            _remove(old)
        else:
            os.rename(tmp, out)
    except OSError as exc:
        raise ExportError(f"cannot put the finished export at {out}: {exc.strerror}; choose another OUT") from None
