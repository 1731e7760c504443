"""Progress without a terminal: plain lines on stderr at most every interval (count, rate, ETA), a `done` line per
stage, nothing with --quiet; the rich bar stays on a terminal.

The throttling and the wording are checked on :class:`PlainProgress` with a hand-driven clock; a real `annotator
import` in a subprocess (stderr a pipe, as under nohup or CI) shows the lines end to end.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.progress import Progress

from annotator.cli.common import (
    PROGRESS_INTERVAL_ENV,
    PROGRESS_INTERVAL_S,
    AppState,
    PlainProgress,
    advance,
    finished_line,
    progress_bar,
    progress_interval,
    progress_line,
)
from annotator.errors import AnnotatorError
from tests.data.generate import make_audio, write_csv_manifest

REPO = Path(__file__).resolve().parents[2]
ROWS = 50


class Clock:
    """A clock the test moves by hand, in tenths of a second (exact in binary up to the sums used here)."""

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> float:
        return self.ticks / 10


class Stream(io.StringIO):
    """A stderr that is, or is not, a terminal."""

    def __init__(self, *, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def _plain(interval: float = 5.0) -> tuple[PlainProgress, Clock, list[str]]:
    clock, lines = Clock(), []
    return PlainProgress(interval, write=lines.append, get_time=clock), clock, lines


# ------------------------------------------------------------------------------------------------- unit


def test_lines_come_at_most_every_interval_with_count_rate_and_eta() -> None:
    progress, clock, lines = _plain(interval=5.0)
    with progress:
        task = progress.add_task("Importing", total=200)
        for _ in range(120):  # one row every 0.1 s: 10 rows/s
            clock.ticks += 1
            progress.advance(task, 1)
    assert lines == [
        "Importing: 50/200 (25%), 10/s, ETA 15 s",  # t = 5 s
        "Importing: 100/200 (50%), 10/s, ETA 10 s",  # t = 10 s
        "Importing: done, 120 in 12 s (10/s)",  # the block ends
    ]


def test_nothing_is_said_before_the_first_interval_except_the_end() -> None:
    progress, clock, lines = _plain(interval=5.0)
    with progress:
        progress.add_task("Pre-labelling", total=None)
        clock.ticks = 30
        advance(progress, 7)  # 3 s in: too early for a line
        assert lines == []
    assert lines == ["Pre-labelling: done, 7 in 3 s (2.33/s)"]


def test_without_a_total_no_percentage_and_no_eta() -> None:
    progress, clock, lines = _plain(interval=1.0)
    with progress:
        task = progress.add_task("Pushing tasks", total=None)
        clock.ticks = 20
        progress.advance(task, 1234)
    assert lines[0] == "Pushing tasks: 1,234, 617/s"


def test_each_stage_ends_with_its_own_done_line() -> None:
    """`import --imagery` resets the bar for its second stage; rank switches descriptions through `update`."""
    progress, clock, lines = _plain(interval=100.0)
    with progress:
        task = progress.add_task("Importing", total=None)
        progress.reset(task, total=4, description="Importing")  # on_stage(IMPORTING, 4): nothing counted yet
        clock.ticks = 20
        progress.advance(task, 4)
        progress.reset(task, total=2, description="Cutting images")
        clock.ticks = 40
        progress.advance(task, 2)
        progress.update(task, description="Decoding features", completed=0, total=10)
        clock.ticks = 50
        progress.update(task, description="Decoding features", completed=10, total=10)
    assert lines == [
        "Importing: done, 4 in 2 s (2/s)",
        "Cutting images: done, 2 in 2 s (1/s)",
        "Decoding features: done, 10 in 1 s (10/s)",
    ]


def test_a_failed_block_says_no_done_and_nothing_counted_says_nothing() -> None:
    progress, clock, lines = _plain(interval=100.0)
    with pytest.raises(AnnotatorError), progress:
        task = progress.add_task("Importing", total=10)
        clock.ticks = 10
        progress.advance(task, 3)
        raise AnnotatorError("the manifest is not UTF-8")
    assert lines == []  # the error sentence stays the only line
    quiet_run, _, quiet_lines = _plain()
    with quiet_run:
        quiet_run.add_task("Pulling tasks", total=None)
    assert quiet_lines == []


def test_a_full_bar_waits_for_its_done_line() -> None:
    progress, clock, lines = _plain(interval=1.0)
    with progress:
        task = progress.add_task("Cutting images", total=10)
        clock.ticks = 20
        progress.advance(task, 10)
    assert lines == ["Cutting images: done, 10 in 2 s (5/s)"]


def test_wording_of_large_counts_and_long_times() -> None:
    assert progress_line("Exporting", 1_234_567, 2_000_000, 250.0) == (
        "Exporting: 1,234,567/2,000,000 (62%), 250/s, ETA 51 min 02 s"  # 765,433 left at 250/s: 3,061.7 s
    )
    assert progress_line("Exporting", 10, 2_000_000, 0.5) == "Exporting: 10/2,000,000 (0%), 0.5/s, ETA 1111 h 06 min"
    assert progress_line("Verifying", 3, None, None) == "Verifying: 3"
    assert finished_line("Verifying", 5075, 0.4) == "Verifying: done, 5,075 in <1 s (12,688/s)"
    assert finished_line("Training", 5, 3725.0) == "Training: done, 5 in 1 h 02 min (0.00134/s)"


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_INTERVAL_ENV, raising=False)
    assert progress_interval() == PROGRESS_INTERVAL_S == 5.0
    monkeypatch.setenv(PROGRESS_INTERVAL_ENV, "0.2")
    assert progress_interval() == 0.2
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(PROGRESS_INTERVAL_ENV, bad)
        with pytest.raises(AnnotatorError, match=PROGRESS_INTERVAL_ENV):
            progress_interval()


def test_the_display_follows_stderr_and_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    loud, quiet = AppState(db=None, media_dir=None, quiet=False), AppState(db=None, media_dir=None, quiet=True)
    monkeypatch.setattr(sys, "stderr", Stream(terminal=False))
    with progress_bar(loud, "Importing", 3) as bar:
        assert isinstance(bar, PlainProgress)
    with progress_bar(quiet, "Importing", 3) as bar:
        assert not isinstance(bar, PlainProgress) and bar.disable
    monkeypatch.setattr(sys, "stderr", Stream(terminal=True))
    with progress_bar(loud, "Importing", 3) as bar:  # a terminal: the rich bar, drawn
        assert type(bar) is Progress and not bar.disable
        advance(bar, 2)
        assert bar.tasks[0].completed == 2


# ------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROWS short seeded recordings (looped to 10 s on import), one manifest."""
    folder = tmp_path_factory.mktemp("progress")
    rows = []
    for i in range(ROWS):
        make_audio(folder / f"r{i:02d}.wav", 2.5, 8000, 1, seed=i)
        rows.append({"recording_id": f"r{i:02d}", "lat": 60.4 + i * 1e-3, "lon": 26.8, "audio": f"r{i:02d}.wav"})
    return write_csv_manifest(folder / "manifest.csv", rows)


def _import(tmp_path: Path, manifest: Path, *global_options: str) -> subprocess.CompletedProcess[str]:
    """`annotator init` then `annotator import`, each a real process whose stderr is a pipe (not a terminal)."""
    env = {**os.environ, PROGRESS_INTERVAL_ENV: "0.02", "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "annotator", "--db", str(tmp_path / "a.db"), *global_options]
    for args in (["init"], ["import", str(manifest)]):
        done = subprocess.run([*base, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    return done


def test_import_without_a_terminal_prints_plain_progress_lines(tmp_path: Path, manifest: Path) -> None:
    done = _import(tmp_path, manifest)
    assert f"{ROWS} new, 0 unchanged" in done.stdout and "Importing" not in done.stdout  # progress: stderr only
    periodic = re.findall(rf"^Importing: (\d+)/{ROWS} \(\d+%\), [\d.,]+/s(?:, ETA [^\n]+)?$", done.stderr, re.M)
    assert periodic, done.stderr
    counts = [int(n) for n in periodic]
    assert counts == sorted(counts) and counts[-1] < ROWS  # climbing, and the last word is the done line
    assert re.search(rf"^Importing: done, {ROWS} in [^\n]+ \([\d.,]+/s\)$", done.stderr, re.M), done.stderr
    assert "\x1b[" not in done.stderr  # plain text: no terminal control codes in a log


def test_quiet_prints_no_progress(tmp_path: Path, manifest: Path) -> None:
    done = _import(tmp_path, manifest, "--quiet")
    assert f"{ROWS} new, 0 unchanged" in done.stdout
    assert "Importing" not in done.stderr, done.stderr


def test_a_bad_interval_is_one_sentence(cli, engine, manifest: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("import", str(manifest), env={PROGRESS_INTERVAL_ENV: "soon"}, expect=1)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and PROGRESS_INTERVAL_ENV in lines[0] and "'soon'" in lines[0], result.stderr
    assert result.stdout == ""
