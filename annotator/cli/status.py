"""`annotator status`: counts per stage and class, the OSM→human correction matrix, and the reviewers' figures.

Every table fits the terminal's width (80 columns included): the correction matrix names classes by short codes
with a legend below it, and falls back to one line per (OSM label, human label) cell when even that is too wide.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from annotator.cli.common import state

if TYPE_CHECKING:
    from annotator.rank import RankFeedback
    from annotator.reviewers import AnchoringFigure, Rate, ReviewerFigures
    from annotator.status import StoreStatus

NONE_LABEL = "none"  # annotator.status.NONE_LABEL, the matrix row of pairs OSM found no class for


def status_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with every count instead of tables."),
) -> None:
    """Show what the store holds: recordings, rejects, pairs per stage and class, corrections, and the reviewers.

    The reviewers' figures: per annotator (reviews, accept rate, accuracy on control items, median seconds per
    task), agreement (Cohen's kappa per pair of annotators, Krippendorff's alpha) and the anchoring effect of the
    pre-selected OSM class, with 95 % intervals. `annotator report` draws the same figures on an HTML page.

    Example: annotator status --json | jq .reviewers.agreement
    """
    from annotator.status import collect_status
    from annotator.store import session_scope

    with state(ctx).store() as engine, session_scope(engine) as session:
        status = collect_status(session)
    if as_json:
        typer.echo(json.dumps(status.to_json(), indent=2, sort_keys=False))
        return
    out = Console(soft_wrap=True)  # made now, so its width is the terminal's (or $COLUMNS) at this call
    for table in (_overview(status), _per_class(status)):
        if table is not None:
            out.print(table)
    _print_correction_matrix(out, status)
    if status.rank is not None:
        out.print(_rank_table(status.rank))
    _print_reviewers(out, status.reviewers)
    if status.last_export:
        last = status.last_export
        out.print(f"Last export: {last['out_path']} ({last['created_at']})", markup=False)


def _overview(status: StoreStatus) -> Table:
    overview = Table(title="Store", show_header=True)
    overview.add_column("what")
    overview.add_column("count", justify="right")
    for key, value in status.recordings.items():
        overview.add_row(f"recordings {key}", str(value))
    for reason, value in status.rejects_by_reason.items():
        overview.add_row(f"  rejected rows: {reason}", str(value))
    for key, value in status.pairs.items():
        overview.add_row(f"pairs {key.replace('_', ' ')}", str(value))
    for key, value in status.stages.items():
        overview.add_row(f"stage {key.replace('_', ' ')}", str(value))
    return overview


def _per_class(status: StoreStatus) -> Table | None:
    if not any(v["osm"] or v["final"] for v in status.per_class.values()):
        return None
    per_class = Table(title="Per class")
    per_class.add_column("class")
    per_class.add_column("OSM label", justify="right")
    per_class.add_column("final (human)", justify="right")
    for cls, counts in status.per_class.items():
        per_class.add_row(cls, str(counts["osm"]), str(counts["final"]))
    per_class.add_row("(no OSM class)", str(status.stages["osm_unlabelled"]), "")
    per_class.add_row("(not pre-labelled)", str(status.stages["imported"] - status.stages["prelabelled"]), "")
    return per_class


def class_code(name: str) -> str:
    """A short code for a class (or ``unusable`` / ``none``): the initials of a multi-word name, else its first
    three letters, upper case (``sparse shrub land`` → ``SSL``, ``forest`` → ``FOR``)."""
    words = name.split()
    return ("".join(w[0] for w in words) if len(words) > 1 else name[:3]).upper()


def _print_lines(out: Console, text: str) -> None:
    """Plain text wrapped to the console's width (the console itself never wraps: soft_wrap)."""
    for line in textwrap.wrap(text, width=max(20, out.width), break_on_hyphens=False):
        out.print(line, markup=False, highlight=False)


def _print_correction_matrix(out: Console, status: StoreStatus) -> None:
    """The matrix by class codes (only rows and columns with a count), with a legend; or, too wide, a long list."""
    counts = status.correction_counts
    if not any(any(row) for row in counts):
        return
    rows = [i for i, row in enumerate(counts) if any(row)]
    columns = [j for j in range(len(status.correction_columns)) if any(counts[i][j] for i in rows)]
    matrix = Table(
        title="OSM label (rows) → human final label (columns)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0),  # columns apart by the box's one-space divider: 14 columns of codes in 60 characters
        pad_edge=False,
    )
    matrix.add_column("OSM↓")
    for j in columns:
        matrix.add_column(class_code(status.correction_columns[j]), justify="right")
    for i in rows:
        matrix.add_row(
            class_code(status.correction_rows[i]), *[str(counts[i][j]) if counts[i][j] else "·" for j in columns]
        )
    if out.measure(matrix, options=out.options.update_width(10_000)).maximum <= out.width:  # natural width
        out.print(matrix)
        names = sorted({status.correction_rows[i] for i in rows} | {status.correction_columns[j] for j in columns})
        legend = [f"{class_code(n)} = {n}" + (" (OSM matched nothing)" if n == NONE_LABEL else "") for n in names]
        _print_lines(out, "Legend: " + ", ".join(legend) + ".")
        return
    longform = Table(title="OSM label → human final label", box=box.SIMPLE_HEAD, show_edge=False)
    longform.add_column("OSM label")
    longform.add_column("human final label")
    longform.add_column("pairs", justify="right")
    for i in rows:
        for j in columns:
            if counts[i][j]:
                longform.add_row(status.correction_rows[i], status.correction_columns[j], str(counts[i][j]))
    out.print(longform)


def _rate(rate: Rate) -> str:
    if rate.value is None:
        return "—"
    low_high = rate.interval
    assert low_high is not None
    return f"{rate.value:.0%} [{low_high[0]:.0%}, {low_high[1]:.0%}]"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _print_reviewers(out: Console, figures: ReviewerFigures) -> None:
    """Per-annotator figures, agreement and anchoring (nothing when no review was pulled yet)."""
    if not figures.annotators:
        return
    people = Table(title="Annotators")
    people.add_column("annotator", overflow="fold")
    for name in ("reviews", "accept rate", "control accuracy", "median s/task"):
        people.add_column(name, justify="right")
    for a in figures.annotators:
        control = f"{a.control_accuracy:.0%} of {a.control_n}" if a.control_accuracy is not None else "—"
        people.add_row(a.annotator, str(a.reviews), _share(a.accept_rate), control, _number(a.median_seconds, 1))
    out.print(people)
    _print_lines(
        out,
        "accept rate = accepted / (accepted + corrected) against the OSM class; control accuracy = verdicts on "
        "control items equal to the settled label"
        + (
            f" ({figures.control_excluded_own} left out: on pairs the same annotator had reviewed)"
            if figures.control_excluded_own
            else ""
        )
        + ".",
    )
    if figures.kappa:
        agreement = Table(title="Agreement (Cohen's kappa per pair of annotators)")
        agreement.add_column("annotators", overflow="fold")
        for name in ("shared pairs", "agreed", "kappa"):
            agreement.add_column(name, justify="right")
        for k in figures.kappa:
            agreement.add_row(f"{k.first} × {k.second}", str(k.shared), str(k.agreed), _number(k.kappa))
        out.print(agreement)
    _print_lines(
        out,
        f"Krippendorff's alpha (nominal, all annotators): {_number(figures.alpha, 3)} on "
        f"{figures.alpha_units} pairs with two or more verdicts.",
    )
    if figures.anchoring is not None:
        _print_anchoring(out, figures.anchoring)


def _print_anchoring(out: Console, anchoring: AnchoringFigure) -> None:
    table = Table(title="Anchoring: OSM class accepted, with and without pre-selection")
    table.add_column("tasks pushed")
    for name in ("verdicts", "accepted", "rate [95% CI]"):
        table.add_column(name, justify="right")
    for name, rate in (("pre-selected", anchoring.preselected), ("blind", anchoring.blind)):
        table.add_row(name, str(rate.n), str(rate.successes), _rate(rate))
    out.print(table)
    low_high = anchoring.difference_interval
    if anchoring.difference is not None and low_high is not None:
        _print_lines(
            out,
            f"Difference (pre-selected − blind): {anchoring.difference:+.0%}, 95% CI "
            f"[{low_high[0]:+.0%}, {low_high[1]:+.0%}] (Newcombe).",
        )


def _share(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "—"


def _rank_table(feedback: RankFeedback) -> Table:
    """The latest rank run's flags against the verdicts since: the ranking's precision on real reviews."""
    table = Table(
        title=f"Rank run #{feedback.run_id} ({feedback.created_at:%Y-%m-%d %H:%M} UTC) against the reviews since"
    )
    table.add_column("OSM labels the run judged")
    for name in ("pairs", "reviewed", "corrected", "unusable", "share corrected"):
        table.add_column(name, justify="right")
    for name, tally in (
        (f"flagged (suspicion ≥ {feedback.threshold})", feedback.flagged_osm),
        ("not flagged", feedback.unflagged_osm),
    ):
        table.add_row(
            name,
            str(tally.pairs),
            str(tally.reviewed),
            str(tally.corrected),
            str(tally.unusable),
            _share(tally.share_corrected),
        )
    table.caption = (
        f"{feedback.flagged} of {feedback.scored} scored pairs flagged; share corrected = corrected / reviewed "
        "with a class verdict"
    )
    return table
