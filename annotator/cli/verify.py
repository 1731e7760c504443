"""`annotator verify DATASET`: re-hash an export against its manifest.json (SPEC §8)."""

from __future__ import annotations

from pathlib import Path

import typer

from annotator.cli.common import advance, progress_bar, state, stderr, stdout


def verify_command(
    ctx: typer.Context,
    dataset: Path = typer.Argument(..., metavar="DATASET", help="An export folder (holding manifest.json)."),
) -> None:
    """Check every file of an export against the sha256 in its manifest; name each missing or changed file.

    Exits 1 when any file is missing, changed, or not in the manifest. Needs no database.

    Example: annotator verify dataset/
    """
    from dataset.layout import read_manifest, verify_dataset

    app_state = state(ctx)
    total = len(read_manifest(dataset)["files"])
    with progress_bar(app_state, "Verifying", total) as bar:
        report = verify_dataset(dataset, progress=lambda n: advance(bar, n))
    for kind, relpath in report.problems():
        stdout.print(f"{kind}: {relpath}", markup=False)
    if not report.ok:
        stderr.print(
            f"Error: {dataset} does not match its manifest: {len(report.missing)} missing, "
            f"{len(report.changed)} changed, {len(report.extra)} unexpected of {report.checked} files.",
            markup=False,
        )
        raise typer.Exit(1)
    stdout.print(f"OK: all {report.checked} files of {dataset} match its manifest.", markup=False)
