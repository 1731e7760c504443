"""``annotator import``'s whole job: import a manifest, then (optionally) cut the missing images, then recount.

The CLI opens the store and a unit of work, calls :func:`import_recordings` and prints its report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from annotator.config import StoreLocation
from annotator.imagery import fill_missing_images
from annotator.ingest.importer import BATCH_SIZE, count_pairs_needing_imagery, import_manifest
from annotator.ingest.outcome import ImportReport
from annotator.ingest.rejects import default_rejects_path
from annotator.store.engine import UnitOfWork


class ImportStage(StrEnum):
    """The stages of :func:`import_recordings` a progress display shows; the value is its description."""

    IMPORTING = "Importing"
    CUTTING_IMAGES = "Cutting images"


@dataclass(frozen=True)
class ImportOptions:
    """How to read a manifest and cut its clips (the flags of ``annotator import``).

    Attributes:
        audio_root: Folder relative audio paths resolve against (default: the manifest's folder).
        image_root: Folder relative image paths resolve against (default: the manifest's folder).
        seed: Seeds every clip window together with the recording id.
        rejects_path: The rejects CSV (default: :func:`~annotator.ingest.rejects.default_rejects_path`).
        batch_size: Rows per committed batch.
        workers: Threads that decode new recordings ahead of the main thread.
    """

    audio_root: Path | None = None
    image_root: Path | None = None
    seed: int = 0
    rejects_path: Path | None = None
    batch_size: int = BATCH_SIZE
    workers: int = 2


def import_recordings(
    work: UnitOfWork,
    location: StoreLocation,
    manifest_path: Path,
    options: ImportOptions | None = None,
    *,
    imagery: str | None = None,
    on_stage: Callable[[ImportStage, int | None], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a manifest; with `imagery`, then cut an image for every pair without one and recount.

    Long batch job: the import commits every ``options.batch_size`` rows and the fill every 100 pairs (see
    :func:`~annotator.ingest.importer.import_manifest` and :func:`~annotator.imagery.fill_missing_images`).

    Args:
        work: The caller's unit of work on the store (at head).
        location: The store's location; its media directory is created when missing.
        manifest_path: CSV, JSON Lines or Freesound search-results JSON.
        options: How to read the manifest and cut clips (defaults: :class:`ImportOptions`).
        imagery: An imagery SOURCE to fill the missing images from after the import, or None.
        on_stage: Called when a stage starts, with its (approximate) number of steps.
        progress: Called with the number of steps done, within the current stage.

    Returns:
        The import's report; ``fill`` holds the imagery fill's report when `imagery` was given, and
        ``needs_imagery`` counts the whole store after both.

    Raises:
        BadManifest: the manifest as a whole is unusable; nothing is written then.
        ImagerySourceError: the imagery SOURCE is unusable (the import and the pairs filled so far are kept).
    """
    options = options or ImportOptions()
    location.media_dir.mkdir(parents=True, exist_ok=True)
    report = import_manifest(
        work,
        location,
        manifest_path,
        rejects_path=options.rejects_path or default_rejects_path(location),
        audio_root=options.audio_root,
        image_root=options.image_root,
        seed=options.seed,
        batch_size=options.batch_size,
        workers=options.workers,
        on_start=None if on_stage is None else (lambda total: on_stage(ImportStage.IMPORTING, total)),
        progress=progress,
    )
    if imagery is not None:
        if on_stage is not None:
            on_stage(ImportStage.CUTTING_IMAGES, report.needs_imagery)
        report.fill = fill_missing_images(work, location, imagery, progress=progress)
        report.needs_imagery = count_pairs_needing_imagery(work.session)
    return report
