"""Export faults (issue 11): `--force` over what is no export, full disks, a file as OUT's parent, two exports at once.

Each test runs the real CLI the way the fault was found: a subprocess ``annotator`` (so stderr shows any traceback,
and ``RLIMIT_FSIZE`` or a second process can be applied), or the in-process runner where the fault needs neither.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from annotator.config import StoreLocation
from annotator.files import sha256_file
from annotator.store import session_scope
from annotator.store.models import ExportRecord, Pair
from annotator.vocabulary import PairOrigin, SceneClass
from dataset.layout import manifest_bytes
from tests.export.world import labelled, plant_pairs, write_pattern_tiles

REPO = Path(__file__).resolve().parents[2]
EXPORT_ARGS = ("--min-per-class", "1", "--augment-below", "0")


def annotator(
    location: StoreLocation, *args: str, preexec_fn: Callable[[], None] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess on the test's store."""
    command = [sys.executable, "-m", "annotator", "--db", location.url, "--media-dir"]
    command += [str(location.media_dir), *args]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn, check=False
    )


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes (the store's database only by name: SQLite rewrites
    it, its -wal and -shm whenever a command opens the store; its rows are counted with :func:`pairs_in`)."""
    return {
        p.relative_to(root).as_posix(): b"" if p.name == "annotator.db" else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def pairs_in(engine) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(Pair)) or 0


def export_records(engine) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(ExportRecord)) or 0


def one_sentence_error(stderr: str) -> str:
    """The `Error: …` line of a failed command (asserting there is exactly one and no traceback)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def no_scratch_left(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".export-" in p.name]


def fake_export_manifest(folder: Path) -> None:
    """A manifest.json in our own format listing every file of `folder` (so it looks like a real export)."""
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in folder.rglob("*") if p.is_file()}
    files.pop("manifest.json", None)
    (folder / "manifest.json").write_bytes(
        manifest_bytes(tool_version="0.1.0", parameters={}, per_class={}, per_split={}, files=files)
    )


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small XYZ tile folder around the test points, for offset images."""
    return write_pattern_tiles(tmp_path_factory.mktemp("tiles") / "xyz")


# ------------------------------------------------------------------------------------------ --force


def test_force_over_the_project_folder_is_refused_and_nothing_is_touched(fault, engine, location, cli):
    plant_pairs(engine, location, labelled(SceneClass.BEACH, 3))
    project = location.media_dir.parent  # the store, its media and now the user's own files
    (project / "manifest.json").write_text('{"name": "my field campaign", "files": {"notes.txt": "x"}}')
    (project / "notes.txt").write_text("precious notes")
    before = tree(project)

    result = cli("export", str(project), *EXPORT_ARGS, "--force", expect=1)

    after = tree(project)
    fault.lost(len(set(before) - set(after)) + 3 - pairs_in(engine))
    assert after == before
    assert fault.rows_lost == 0
    message = one_sentence_error(result.stderr)
    assert "store" in message and "choose another OUT" in message
    assert no_scratch_left(project.parent)
    assert export_records(engine) == 0


def test_force_over_a_folder_with_a_foreign_manifest_names_its_files(fault, engine, location, cli, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.BEACH, 3))
    folder = tmp_path / "campaign"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"name": "my field campaign"}')
    (folder / "notes.txt").write_text("precious notes")
    before = tree(folder)

    result = cli("export", str(folder), *EXPORT_ARGS, "--force", expect=1)

    fault.lost(len(set(before) - set(tree(folder))))
    assert tree(folder) == before and fault.rows_lost == 0
    message = one_sentence_error(result.stderr)
    assert "manifest.json" in message and "notes.txt" in message and "choose another OUT" in message


@pytest.mark.parametrize("protected", ["media", "store"])
def test_force_over_the_media_dir_or_the_store_folder_is_refused_even_when_it_looks_like_an_export(
    fault, engine, location, cli, protected
):
    plant_pairs(engine, location, labelled(SceneClass.BEACH, 3))
    folder = location.media_dir if protected == "media" else location.media_dir.parent
    fake_export_manifest(folder)
    before = tree(folder)

    result = cli("export", str(folder), *EXPORT_ARGS, "--force", expect=1)

    fault.lost(len(set(before) - set(tree(folder))) + 3 - pairs_in(engine))
    assert tree(folder) == before and fault.rows_lost == 0
    message = one_sentence_error(result.stderr)
    assert ("media" in message if protected == "media" else "store" in message) and "choose another OUT" in message


def test_force_over_an_export_holding_the_users_files_is_refused_then_a_clean_one_is_replaced(
    fault, engine, location, cli, tmp_path
):
    plant_pairs(engine, location, labelled(SceneClass.BEACH, 3))
    out = tmp_path / "dataset"
    cli("export", str(out), *EXPORT_ARGS)
    (out / "notes.txt").write_text("what I learned")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "epoch3.pt").write_bytes(b"weights")
    before = tree(out)

    result = cli("export", str(out), *EXPORT_ARGS, "--force", expect=1)

    fault.lost(len(set(before) - set(tree(out))))
    assert tree(out) == before and fault.rows_lost == 0
    message = one_sentence_error(result.stderr)
    assert "notes.txt" in message and "checkpoints/epoch3.pt" in message and "2 files" in message
    assert no_scratch_left(tmp_path) and export_records(engine) == 1

    (out / "notes.txt").unlink()
    (out / "checkpoints" / "epoch3.pt").unlink()
    (out / "checkpoints").rmdir()
    (out / "sound" / "beach" / "beac1.wav").unlink()  # a damaged export may still be replaced
    cli("export", str(out), *EXPORT_ARGS, "--force")
    assert cli("verify", str(out)).exit_code == 0
    assert export_records(engine) == 2


# ------------------------------------------------------------------------------------------ full disks


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MB tmpfs (needs root and a kernel that lets this process mount); skipped otherwise."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not allowed here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_is_found_before_anything_is_written(fault, engine, location, tmpfs):
    plant_pairs(engine, location, labelled(SceneClass.FOREST, 12))
    out = tmpfs / "dataset"

    result = annotator(location, "export", str(out), *EXPORT_ARGS)

    assert result.returncode == 1
    message = one_sentence_error(result.stderr)
    assert "not enough free space" in message and "MB" in message and "choose another OUT" in message
    assert not out.exists() and list(tmpfs.iterdir()) == []
    assert export_records(engine) == 0


def noisy_images(engine, location: StoreLocation, pair_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Replace the media images of `pair_ids` with 512×512 noise JPEGs (~600 kB each, copied as they are)."""
    rng = np.random.default_rng(7)
    with session_scope(engine) as session:
        for pair_id in pair_ids:
            pair = session.get(Pair, pair_id)
            assert pair is not None and pair.image_path
            pixels = rng.integers(0, 256, size=(512, 512, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(location.media_dir / pair.image_path, format="JPEG", quality=95)


def small_wal(engine) -> None:  # type: ignore[no-untyped-def]
    """Empty SQLite's write-ahead log, so the store's own writes stay under a file size limit."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def limit_file_size(limit: int) -> Callable[[], None]:
    """A preexec_fn: files this process (and its pool workers) write may not grow past `limit` bytes."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("workers", ["1", "2"])
def test_file_size_limit_aborts_the_whole_export(fault, engine, location, tmp_path, workers):
    ids = plant_pairs(engine, location, labelled(SceneClass.FOREST, 6))
    noisy_images(engine, location, ids[3:])  # three samples whose JPEG is larger than the limit
    small_wal(engine)
    out = tmp_path / "dataset"

    # WAVs at 8 kHz are 160 kB; the noise JPEGs ~600 kB: only those writes fail (EFBIG, SIGXFSZ ignored).
    result = annotator(
        location, "export", str(out), *EXPORT_ARGS, "--sample-rate", "8000", "--workers", workers,
        preexec_fn=limit_file_size(300_000),
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    message = one_sentence_error(result.stderr)
    assert "file size limit" in message and "while writing" in message and "choose another OUT" in message
    assert not out.exists() and no_scratch_left(tmp_path)
    assert export_records(engine) == 0


# ------------------------------------------------------------------------------------------ bad OUT


def test_out_under_a_file_is_one_sentence(fault, engine, location, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.BEACH, 2))
    (tmp_path / "notes.txt").write_text("not a folder")

    result = annotator(location, "export", str(tmp_path / "notes.txt" / "dataset"), *EXPORT_ARGS)

    assert result.returncode == 1
    message = one_sentence_error(result.stderr)
    assert "notes.txt" in message and "not a folder" in message and "choose another OUT" in message
    assert (tmp_path / "notes.txt").read_text() == "not a folder"


# ------------------------------------------------------------------------------------------ concurrency


def test_two_exports_at_once_both_succeed_and_share_the_offset_pairs(fault, engine, location, tmp_path, tiles):
    parents = plant_pairs(engine, location, labelled(SceneClass.HARBOUR, 30), tiles=tiles)
    args = ("--min-per-class", "1", "--augment-below", "100", "--sample-rate", "8000", "--workers", "1")
    command = [sys.executable, "-m", "annotator", "--db", location.url, "--media-dir"]
    command.append(str(location.media_dir))
    runs = [
        subprocess.Popen(
            [*command, "export", str(tmp_path / name), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    results = [(run.wait(timeout=600), *run.communicate()) for run in runs]

    for code, stdout, stderr in results:
        assert "Traceback" not in stderr, stderr
        assert code == 0, stdout + stderr
    made = [int(re.search(r"Offset pairs: (\d+) made now", stdout).group(1)) for _, stdout, _ in results]  # type: ignore[union-attr]
    print("offset pairs made by each export:", made)
    assert sum(made) == 4 * len(parents)  # each made once, by one export or the other
    with session_scope(engine) as session:
        offsets = session.scalar(select(func.count()).select_from(Pair).where(Pair.origin == PairOrigin.OFFSET))
    assert offsets == 4 * len(parents)
    first, second = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("first", "second"))
    assert first == second  # both exports use the same offset pairs
    assert export_records(engine) == 2
    stray = {p.name for p in (location.media_dir).rglob("*") if p.is_file()}
    assert len(stray) == 2 * len(parents) * 5  # a clip and an image per pair: no orphans of a redone batch


def test_store_that_cannot_record_the_export_leaves_no_out(fault, engine, location, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.FOREST, 6))
    wal = Path(f"{location.sqlite_path}-wal")
    out = tmp_path / "dataset"
    limit = 300_000
    assert wal.stat().st_size > limit  # the store's next write goes past the limit; the export's files do not

    result = annotator(
        location, "export", str(out), *EXPORT_ARGS, "--sample-rate", "8000", preexec_fn=limit_file_size(limit)
    )

    assert result.returncode == 1, result.stdout + result.stderr
    message = one_sentence_error(result.stderr)
    assert "store" in message
    assert not out.exists() and no_scratch_left(tmp_path)
    assert export_records(engine) == 0
