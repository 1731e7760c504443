"""`annotator report OUT.html`: the labels and the reviewers on one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import typer

from annotator.cli.common import print_json, state, stdout


def report_command(
    ctx: typer.Context,
    out: Path = typer.Argument(..., metavar="OUT.html", help="The page to write (replaced if it exists)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report's figures as one JSON object too."),
) -> None:
    """Write one HTML page: correction heatmap, corrections by OSM edit age, annotators, agreement, anchoring.

    The page is self-contained (inline CSS and SVG charts, no external link), so it can be mailed or opened
    offline. With a rank run in the store, the ranking's measured precision is on it too.

    Example: annotator report review-report.html && xdg-open review-report.html
    """
    from annotator.report import write_report
    from annotator.store import session_scope

    with state(ctx).store() as engine, session_scope(engine) as session:
        summary = write_report(session, out)
    if as_json:
        print_json(summary.to_json())
        return
    figures = summary.data.status.reviewers
    alpha = f"{figures.alpha:.3f}" if figures.alpha is not None else "—"
    stdout.print(
        f"Wrote {summary.path} ({summary.bytes:,} bytes): {len(figures.annotators)} annotators, "
        f"Krippendorff's alpha {alpha}; sections: {', '.join(summary.sections)}.",
        markup=False,
        highlight=False,
    )
