"""`annotator export`: the corrected, balanced dataset in the ADVANCE layout (SPEC §8).

Steps: select the labelled original pairs (:mod:`dataset.selection`), drop tiny classes and make or reuse the
offset pairs of small ones (:mod:`dataset.balance`), give every sample its id and split, then write the layout
(:mod:`dataset.layout`) into a temporary folder beside OUT and rename it into place when complete. The clips
are resampled, written and hashed by a process pool; the main process owns the database session.

The export is deterministic: samples in (class, id) order, JPEG bytes copied from the media directory, WAVs
resampled by soxr and written as PCM16, figures with fixed size and no software stamp, a manifest with sorted
keys and no timestamps. The same store and parameters give a byte-identical folder. The time of the export is
kept in the store's ``exports`` row only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from annotator import __version__
from annotator.config import StoreLocation
from annotator.errors import ExportError
from annotator.store.engine import session_scope
from annotator.store.models import ExportRecord
from annotator.vocabulary import SceneClass
from dataset import layout
from dataset.balance import CLIP_S, OffsetReport, OffsetSettings, ensure_offsets, plan_balance
from dataset.selection import ExportSample, build_samples, select_pairs, splits_of
from dataset.split import Split

Progress = Callable[[str, int, int | None], None]
"""A progress callback: (stage description, items just done, stage total or None to start a stage)."""


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class ExportOptions:
    """The parameters of an export (flags of `annotator export`)."""

    min_per_class: int = 10
    augment_below: int = 100
    offset_m: float = 64.0
    sample_rate: int = 22050
    seed: int = 0
    include_unreviewed: bool = False
    imagery: str | None = None
    force: bool = False
    workers: int = field(default_factory=default_workers)
    audio_root: Path | None = None

    def manifest_parameters(self) -> dict[str, Any]:
        """The parameters that decide the dataset's bytes (not workers, force or where the originals live)."""
        return {
            "min_per_class": self.min_per_class,
            "augment_below": self.augment_below,
            "offset_m": self.offset_m,
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            "include_unreviewed": self.include_unreviewed,
            "imagery": self.imagery,
            "clip_s": CLIP_S,
        }

    def validate(self) -> None:
        problems = []
        if self.min_per_class < 0:
            problems.append("--min-per-class must be 0 or more")
        if self.augment_below < 0:
            problems.append("--augment-below must be 0 or more")
        if not self.offset_m > 0:
            problems.append("--offset-m must be a positive number of metres")
        if not 1000 <= self.sample_rate <= 384_000:
            problems.append("--sample-rate must be between 1000 and 384000 Hz")
        if self.workers < 1:
            problems.append("--workers must be 1 or more")
        if problems:
            raise ExportError("; ".join(problems))


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
    skipped: Counter[str]
    label_sources: Counter[str]
    offset_report: OffsetReport
    per_class_split: dict[str, dict[str, int]] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sample id, why) for media that would not load

    @property
    def total(self) -> int:
        return sum(self.per_class.values())


# ------------------------------------------------------------------------------------------ writing


def _figure_job(samples: Sequence[ExportSample], sample_rate: int) -> tuple[Any, ...]:
    """Arguments of :func:`dataset.plots.render_figures` (plain values, so a pool worker can draw them)."""
    originals = Counter(s.cls.value for s in samples if s.origin == "original")
    offsets = Counter(s.cls.value for s in samples if s.origin == "offset")
    examples: dict[SceneClass, tuple[str, str, str, str]] = {}
    for s in samples:
        if s.origin == "original" and s.cls not in examples:
            examples[s.cls] = (s.cls.value, s.id, str(s.image_src), str(s.clip_src))
    return dict(originals), dict(offsets), [examples[c] for c in SceneClass if c in examples], sample_rate


def _write_media(
    pool: Any, samples: Sequence[ExportSample], tmp: Path, options: ExportOptions, progress: Progress | None
) -> tuple[dict[str, str], list[tuple[str, str]], set[int], tuple[bytes, bytes]]:
    """Write every sample's WAV and JPEG into `tmp` with a process pool, and draw the two figures meanwhile.

    Returns:
        (relpath → sha256 of the written files, (id, why) of samples that failed, their indices, the figures'
        PNG bytes: statistics, samples).
    """
    from dataset.plots import render_figures

    tasks = [
        layout.SampleTask(
            index=i,
            clip_src=str(s.clip_src),
            image_src=str(s.image_src),
            sound_dst=str(tmp / layout.sound_relpath(s.cls, s.id)),
            image_dst=str(tmp / layout.image_relpath(s.cls, s.id)),
            sample_rate=options.sample_rate,
            clip_s=CLIP_S,
            owner_pid=os.getpid(),
        )
        for i, s in enumerate(samples)
    ]
    for cls in {s.cls for s in samples}:
        (tmp / layout.sound_relpath(cls, "x")).parent.mkdir(parents=True, exist_ok=True)
        (tmp / layout.image_relpath(cls, "x")).parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress("Writing samples", 0, len(tasks))
    files: dict[str, str] = {}
    failures: list[tuple[str, str]] = []
    failed: set[int] = set()
    # The figures are one more job for the pool, so no core idles while the main process draws them.
    figures = pool.submit(render_figures, *_figure_job(samples, options.sample_rate)) if pool else None
    results = (
        pool.map(layout.write_sample, tasks, chunksize=max(1, min(16, len(tasks) // (options.workers * 8))))
        if pool
        else map(layout.write_sample, tasks)
    )
    for result in results:
        sample = samples[result.index]
        if result.error is not None:
            failures.append((sample.id, result.error))
            failed.add(result.index)
        else:
            assert result.sound_sha256 and result.image_sha256
            files[layout.sound_relpath(sample.cls, sample.id)] = result.sound_sha256
            files[layout.image_relpath(sample.cls, sample.id)] = result.image_sha256
        if progress:
            progress("Writing samples", 1, None)
    pictures = figures.result() if figures is not None and not failed else None
    if pictures is None:  # one process, or samples failed and the figures must leave them out
        kept = [s for i, s in enumerate(samples) if i not in failed]
        pictures = render_figures(*_figure_job(kept, options.sample_rate))
    return files, failures, failed, pictures


@contextmanager
def _pool(workers: int) -> Iterator[Any]:
    """A process pool of `workers` processes, or None for one (work runs in this process)."""
    if workers <= 1:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: workers never inherit the parent's database connections or threads (progress bar).
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=layout.watch_owner, initargs=(os.getpid(),)
    )
    try:
        for _ in range(workers):  # start the workers and their imports now, while the main process selects
            pool.submit(layout.warm_up)
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # an error or Ctrl-C: drop the queued samples
        raise
    pool.shutdown(wait=True)


def _write_tables(
    samples: Sequence[ExportSample], splits: dict[str, Split], tmp: Path, pictures: tuple[bytes, bytes]
) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """Write metadata.csv and the figures; returns (their hashes, per-class, per-split counts)."""
    files: dict[str, str] = {}

    def put(name: str, data: bytes) -> None:
        (tmp / name).write_bytes(data)
        files[name] = layout.sha256_bytes(data)

    put(layout.METADATA_FILE, layout.metadata_csv_bytes(s.metadata(splits[s.id].value) for s in samples))
    put(layout.STATISTICS_FILE, pictures[0])
    put(layout.SAMPLES_FILE, pictures[1])
    counts = Counter(s.cls for s in samples)
    per_class = {c.value: counts[c] for c in SceneClass if counts[c]}
    per_split = layout.count_by([splits[s.id].value for s in samples], [s.value for s in Split])
    return files, per_class, per_split


def export_dataset(
    engine: Engine,
    location: StoreLocation,
    out: Path,
    options: ExportOptions,
    *,
    progress: Progress | None = None,
) -> ExportReport:
    """Export the balanced dataset into `out` (see the module docstring) and record it in the store.

    Args:
        engine: the store (offset pairs are committed in batches; the export row at the end).
        location: where the media directory is.
        out: the dataset folder to create; it must not exist unless ``options.force``.
        options: the export parameters.
        progress: optional progress callback (see :data:`Progress`).

    Raises:
        ExportError: OUT exists (without force), nothing to export, or bad parameters.
    """
    options.validate()
    out = Path(os.path.abspath(out.expanduser()))
    layout.prepare_output(out, force=options.force)
    with _pool(options.workers) as pool:
        return _export(engine, location, out, options, pool, progress)


def _export(
    engine: Engine, location: StoreLocation, out: Path, options: ExportOptions, pool: Any, progress: Progress | None
) -> ExportReport:
    media = location.media_dir
    with session_scope(engine) as session:
        selection = select_pairs(session, media, include_unreviewed=options.include_unreviewed)
    plan = plan_balance(selection.pairs, options.min_per_class, options.augment_below)
    if not plan.kept:
        raise ExportError(_nothing_to_export(selection.skipped, plan.dropped, options))
    parents = [p for p in selection.pairs if p.label in plan.augmented]
    if progress and parents:
        progress("Making offset pairs", 0, len(parents))
    settings = OffsetSettings(options.offset_m, options.seed, options.imagery, options.audio_root, CLIP_S)

    def offsets_done(n: int) -> None:
        if progress:
            progress("Making offset pairs", n, None)

    offsets, offset_report = ensure_offsets(engine, location, parents, settings, progress=offsets_done)
    samples, left_out = build_samples(selection.pairs, plan.kept, offsets, media)
    for reason, n in left_out.items():
        offset_report.problem(reason, "", n)

    with layout.temporary_output(out) as tmp:
        files, failures, failed, pictures = _write_media(pool, samples, tmp, options, progress)
        if failed:  # a media file that would not load: drop that sample; splits are drawn over the rest
            samples = [s for i, s in enumerate(samples) if i not in failed]
        if not samples:
            raise ExportError(f"no sample could be written; first problem: {failures[0][0]}: {failures[0][1]}")
        splits = splits_of(samples, options.seed)
        more, per_class, per_split = _write_tables(samples, splits, tmp, pictures)
        files.update(more)
        manifest = layout.manifest_bytes(
            tool_version=__version__,
            parameters=options.manifest_parameters(),
            per_class=per_class,
            per_split=per_split,
            files=files,
        )
        (tmp / layout.MANIFEST_FILE).write_bytes(manifest)
        layout.finalize_output(tmp, out, force=options.force)

    manifest_sha = layout.sha256_bytes(manifest)
    originals = Counter(s.cls.value for s in samples if s.origin == "original")
    offset_counts = Counter(s.cls.value for s in samples if s.origin == "offset")
    label_sources = Counter(s.parent.label_source for s in samples if s.origin == "original")
    counts = {
        "per_class": per_class,
        "per_split": per_split,
        "originals": dict(originals),
        "offsets": dict(offset_counts),
        "dropped": {c.value: n for c, n in plan.dropped.items()},
        "skipped": dict(selection.skipped),
        "offset_problems": dict(offset_report.problems),
        "label_source": dict(label_sources),
        "failed": len(failures),
    }
    with session_scope(engine) as session:
        record = ExportRecord(
            out_path=str(out),
            params={**options.manifest_parameters(), "workers": options.workers, "force": options.force},
            counts=counts,
            manifest_sha256=manifest_sha,
            tool_version=__version__,
        )
        session.add(record)
        session.flush()
        export_id = record.id
    return ExportReport(
        out=out,
        export_id=export_id,
        manifest_sha256=manifest_sha,
        per_class=per_class,
        per_split=per_split,
        originals=dict(originals),
        offsets=dict(offset_counts),
        dropped={c.value: n for c, n in plan.dropped.items()},
        augmented=[c.value for c in plan.augmented],
        skipped=selection.skipped,
        label_sources=label_sources,
        offset_report=offset_report,
        per_class_split={
            c: layout.count_by([splits[s.id].value for s in samples if s.cls.value == c], [x.value for x in Split])
            for c in per_class
        },
        failed=failures,
    )


def _nothing_to_export(skipped: Counter[str], dropped: dict[SceneClass, int], options: ExportOptions) -> str:
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

