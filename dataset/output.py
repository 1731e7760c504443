"""The lifecycle of an export's output folder: never half-written, old export replaced only when complete.

An export is written to ``.OUT.export-tmp-<pid>`` beside OUT (same filesystem) and renamed to OUT when complete,
so OUT is either absent, the old export, or the new complete one: never half-written. With ``--force`` the old
OUT is moved to ``.OUT.export-old-<pid>`` only after the new one is complete, then removed. Folders left by a
killed export (its pid gone) are cleaned by the next export to the same OUT.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

from annotator.errors import ExportError
from annotator.files import pid_alive
from dataset.layout import MANIFEST_FILE


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


def prepare_output(out: Path, *, force: bool) -> None:
    """Refuse an existing OUT unless `force` (and even then refuse to replace a folder that is no export).

    Raises:
        ExportError: OUT exists and may not be replaced.
    """
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
    tmp = _scratch_path(out, _Scratch.TMP)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            _remove(tmp)


def finalize_output(tmp: Path, out: Path, *, force: bool) -> None:
    """Rename the complete `tmp` folder to `out`, replacing an old export only when `force`.

    Raises:
        ExportError: OUT appeared while exporting and `force` is not set.
    """
    if out.exists() or out.is_symlink():
        if not force:
            raise ExportError(f"{out} appeared while exporting; pass --force to replace it or choose another OUT")
        old = _scratch_path(out, _Scratch.OLD)
        os.rename(out, old)
        os.rename(tmp, out)
        _remove(old)
    else:
        os.rename(tmp, out)
