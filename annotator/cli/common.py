"""What every command shares: the global options, the error boundary, consoles and progress bars."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from typer.core import TyperGroup

from annotator.config import StoreLocation, resolve_store
from annotator.errors import AnnotatorError

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: Data and tables go to stdout; progress, summaries of what happened and errors go to stderr.
stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


class AnnotatorGroup(TyperGroup):
    """Turns an expected :class:`AnnotatorError` into one sentence on stderr and its exit code."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except AnnotatorError as exc:
            Console(stderr=True, soft_wrap=True, highlight=False).print(f"Error: {exc}", markup=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            Console(stderr=True).print("Interrupted; what was committed so far is kept.", markup=False)
            raise typer.Exit(130) from None


@dataclass
class AppState:
    """The global options, resolved lazily so `--help` never touches the database."""

    db: str | None
    media_dir: str | None
    quiet: bool

    @property
    def location(self) -> StoreLocation:
        return resolve_store(self.db, self.media_dir)

    @contextmanager
    def store(self, *, create: bool = False) -> Iterator[Engine]:
        """The store's engine for one command, disposed when the command ends (its connections closed).

        A database error inside the block (a read-only store, a file that is not SQLite, a lock held too long)
        becomes one :class:`~annotator.errors.StoreError` sentence: no SQL, no parameters, no traceback.
        """
        from annotator.store.engine import open_store, store_failures

        engine = open_store(self.location, create=create)
        try:
            with store_failures(engine):
                yield engine
        finally:
            engine.dispose()

    @property
    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):  # a command invoked without the root callback (library use)
        obj = AppState(db=None, media_dir=None, quiet=False)
        ctx.find_root().obj = obj
    return obj


#: Seconds between two plain progress lines when stderr is not a terminal; the environment variable changes it.
PROGRESS_INTERVAL_S = 5.0
PROGRESS_INTERVAL_ENV = "ANNOTATOR_PROGRESS_INTERVAL"


@contextmanager
def progress_bar(app_state: AppState, description: str, total: int | None) -> Iterator[Progress]:
    """Progress on stderr: a rich bar on a terminal, plain periodic lines otherwise (nohup, CI, `tee`), none with
    --quiet.

    Callers drive the yielded :class:`~rich.progress.Progress` through its single task (:func:`advance`, or
    ``update``/``reset`` on ``progress.task_ids[0]``); the plain variant reports those same calls as text.
    """
    progress: Progress
    if app_state.quiet or app_state.show_progress:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr,
            disable=app_state.quiet,
            transient=True,
        )
    else:
        progress = PlainProgress(progress_interval())
    with progress:
        progress.add_task(description, total=total)
        yield progress


def advance(progress: Progress, n: int = 1) -> None:
    """Advance the single task of a bar made by :func:`progress_bar`."""
    progress.advance(progress.task_ids[0], n)


def progress_interval() -> float:
    """Seconds between plain progress lines: `ANNOTATOR_PROGRESS_INTERVAL`, else :data:`PROGRESS_INTERVAL_S`."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    if not raw:
        return PROGRESS_INTERVAL_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):  # also refuses NaN
        raise AnnotatorError(f"{PROGRESS_INTERVAL_ENV} must be a number of seconds (0 or more), not {raw!r}.")
    return seconds


def _write_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class PlainProgress(Progress):
    """A progress display for logs: draws nothing, writes one plain line to stderr at most every `interval` s.

    Each line carries the description, the count (of the total when known), the rate since the stage began and,
    with a total, the time left. A stage ends when the description changes or the count goes back (``reset``);
    a stage that counted anything ends with a `done` line, as does the last one when the block exits cleanly.
    """

    def __init__(
        self,
        interval: float,
        *,
        write: Callable[[str], None] = _write_stderr,
        get_time: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(disable=True, get_time=get_time)
        self.interval = interval
        self._write = write
        self._emit_lock = threading.Lock()
        self._last_line_at = self.get_time()
        self._stage_description = ""
        self._stage_started_at = self._last_line_at
        self._stage_start_count = 0.0

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        **fields: Any,
    ) -> TaskID:
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        self._begin_stage(self._tasks[task_id])
        return task_id

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._tick(task_id)

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        task = self._tasks[task_id]
        description, completed = kwargs.get("description"), kwargs.get("completed")
        if (description is not None and str(description) != self._stage_description) or (
            completed is not None and completed < task.completed
        ):
            self._end_stage(task)
            super().update(task_id, **kwargs)
            self._begin_stage(task)
        else:
            super().update(task_id, **kwargs)
        self._tick(task_id)

    def reset(self, task_id: TaskID, **kwargs: Any) -> None:
        task = self._tasks[task_id]
        self._end_stage(task)
        super().reset(task_id, **kwargs)
        self._begin_stage(task)

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: Any, exc_tb: Any) -> None:
        if exc_type is None:
            for task in self.tasks:
                self._end_stage(task)
        super().__exit__(exc_type, exc_val, exc_tb)

    def _begin_stage(self, task: Task) -> None:
        self._stage_description = str(task.description)
        self._stage_started_at = self.get_time()
        self._stage_start_count = task.completed

    def _end_stage(self, task: Task) -> None:
        """The `done` line of the stage that ends now, if it counted anything."""
        counted = task.completed - self._stage_start_count
        if counted > 0:
            elapsed = self.get_time() - self._stage_started_at
            self._emit(finished_line(self._stage_description, counted, elapsed))
        self._stage_start_count = task.completed  # said once, even if the block's exit follows a reset

    def _tick(self, task_id: TaskID) -> None:
        now = self.get_time()
        if now - self._last_line_at < self.interval:
            return
        task = self._tasks[task_id]
        if task.total and task.completed >= task.total:
            return  # the `done` line follows when the stage ends
        elapsed = now - self._stage_started_at
        counted = task.completed - self._stage_start_count
        rate = counted / elapsed if elapsed > 0 else None
        self._emit(progress_line(str(task.description), task.completed, task.total, rate))

    def _emit(self, line: str) -> None:
        with self._emit_lock:
            self._last_line_at = self.get_time()
            self._write(line)


def progress_line(description: str, completed: float, total: float | None, rate: float | None) -> str:
    """`Importing: 120/500 (24%), 41.2/s, ETA 9 s` — the ETA only with a total and a rate."""
    if total:
        line = f"{description}: {_count(completed)}/{_count(total)} ({100 * completed / total:.0f}%)"
    else:
        line = f"{description}: {_count(completed)}"
    if rate is not None:
        line += f", {_rate(rate)}"
        if total and rate > 0 and completed < total:
            line += f", ETA {_duration((total - completed) / rate)}"
    return line


def finished_line(description: str, counted: float, elapsed: float) -> str:
    """`Importing: done, 500 in 12 s (41.2/s)`."""
    line = f"{description}: done, {_count(counted)} in {_duration(elapsed)}"
    if elapsed > 0:
        line += f" ({_rate(counted / elapsed)})"
    return line


def _count(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


def _rate(per_s: float) -> str:
    return f"{per_s:,.0f}/s" if per_s >= 100 else f"{per_s:.3g}/s"


def _duration(seconds: float) -> str:
    """`<1 s`, `42 s`, `3 min 05 s`, `2 h 07 min`."""
    if seconds < 1:
        return "<1 s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def print_json(obj: object) -> None:
    """Print a command's summary as one JSON object on stdout (`--json`); the tables are not printed then.

    Dates, paths and enums are written as strings, so any report's ``to_json()`` or ``asdict()`` can be passed.
    """
    import json

    typer.echo(json.dumps(obj, indent=2, default=str))


def plain_counts(counts: Mapping[Any, int]) -> dict[str, int]:
    """A counter keyed by enums (reasons, classes) as a JSON object keyed by their values, sorted."""
    plain = {str(getattr(key, "value", key)): int(n) for key, n in counts.items()}
    return dict(sorted(plain.items()))
