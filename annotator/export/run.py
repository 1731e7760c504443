"""`annotator export`: the corrected, balanced dataset in the ADVANCE layout (SPEC §8).

Steps: select the labelled original pairs (:mod:`annotator.export.selection`), drop tiny classes and make or
reuse the offset pairs of small ones (:mod:`dataset.balance`, :mod:`annotator.export.offsets`), give every
sample its id and split (:mod:`annotator.export.samples`), then write the layout (:mod:`dataset.layout`) into a
temporary folder beside OUT and rename it into place when complete (:mod:`dataset.output`). The clips are
resampled, written and hashed by a process pool; the main process owns the store. Every export carries its data
card (README.md, ATTRIBUTION.csv: :mod:`annotator.export.datacard`) and the sample ids of each split
(``splits/*.txt``); the split is drawn by recording or by spatial block, and its leakage (pairs of samples in
different splits whose footprints overlap) is measured either way. With ``--format webdataset`` the folder is
written inside the temporary folder and packed into tar shards (:func:`dataset.shards.pack_export`), and the
shards are what is renamed into place.

The export is deterministic: samples in (class, id) order, JPEG bytes copied from the media directory, WAVs
resampled by soxr and written as PCM16, figures with fixed size and no software stamp, a manifest with sorted
keys and no timestamps. The same store and parameters give a byte-identical folder. The time of the export is
kept in the store's ``exports`` row only.

Nothing is lost and nothing half-done is recorded: OUT may never be, hold or lie in the store or its media, and
``--force`` replaces only an earlier export (:func:`dataset.output.prepare_output`); the free space is checked
against the estimated size before anything is made, and a write that fails aborts the export before the
``exports`` row is added (offset pairs already committed stay: they are valid rows a later export reuses).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator import __version__
from annotator.config import StoreLocation
from annotator.errors import ExportError
from annotator.export.datacard import card_facts
from annotator.export.offset_report import OffsetReport
from annotator.export.offsets import DIRECTIONS, OffsetSample, OffsetSettings, ensure_offsets
from annotator.export.options import ExportFormat, ExportOptions, Progress
from annotator.export.samples import ExportSample, build_samples, footprint_side_m, splits_of
from annotator.export.selection import Selection, SkipReason, select_pairs
from annotator.export.writer import sample_pool, statistics_job, write_media, write_tables
from annotator.files import sha256_bytes, sha256_file
from annotator.store import UnitOfWork
from annotator.store.models import ExportRecord
from annotator.vocabulary import LabelSource, PairOrigin, SceneClass
from dataset.audio import CLIP_S
from dataset.balance import BalancePlan, plan_balance
from dataset.datacard import attribution_csv_bytes
from dataset.datacard_readme import datacard_bytes
from dataset.layout import MANIFEST_FILE, count_by, manifest_bytes
from dataset.output import (
    OutputWriteError,
    Protected,
    check_free_space,
    estimated_size,
    finalize_output,
    prepare_output,
    temporary_output,
    write_failure,
    write_output_file,
)
from dataset.plots import render_statistics
from dataset.split import Split, SplitPlan

OFFSETS = "Making offset pairs"
PACKING = "Packing shards"
#: The folder export is written here inside the temporary folder when the format is webdataset.
FOLDER_STAGE = "folder"
SHARDS_STAGE = "shards"


@dataclass
class ExportReport:
    """What an export did; the CLI prints it as a table."""

    out: Path
    export_id: int
    manifest_sha256: str
    per_class: dict[str, int]
    per_split: dict[str, int]
    originals: dict[str, int]
    offsets: dict[str, int]
    dropped: dict[str, int]
    augmented: list[str]
    skipped: Counter[SkipReason]
    label_sources: Counter[LabelSource]
    offset_report: OffsetReport
    per_class_split: dict[str, dict[str, int]] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sample id, why) for media that would not load
    split: SplitPlan | None = None
    format: ExportFormat = ExportFormat.FOLDER
    shards: Any = None  # the ShardReport of a webdataset export

    @property
    def total(self) -> int:
        """Samples written."""
        return sum(self.per_class.values())

    def to_json(self) -> dict[str, Any]:
        """What ``export --json`` prints."""
        split = self.split.to_json() if self.split is not None else None
        return {
            "out": str(self.out),
            "export_id": self.export_id,
            "manifest_sha256": self.manifest_sha256,
            "format": self.format.value,
            "total": self.total,
            "per_class": self.per_class,
            "per_split": self.per_split,
            "per_class_split": self.per_class_split,
            "originals": self.originals,
            "offsets": self.offsets,
            "dropped": self.dropped,
            "augmented": self.augmented,
            "skipped": dict(sorted((str(k), v) for k, v in self.skipped.items())),
            "label_sources": dict(sorted((str(k), v) for k, v in self.label_sources.items())),
            "offset_pairs": {
                "created": self.offset_report.created,
                "reused": self.offset_report.reused,
                "problems": dict(sorted((str(k), v) for k, v in self.offset_report.problems.items())),
            },
            "failed": [{"id": i, "why": why} for i, why in self.failed],
            "split": split,
            "leakage": self.split.leakage.pairs if self.split is not None else None,
            "shards": _shards_json(self.shards),
        }


def _shards_json(shards: Any) -> Any:
    """A ShardReport as JSON (its own ``to_json`` when it has one, else its dataclass fields)."""
    if shards is None:
        return None
    if hasattr(shards, "to_json"):
        return shards.to_json()
    if dataclasses.is_dataclass(shards) and not isinstance(shards, type):
        return dataclasses.asdict(shards)
    return str(shards)


@dataclass(frozen=True)
class _Written:
    """The dataset as written: the samples in it, their splits, counts and the manifest's hash."""

    samples: list[ExportSample]
    plan: SplitPlan
    per_class: dict[str, int]
    per_split: dict[str, int]
    manifest_sha256: str
    failures: list[tuple[str, str]]

    def count_origin(self, origin: PairOrigin) -> dict[str, int]:
        """Samples of `origin` per class value."""
        return dict(Counter(s.cls.value for s in self.samples if s.origin == origin))

    def per_class_split(self) -> dict[str, dict[str, int]]:
        """Samples per split within each class."""
        order = [x.value for x in Split]
        return {
            c: count_by([self.plan.splits[s.id].value for s in self.samples if s.cls.value == c], order)
            for c in self.per_class
        }


def export_dataset(
    work: UnitOfWork,
    location: StoreLocation,
    out: Path,
    options: ExportOptions,
    *,
    progress: Progress | None = None,
) -> ExportReport:
    """Export the balanced dataset into `out` (see the module docstring) and record it in the store.

    Args:
        work: the caller's unit of work. Offset pairs are committed with ``work.commit_batch()`` per batch of
            parents; the ``exports`` row is committed once the dataset is written, just before OUT is renamed into
            place (and removed again if that rename fails).
        location: where the media directory is.
        out: the dataset folder to create; it must not exist unless ``options.force``.
        options: the export parameters.
        progress: optional progress callback (see :data:`~annotator.export.options.Progress`).

    Raises:
        ExportError: OUT exists (without force) or may not be replaced, too little free space, a write failed,
            nothing to export, or bad parameters.
    """
    options.validate()
    out = Path(os.path.abspath(out.expanduser()))
    prepare_output(out, force=options.force, protected=_protected(location))
    with sample_pool(options.workers) as pool:
        selection = select_pairs(work.session, location.media_dir, include_unreviewed=options.include_unreviewed)
        plan = plan_balance(selection.pairs, options.min_per_class, options.augment_below)
        if not plan.kept:
            raise ExportError(_nothing_to_export(selection.skipped, plan.dropped, options))
        needed = _estimated_size(selection, plan, location.media_dir, options.sample_rate)
        if options.format is ExportFormat.WEBDATASET:
            needed *= 2  # the folder, then its shards, side by side until the folder is removed
        check_free_space(out, needed)
        offsets, offset_report = _make_offsets(work, location, selection, plan, options, progress)
        samples, left_out = build_samples(selection.pairs, plan.kept, offsets, location.media_dir)
        for reason, n in left_out.items():
            offset_report.problem(reason, "", n)
        with temporary_output(out, needed) as tmp:
            webdataset = options.format is ExportFormat.WEBDATASET
            folder = tmp / FOLDER_STAGE if webdataset else tmp
            if webdataset:
                folder.mkdir()
            written = _write_layout(pool, samples, folder, options, progress, work, selection, plan)
            report = _report(out, written, selection, plan, offset_report)
            report.format = options.format
            final = folder
            if webdataset:
                final = tmp / SHARDS_STAGE
                report.shards = _pack(folder, final, options.shard_size, report.total, progress)
                report.manifest_sha256 = sha256_file(final / MANIFEST_FILE)
            # Recorded (committed) before OUT appears: a store that cannot record it stops the export here.
            report.export_id = _record(work, report, options)
            try:
                finalize_output(final, out, force=options.force)
            except ExportError:
                _forget(work, report.export_id)
                raise
    return report


def _report(
    out: Path, written: _Written, selection: Selection, plan: BalancePlan, offset_report: OffsetReport
) -> ExportReport:
    """What the export did, from what it wrote."""
    return ExportReport(
        out=out,
        export_id=0,
        manifest_sha256=written.manifest_sha256,
        per_class=written.per_class,
        per_split=written.per_split,
        originals=written.count_origin(PairOrigin.ORIGINAL),
        offsets=written.count_origin(PairOrigin.OFFSET),
        dropped={c.value: n for c, n in plan.dropped.items()},
        augmented=[c.value for c in plan.augmented],
        skipped=selection.skipped,
        label_sources=Counter(s.parent.label_source for s in written.samples if s.origin == PairOrigin.ORIGINAL),
        offset_report=offset_report,
        per_class_split=written.per_class_split(),
        failed=written.failures,
        split=written.plan,
    )


def _pack(folder: Path, shards: Path, shard_size: int, total: int, progress: Progress | None) -> Any:
    """Pack the finished folder export into webdataset tar shards at `shards` (a path inside the temp folder)."""
    try:
        from dataset.shards import pack_export
    except ImportError:
        raise ExportError(
            "--format webdataset is not available in this build (dataset.shards is missing); export with "
            "--format folder"
        ) from None
    if progress:
        progress(PACKING, 0, total)

    def packed(n: int) -> None:
        if progress:
            progress(PACKING, n, None)

    try:
        return pack_export(folder, shards, shard_size=shard_size, progress=packed)
    except OSError as exc:  # a full disk or a file size limit while writing a shard: one sentence, nothing left
        raise OutputWriteError(write_failure(exc.filename or shards, exc)) from None


def _protected(location: StoreLocation) -> list[Protected]:
    """The store's database file (SQLite) and its media directory: never an export's OUT."""
    protected = [Protected(location.sqlite_path, "the store")] if location.sqlite_path is not None else []
    return [*protected, Protected(location.media_dir, "the store's media directory")]


def _estimated_size(selection: Selection, plan: BalancePlan, media_dir: Path, sample_rate: int) -> int:
    """Bytes the export will take: every kept original's image and WAV, five times over for augmented classes."""
    kept, augmented = set(plan.kept), set(plan.augmented)
    sizes: list[int] = []
    for pair in selection.pairs:
        if pair.label in kept:
            try:
                size = (media_dir / pair.image_path).stat().st_size
            except OSError:
                size = 0  # left out later as media that would not load
            sizes.extend([size] * (1 + len(DIRECTIONS) if pair.label in augmented else 1))
    return estimated_size(sizes, sample_rate, CLIP_S)


def _make_offsets(
    work: UnitOfWork,
    location: StoreLocation,
    selection: Selection,
    plan: BalancePlan,
    options: ExportOptions,
    progress: Progress | None,
) -> tuple[dict[int, list[OffsetSample]], OffsetReport]:
    """Make or reuse the offset pairs of every original of an augmented class."""
    parents = [p for p in selection.pairs if p.label in plan.augmented]
    if progress and parents:
        progress(OFFSETS, 0, len(parents))
    settings = OffsetSettings(options.offset_m, options.seed, options.imagery, options.audio_root, CLIP_S)

    def offsets_done(n: int) -> None:
        if progress:
            progress(OFFSETS, n, None)

    try:
        return ensure_offsets(work, location, parents, settings, progress=offsets_done)
    except OSError as exc:  # the media directory is full or read-only; the batches committed so far are kept
        raise ExportError(
            f"cannot write the offset pairs' media to {exc.filename or location.media_dir}: {exc.strerror}; "
            "free space there (or fix its permissions) and export again"
        ) from None


def _write_layout(
    pool: ProcessPoolExecutor | None,
    samples: Sequence[ExportSample],
    tmp: Path,
    options: ExportOptions,
    progress: Progress | None,
    work: UnitOfWork,
    selection: Selection,
    balance: BalancePlan,
) -> _Written:
    """Write the whole layout into the folder `tmp`: media, tables, data card and manifest."""
    plan = splits_of(samples, options.seed, options.split_by, options.block_m)
    media = write_media(pool, samples, tmp, options.sample_rate, options.workers, progress, plan)
    # A media file that would not load: drop that sample; splits are drawn again over the rest.
    kept = [s for i, s in enumerate(samples) if i not in media.failed]
    if not kept:
        first_id, why = media.failures[0]
        raise ExportError(f"no sample could be written; first problem: {first_id}: {why}")
    statistics = media.statistics_png
    if media.failed:
        plan = splits_of(kept, options.seed, options.split_by, options.block_m)
        statistics = render_statistics(*statistics_job(kept, plan))
    parameters = options.manifest_parameters(plan.block_m)
    facts = card_facts(
        work.session,
        kept,
        plan,
        tool_version=__version__,
        parameters=parameters,
        dropped={c.value: n for c, n in balance.dropped.items()},
        augmented=[c.value for c in balance.augmented],
        skipped={str(k): n for k, n in selection.skipped.items()},
        footprint_side_m=footprint_side_m(kept),
    )
    card = (datacard_bytes(facts), attribution_csv_bytes(facts.attribution))
    tables, per_class, per_split = write_tables(kept, plan, tmp, (statistics, media.samples_png), card)
    manifest = manifest_bytes(
        tool_version=__version__,
        parameters=parameters,
        per_class=per_class,
        per_split=per_split,
        files={**media.files, **tables},
        split=plan.to_json(),
    )
    write_output_file(tmp / MANIFEST_FILE, manifest)
    return _Written(kept, plan, per_class, per_split, sha256_bytes(manifest), media.failures)


def _record(work: UnitOfWork, report: ExportReport, options: ExportOptions) -> int:
    """Add and commit the ``exports`` row of a written export; returns its id."""
    counts = {
        "per_class": report.per_class,
        "per_split": report.per_split,
        "originals": report.originals,
        "offsets": report.offsets,
        "dropped": report.dropped,
        "skipped": dict(report.skipped),
        "offset_problems": dict(report.offset_report.problems),
        "label_source": dict(report.label_sources),
        "failed": len(report.failed),
        "leakage": report.split.leakage.pairs if report.split is not None else None,
    }
    record = ExportRecord(
        out_path=str(report.out),
        params=options.record_parameters(report.split.block_m if report.split is not None else None),
        counts=counts,
        manifest_sha256=report.manifest_sha256,
        tool_version=__version__,
    )
    work.session.add(record)
    work.commit_batch()
    return record.id


def _forget(work: UnitOfWork, export_id: int) -> None:
    """Remove the ``exports`` row of an export that could not be put in place."""
    record = work.session.get(ExportRecord, export_id)
    if record is not None:
        work.session.delete(record)
        work.commit_batch()


def _nothing_to_export(skipped: Counter[SkipReason], dropped: dict[SceneClass, int], options: ExportOptions) -> str:
    parts = []
    if dropped:
        classes = ", ".join(f"{c.value} ({n})" for c, n in dropped.items())
        parts.append(f"every class has fewer than --min-per-class {options.min_per_class} pairs: {classes}")
    if skipped:
        parts.append("pairs left out: " + ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())))
    if not parts:
        parts.append("the store has no pairs")
    hint = "" if options.include_unreviewed else " (unreviewed pairs need --include-unreviewed)"
    return "nothing to export: " + "; ".join(parts) + hint
