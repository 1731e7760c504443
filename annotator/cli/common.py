"""What every command shares: the global options, the error boundary, consoles and progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
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


@contextmanager
def progress_bar(app_state: AppState, description: str, total: int | None) -> Iterator[Progress]:
    """A rich progress bar on stderr; invisible with --quiet or when stderr is not a terminal."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=not app_state.show_progress,
        transient=True,
    )
    with progress:
        progress.add_task(description, total=total)
        yield progress


def advance(progress: Progress, n: int = 1) -> None:
    """Advance the single task of a bar made by :func:`progress_bar`."""
    progress.advance(progress.task_ids[0], n)
