"""`annotator prelabel`: OSM evidence for every pair that lacks it (SPEC §6)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from annotator.cli.common import advance, progress_bar, state, stderr, stdout
from annotator.osm import DEFAULT_OVERPASS_URL
from annotator.vocabulary import SceneClass

if TYPE_CHECKING:
    from annotator.osm.prelabel import PrelabelReport


def prelabel_command(
    ctx: typer.Context,
    overpass_url: str | None = typer.Option(
        None, "--overpass-url", metavar="URL", help=f"Overpass API endpoint [default: {DEFAULT_OVERPASS_URL}]."
    ),
    osm_file: Path | None = typer.Option(
        None, "--osm-file", metavar="PATH", help="Read features from a local .osm / .osm.pbf extract instead."
    ),
    user_agent: str | None = typer.Option(
        None, "--user-agent", metavar="TEXT", help="User-Agent naming you and a contact (Overpass requires one)."
    ),
    radius_m: float = typer.Option(40.0, "--radius-m", min=0.0, help="Proximity radius for bridges/stations/runways."),
    cell_km: float = typer.Option(8.0, "--cell-km", min=0.1, help="Cluster cell: pairs in one cell share a query."),
    timeout_s: float = typer.Option(200.0, "--timeout-s", min=1.0, help="Socket timeout per Overpass request."),
    retries: int = typer.Option(3, "--retries", min=0, help="Retries per query after a 504, remark or timeout."),
    force: bool = typer.Option(False, "--force", help="Decide again for pairs that already have evidence."),
) -> None:
    """Suggest a scene class for every pair from OpenStreetMap and store the evidence.

    Pairs that already have evidence are skipped, so a rerun only asks for what is missing; Overpass responses
    are cached in the store. If Overpass keeps refusing (429/504), the pairs done so far are kept, the rest are
    reported, and the command exits with code 1 so scripts notice; rerun it later.

    Example: annotator prelabel --osm-file finland-latest.osm.pbf

    Example: annotator prelabel --user-agent "annotator (me@example.org)"
    """
    from annotator.osm.decide import DecisionOptions
    from annotator.osm.overpass import OverpassOptions
    from annotator.osm.prelabel import feature_source, prelabel_pairs
    from annotator.store import unit_of_work

    if overpass_url is not None and osm_file is not None:
        raise typer.BadParameter("give either --overpass-url or --osm-file, not both", param_hint="--osm-file")
    app_state = state(ctx)
    overpass = OverpassOptions.from_flags(url=overpass_url, user_agent=user_agent, timeout_s=timeout_s, retries=retries)
    source = feature_source(osm_file, overpass)
    with (
        app_state.store() as engine,
        unit_of_work(engine) as work,
        progress_bar(app_state, "Pre-labelling", None) as bar,
    ):
        report = prelabel_pairs(
            work,
            source,
            options=DecisionOptions(radius_m=radius_m),
            cell_km=cell_km,
            force=force,
            progress=lambda n: advance(bar, n),
        )
    stdout.print(_report_table(report))
    summary = f"{report.pairs_todo} pair(s) without evidence looked up"
    if osm_file is None:
        summary += f", {report.clusters} cluster(s), {report.requests} request(s), {report.cache_hits} from the cache"
    stdout.print(summary)
    if report.error:
        stderr.print(f"Error: {report.error}", markup=False, highlight=False)
        raise typer.Exit(1)


def _report_table(report: PrelabelReport) -> Table:
    table = Table(title=f"OSM pre-labels from {report.source}")
    table.add_column("class")
    table.add_column("pairs", justify="right")
    for scene_class in SceneClass:
        if report.per_class.get(scene_class.value):
            table.add_row(scene_class.value, str(report.per_class[scene_class.value]))
    table.add_row("(no class: matched nothing)", str(report.unmatched))
    if report.left_unlabelled:
        table.add_row("(left for the next run)", str(report.left_unlabelled))
    return table
