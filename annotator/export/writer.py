"""Writing an export's files into its temporary folder: samples by a process pool, then the tables.

The clips are resampled, written and hashed by worker processes (:func:`dataset.samples.write_sample`); the two
figures are one more job for the same pool, so no core idles while they are drawn. The main process owns the
store and never shares it with the workers (forkserver start method).

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
from annotator.vocabulary import PairOrigin, SceneClass
from dataset import layout
from dataset.audio import CLIP_S
from dataset.output import OutputWriteError, make_output_folder, write_output_file
from dataset.plots import render_figures
from dataset.samples import SampleResult, SampleTask, warm_up, watch_owner, write_sample
from dataset.split import Split

WRITING = "Writing samples"
FigureJob = tuple[dict[str, int], dict[str, int], list[tuple[str, str, str, str]], int]


@dataclass
class WrittenMedia:
    """What the pool wrote: relpath → sha256, and the samples whose media would not load."""

    files: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (sample id, why)
    failed: set[int] = field(default_factory=set)  # their indices in the sample list
    figures: tuple[bytes, bytes] = (b"", b"")  # statistics.png, samples.png


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
    """Arguments of :func:`dataset.plots.render_figures` (plain values, so a pool worker can draw them)."""
    originals = Counter(s.cls.value for s in samples if s.origin == PairOrigin.ORIGINAL)
    offsets = Counter(s.cls.value for s in samples if s.origin == PairOrigin.OFFSET)
    examples: dict[SceneClass, tuple[str, str, str, str]] = {}
    for s in samples:
        if s.origin == PairOrigin.ORIGINAL and s.cls not in examples:
            examples[s.cls] = (s.cls.value, s.id, str(s.image_src), str(s.clip_src))
    return dict(originals), dict(offsets), [examples[c] for c in SceneClass if c in examples], sample_rate


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
) -> WrittenMedia:
    """Write every sample's WAV and JPEG into `tmp` (with the pool when there is one) and draw the two figures."""
    tasks = _sample_tasks(samples, tmp, sample_rate)
    if progress:
        progress(WRITING, 0, len(tasks))
    figures: Future[tuple[bytes, bytes]] | None = None
    if pool is not None:
        figures = pool.submit(render_figures, *_figure_job(samples, sample_rate))
        chunksize = max(1, min(16, len(tasks) // (workers * 8)))
        written = _collect(pool.map(write_sample, tasks, chunksize=chunksize), samples, progress)
    else:
        written = _collect(map(write_sample, tasks), samples, progress)
    if figures is not None and not written.failed:
        written.figures = figures.result()
    else:  # one process, or samples failed and the figures must leave them out
        kept = [s for i, s in enumerate(samples) if i not in written.failed]
        written.figures = render_figures(*_figure_job(kept, sample_rate))
    return written


def write_tables(
    samples: Sequence[ExportSample], splits: dict[str, Split], tmp: Path, figures: tuple[bytes, bytes]
) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """Write metadata.csv and the figures; returns (their hashes, per-class, per-split counts)."""
    files: dict[str, str] = {}
    contents = (
        (layout.METADATA_FILE, layout.metadata_csv_bytes(s.metadata(splits[s.id]) for s in samples)),
        (layout.STATISTICS_FILE, figures[0]),
        (layout.SAMPLES_FILE, figures[1]),
    )
    for name, data in contents:
        write_output_file(tmp / name, data)
        files[name] = sha256_bytes(data)
    counts = Counter(s.cls for s in samples)
    per_class = {c.value: counts[c] for c in SceneClass if counts[c]}
    per_split = layout.count_by([splits[s.id].value for s in samples], [s.value for s in Split])
    return files, per_class, per_split
