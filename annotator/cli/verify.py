"""`annotator verify DATASET`: re-hash an export against its manifest.json (SPEC §8)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from annotator.cli.common import advance, print_json, progress_bar, state, stderr, stdout

if TYPE_CHECKING:
    from dataset.layout import VerifyReport


def verify_json(dataset: Path, report: VerifyReport) -> dict[str, object]:
    """What ``verify --json`` prints (and ``export --verify --json`` under ``verify``)."""
    return {
        "dataset": str(dataset),
        "ok": report.ok,
        "checked": report.checked,
        "missing": report.missing,
        "changed": report.changed,
        "extra": report.extra,
    }


def verify_command(
    ctx: typer.Context,
    dataset: Path = typer.Argument(..., metavar="DATASET", help="An export folder (holding manifest.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
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
    if as_json:
        print_json(verify_json(dataset, report))
        if not report.ok:
            raise typer.Exit(1)
        return
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
