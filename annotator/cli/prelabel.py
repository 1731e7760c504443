"""`annotator prelabel`: OSM evidence for every pair that lacks it (SPEC §6)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from annotator.cli.common import advance, plain_counts, print_json, progress_bar, state, stderr, stdout
from annotator.osm import DEFAULT_OVERPASS_URL, MAX_BODY_BYTES
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
    timeout_s: float = typer.Option(
        200.0, "--timeout-s", min=1.0, help="Total time one Overpass request may take (connect and whole answer)."
    ),
    retries: int = typer.Option(
        3, "--retries", min=0, help="Retries per query after a 5xx, runtime remark, timeout or reset connection."
    ),
    max_response_mb: float = typer.Option(
        MAX_BODY_BYTES / 1e6, "--max-response-mb", min=0.001, help="Refuse Overpass answers larger than this (MB)."
    ),
    force: bool = typer.Option(False, "--force", help="Decide again for pairs that already have evidence."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object instead of tables."),
) -> None:
    """Suggest a scene class for every pair from OpenStreetMap and store the evidence.

    Pairs that already have evidence are skipped, so a rerun only asks for what is missing; Overpass responses
    are cached in the store. If Overpass keeps refusing (429/5xx, or answers what it never should), the pairs done
    so far are kept, the rest are reported, and the command exits with code 1 so scripts notice; rerun it later.
    Every wait (429 Retry-After, backoff) is announced on stderr. Two runs on one store at once both finish.

    Example: annotator prelabel --osm-file finland-latest.osm.pbf

    Example: annotator prelabel --user-agent "annotator (me@example.org)"

    Example: annotator prelabel --osm-file region.osm.pbf --json > prelabel.json
    """
    from annotator.osm.decide import DecisionOptions
    from annotator.osm.overpass import OverpassOptions, url_problem, user_agent_problem
    from annotator.osm.prelabel import feature_source, prelabel_pairs
    from annotator.store import unit_of_work

    if overpass_url is not None and osm_file is not None:
        raise typer.BadParameter("give either --overpass-url or --osm-file, not both", param_hint="--osm-file")
    if overpass_url is not None and (problem := url_problem(overpass_url)):
        raise typer.BadParameter(problem, param_hint="--overpass-url")
    if user_agent is not None and (problem := user_agent_problem(user_agent)):
        raise typer.BadParameter(problem, param_hint="--user-agent")
    app_state = state(ctx)
    overpass = OverpassOptions.from_flags(
        url=overpass_url,
        user_agent=user_agent,
        timeout_s=timeout_s,
        retries=retries,
        max_response_mb=max_response_mb,
        notify=None if app_state.quiet else _say,
    )
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
            media_dir=app_state.location.media_dir,
        )
    if as_json:
        print_json(prelabel_json(report, from_overpass=osm_file is None))
    else:
        stdout.print(_report_table(report))
        summary = f"{report.pairs_todo} pair(s) without evidence looked up"
        if osm_file is None:
            summary += (
                f", {report.clusters} cluster(s), {report.requests} request(s), {report.cache_hits} from the cache"
            )
        if report.done_elsewhere:
            summary += f"; {report.done_elsewhere} done meanwhile by another run on this store"
        if report.overlays_rendered or report.overlays_failed:
            summary += f"; {report.overlays_rendered} overlay image(s) drawn in {report.overlay_seconds:.1f} s"
            if report.overlays_failed:
                summary += f" ({report.overlays_failed} could not be drawn)"
        stdout.print(summary)
    if report.error:
        stderr.print(f"Error: {report.error}", markup=False, highlight=False)
        raise typer.Exit(1)


def prelabel_json(report: PrelabelReport, *, from_overpass: bool) -> dict[str, object]:
    """The `--json` twin of the summary table; `error` is set (and the exit code is 1) when Overpass gave up."""
    payload: dict[str, object] = {
        "source": report.source,
        "pairs_todo": report.pairs_todo,
        "labelled": report.labelled,
        "per_class": plain_counts(report.per_class),
        "unmatched": report.unmatched,
        "left_unlabelled": report.left_unlabelled,
        "done_elsewhere": report.done_elsewhere,
        "overlays_rendered": report.overlays_rendered,
        "overlays_failed": report.overlays_failed,
        "overlay_seconds": round(report.overlay_seconds, 3),
    }
    if from_overpass:
        payload |= {"clusters": report.clusters, "requests": report.requests, "cache_hits": report.cache_hits}
    payload["error"] = report.error
    return payload


def _say(message: str) -> None:
    """Tell the user what the Overpass client is waiting for (stderr, beside the progress bar)."""
    stderr.print(message, markup=False, highlight=False)


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
