"""`annotator import MANIFEST`: import geotagged recordings (SPEC §5)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from annotator.cli.common import advance, plain_counts, print_json, progress_bar, state, stderr, stdout
from annotator.cli.imagery import fill_json

if TYPE_CHECKING:
    from annotator.ingest import ImportReport


def import_command(
    ctx: typer.Context,
    manifest: Path = typer.Argument(
        ...,
        metavar="MANIFEST",
        help="CSV or JSON Lines (recording_id, lat, lon, audio[, image, license, author, source_url]) "
        "or a Freesound search-results JSON (results[] with id, geotag, license, username, url).",
    ),
    audio_root: Path | None = typer.Option(
        None,
        "--audio-root",
        help="Folder relative audio paths resolve against (and where Freesound files are "
        "found as <id>.* or <id>_*.*) [default: the manifest's folder]. Paths outside it are rejected.",
    ),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Folder relative image paths resolve against [default: the manifest's folder]."
    ),
    imagery: str | None = typer.Option(
        None,
        "--imagery",
        metavar="SOURCE",
        help="After importing, cut an image for every pair without one from "
        "this source: a tile folder or {z}/{x}/{y} template, an .mbtiles file, an http(s) URL template, "
        "a GeoTIFF / COG (path or URL, any CRS) or wms:<GetMap URL with {bbox}, {width}, {height}>.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the random 10 s clip window of each recording."),
    rejects: Path | None = typer.Option(
        None,
        "--rejects",
        metavar="FILE",
        help="CSV of rows that were not imported (line, recording_id, reason, "
        "detail); its folder is made if missing, and an unusable path stops the import before any row "
        "[default: <db stem>.rejects.csv beside the database, e.g. annotator.rejects.csv].",
    ),
    batch_size: int = typer.Option(200, "--batch-size", min=1, help="Rows per committed transaction."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object instead of tables."),
) -> None:
    """Import recordings: probe, loop 2–10 s ones, cut a seeded 10 s clip, store images; bad rows are listed.

    Recordings under 2 s are rejected (too_short); every other bad row (an unreadable file, an implausible
    header, a NUL byte or an overlong field, …) gets its own reason in the rejects file and the summary, and never
    stops the good rows. A manifest that is not UTF-8 is refused before anything is imported. Re-importing the
    same manifest changes nothing; a changed file under a known id is reported, not overwritten. A killed import
    resumes where it stopped, and two imports of one manifest at once end as one would.

    Example: annotator import recordings.csv --audio-root sounds/ --imagery tiles/ --seed 7

    Example: annotator import recordings.csv --json > import.json
    """
    from annotator.ingest import ImportOptions, import_recordings
    from annotator.store import unit_of_work

    app_state = state(ctx)
    options = ImportOptions(
        audio_root=audio_root, image_root=image_root, seed=seed, rejects_path=rejects, batch_size=batch_size
    )
    with (
        app_state.store() as engine,
        unit_of_work(engine) as work,
        progress_bar(app_state, "Importing", None) as bar,
    ):
        report = import_recordings(
            work,
            app_state.location,
            manifest,
            options,
            imagery=imagery,
            on_stage=lambda stage, total: bar.reset(bar.task_ids[0], total=total, description=stage),
            progress=lambda n: advance(bar, n),
        )
    if as_json:
        print_json(import_json(report))
    else:
        stdout.print(_summary_table(report))
        stdout.print(f"{report.new} new, {report.unchanged} unchanged, {report.rejected_total} rejected.", markup=False)
    if report.rejected_total and not app_state.quiet:
        stderr.print(f"Rejected rows and their reasons: {report.rejects_path}", markup=False)


def import_json(report: ImportReport) -> dict[str, object]:
    """The `--json` twin of the summary table."""
    return {
        "manifest": report.manifest,
        "format": report.format,
        "rows": report.rows,
        "new": report.new,
        "looped": report.looped,
        "with_image": report.with_image,
        "unchanged": report.unchanged,
        "duplicates_skipped": report.duplicates_skipped,
        "rejected": report.rejected_total,
        "rejected_by_reason": plain_counts(report.rejected),
        "rejects_path": str(report.rejects_path),
        "imagery": None if report.fill is None else fill_json(report.fill),
        "needs_imagery": report.needs_imagery,
    }


def _summary_table(report: ImportReport) -> Table:
    table = Table(title=f"Import of {report.manifest} ({report.format})")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows read", str(report.rows))
    table.add_row("new pairs", str(report.new))
    table.add_row("  looped to 10 s", str(report.looped))
    table.add_row("  with an image from the manifest", str(report.with_image))
    table.add_row("unchanged (already imported)", str(report.unchanged))
    if report.duplicates_skipped:
        table.add_row("identical duplicate rows skipped", str(report.duplicates_skipped))
    table.add_row("rejected", str(report.rejected_total))
    for reason, count in sorted(report.rejected.items()):
        table.add_row(f"  {reason}", str(count))
    if report.fill is not None:
        table.add_row("images cut from the imagery source", str(report.fill.filled))
        for failure, count in sorted(report.fill.failed_by_reason.items()):
            table.add_row(f"  imagery failed: {failure}", str(count))
    table.add_row("pairs needing imagery (whole store)", str(report.needs_imagery))
    return table
