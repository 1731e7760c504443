"""`annotator status`: counts per stage and class, and the OSM→human correction matrix."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from annotator.cli.common import state, stdout

if TYPE_CHECKING:
    from annotator.rank import RankFeedback
    from annotator.status import StoreStatus


def status_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with every count instead of tables."),
) -> None:
    """Show what the store holds: recordings, rejects, pairs per stage and class, corrections.

    Example: annotator status --json | jq .stages
    """
    from annotator.status import collect_status
    from annotator.store import session_scope

    with state(ctx).store() as engine, session_scope(engine) as session:
        status = collect_status(session)
    if as_json:
        typer.echo(json.dumps(status.to_json(), indent=2, sort_keys=False))
        return
    rank = _rank_table(status.rank) if status.rank is not None else None
    for table in (_overview(status), _per_class(status), _correction_matrix(status), rank):
        if table is not None:
            stdout.print(table)
    if status.last_export:
        last = status.last_export
        stdout.print(f"Last export: {last['out_path']} ({last['created_at']})", markup=False)


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


def _correction_matrix(status: StoreStatus) -> Table | None:
    if not any(any(row) for row in status.correction_counts):
        return None
    matrix = Table(title="OSM label (rows) → human final label (columns)")
    matrix.add_column("OSM \\ human")
    for name in (c[:6] for c in status.correction_columns):
        matrix.add_column(name, justify="right")
    for label, row in zip(status.correction_rows, status.correction_counts, strict=True):
        if any(row):
            matrix.add_row(label, *[str(n) if n else "·" for n in row])
    return matrix


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
