"""Writing an export's files into its temporary folder: samples by a process pool, then the tables.

The clips are resampled, written and hashed by worker processes (:func:`dataset.samples.write_sample`); samples.png
(which reads every example's media) and statistics.png (which needs the split, drawn beforehand over all samples)
are two more jobs for the same pool, so no core idles while they are drawn. Should a sample's media not load, the
split is drawn again over the rest and both figures are redrawn by the main process. The tables — metadata.csv,
the data card, ATTRIBUTION.csv and the split lists — are written by the main process. The main process
owns the store and never shares it with the workers (forkserver start method).

A sample whose source media will not load is left out; a file that cannot be written (full disk, file size limit,
in a worker or here) raises :class:`~dataset.output.OutputWriteError` at once, which stops the whole export.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from annotator.export.options import Progress
from annotator.export.samples import ExportSample
from annotator.files import sha256_bytes
from annotator.vocabulary import LabelSource, PairOrigin, SceneClass
from dataset import layout
from dataset.audio import CLIP_S
from dataset.output import OutputWriteError, make_output_folder, write_output_file
from dataset.plots import render_samples_figure, render_statistics
from dataset.samples import SampleResult, SampleTask, warm_up, watch_owner, write_sample
from dataset.split import Split, SplitBy, SplitPlan, split_lists

WRITING = "Writing samples"
FigureJob = tuple[list[tuple[str, str, str, str]], int]
StatisticsJob = tuple[dict[str, dict[str, int]], dict[str, float], str]


@dataclass
class WrittenMedia:
    """What the pool wrote: relpath → sha256, and the samples whose media would not load."""

    files: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (sample id, why)
    failed: set[int] = field(default_factory=set)  # their indices in the sample list
    samples_png: bytes = b""
    statistics_png: bytes = b""  # empty: samples failed, redraw with the split of the rest


@contextmanager
def sample_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """A process pool of `workers` processes, or None for one (work runs in this process)."""
    if workers <= 1:
        yield None
        return
    # forkserver: workers never inherit the parent's database connections or threads (progress bar).
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=watch_owner, initargs=(os.getpid(),)
    )
    try:
        for _ in range(workers):  # start the workers and their imports now, while the main process selects
            pool.submit(warm_up)
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # an error or Ctrl-C: drop the queued samples
        raise
    pool.shutdown(wait=True)


def _figure_job(samples: Sequence[ExportSample], sample_rate: int) -> FigureJob:
    """Arguments of :func:`dataset.plots.render_samples_figure` (plain values, so a pool worker can draw it)."""
    examples: dict[SceneClass, tuple[str, str, str, str]] = {}
    for s in samples:
        if s.origin == PairOrigin.ORIGINAL and s.cls not in examples:
            examples[s.cls] = (s.cls.value, s.id, str(s.image_src), str(s.clip_src))
    return [examples[c] for c in SceneClass if c in examples], sample_rate


def _sample_tasks(samples: Sequence[ExportSample], tmp: Path, sample_rate: int) -> list[SampleTask]:
    """One task per sample, after making the class folders (workers never create folders)."""
    for cls in sorted({s.cls for s in samples}):
        make_output_folder((tmp / layout.sound_relpath(cls, "x")).parent)
        make_output_folder((tmp / layout.image_relpath(cls, "x")).parent)
    return [
        SampleTask(
            index=i,
            clip_src=str(s.clip_src),
            image_src=str(s.image_src),
            sound_dst=str(tmp / layout.sound_relpath(s.cls, s.id)),
            image_dst=str(tmp / layout.image_relpath(s.cls, s.id)),
            sample_rate=sample_rate,
            clip_s=CLIP_S,
            owner_pid=os.getpid(),
        )
        for i, s in enumerate(samples)
    ]


def _collect(
    results: Iterable[SampleResult], samples: Sequence[ExportSample], progress: Progress | None
) -> WrittenMedia:
    written = WrittenMedia()
    for result in results:
        sample = samples[result.index]
        if result.write_failure is not None:
            raise OutputWriteError(result.write_failure)  # the caller's pool drops the queued samples
        if result.error is not None:
            written.failures.append((sample.id, result.error))
            written.failed.add(result.index)
        else:
            assert result.sound_sha256 and result.image_sha256
            written.files[layout.sound_relpath(sample.cls, sample.id)] = result.sound_sha256
            written.files[layout.image_relpath(sample.cls, sample.id)] = result.image_sha256
        if progress:
            progress(WRITING, 1, None)
    return written


def write_media(
    pool: ProcessPoolExecutor | None,
    samples: Sequence[ExportSample],
    tmp: Path,
    sample_rate: int,
    workers: int,
    progress: Progress | None,
    plan: SplitPlan,
) -> WrittenMedia:
    """Write every sample's WAV and JPEG into `tmp` (with the pool when there is one) and draw the two figures.

    `plan` is the split of all `samples`; statistics.png drawn with it is kept only when every sample was written.
    """
    tasks = _sample_tasks(samples, tmp, sample_rate)
    if progress:
        progress(WRITING, 0, len(tasks))
    figure: Future[bytes] | None = None
    statistics: Future[bytes] | None = None
    if pool is not None:
        figure = pool.submit(render_samples_figure, *_figure_job(samples, sample_rate))
        statistics = pool.submit(render_statistics, *statistics_job(samples, plan))
        chunksize = max(1, min(16, len(tasks) // (workers * 8)))
        written = _collect(pool.map(write_sample, tasks, chunksize=chunksize), samples, progress)
    else:
        written = _collect(map(write_sample, tasks), samples, progress)
    if figure is not None and statistics is not None and not written.failed:
        written.samples_png, written.statistics_png = figure.result(), statistics.result()
    elif not written.failed:  # one process
        written.samples_png = render_samples_figure(*_figure_job(samples, sample_rate))
        written.statistics_png = render_statistics(*statistics_job(samples, plan))
    else:  # samples failed: the figures must leave them out (statistics.png once the split of the rest is drawn)
        kept = [s for i, s in enumerate(samples) if i not in written.failed]
        written.samples_png = render_samples_figure(*_figure_job(kept, sample_rate))
    return written


def statistics_job(samples: Sequence[ExportSample], plan: SplitPlan) -> StatisticsJob:
    """Arguments of :func:`dataset.plots.render_statistics`: samples per class and split, each class's share of
    human-reviewed originals, and the title (plain values, so a pool worker can draw it)."""
    per_split: dict[str, dict[str, int]] = {}
    originals: Counter[str] = Counter()
    human: Counter[str] = Counter()
    for s in samples:
        counts = per_split.setdefault(s.cls.value, {})
        split = plan.splits[s.id].value
        counts[split] = counts.get(split, 0) + 1
        if s.origin == PairOrigin.ORIGINAL:
            originals[s.cls.value] += 1
            human[s.cls.value] += s.parent.label_source == LabelSource.HUMAN
    n_originals = sum(originals.values())
    how = f"block ({plan.block_m:g} m)" if plan.by is SplitBy.BLOCK else plan.by.value
    title = (
        f"{len(samples)} pairs ({n_originals} original + {len(samples) - n_originals} offset) in {len(per_split)} "
        f"classes, {100 * sum(human.values()) / max(n_originals, 1):.0f}% human-reviewed\n"
        f"split by {how}: {plan.leakage.pairs} overlapping pairs across splits"
    )
    shares = {c: human[c] / originals[c] for c in originals if originals[c]}
    return per_split, shares, title


def write_tables(
    samples: Sequence[ExportSample],
    plan: SplitPlan,
    tmp: Path,
    figures: tuple[bytes, bytes],
    card: tuple[bytes, bytes],
) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """Write metadata.csv, the data card, the split lists and the figures; returns (their hashes, counts).

    Args:
        samples: the samples written, in (class, id) order.
        plan: their split.
        tmp: the export's temporary folder.
        figures: (statistics.png, samples.png) bytes.
        card: (README.md, ATTRIBUTION.csv) bytes.

    Returns:
        (relpath → sha256 of each file written, samples per class, samples per split).
    """
    splits = plan.splits
    files: dict[str, str] = {}
    contents = [
        (layout.METADATA_FILE, layout.metadata_csv_bytes(s.metadata(splits[s.id]) for s in samples)),
        (layout.README_FILE, card[0]),
        (layout.ATTRIBUTION_FILE, card[1]),
        (layout.STATISTICS_FILE, figures[0]),
        (layout.SAMPLES_FILE, figures[1]),
    ]
    contents += [(f"{layout.SPLITS_DIR}/{split.value}.txt", ids) for split, ids in split_lists(splits).items()]
    make_output_folder(tmp / layout.SPLITS_DIR)
    for name, data in contents:
        write_output_file(tmp / name, data)
        files[name] = sha256_bytes(data)
    counts = Counter(s.cls for s in samples)
    per_class = {c.value: counts[c] for c in SceneClass if counts[c]}
    per_split = layout.count_by([splits[s.id].value for s in samples], [s.value for s in Split])
    return files, per_class, per_split
