"""`annotator ls push` / `annotator ls pull`: the Label Studio round trip (SPEC §7).

The API key comes from --ls-api-key or LABEL_STUDIO_API_KEY and is never shown (not in --help, messages or
tracebacks). label_studio_sdk is imported inside the commands (it takes ~1 s).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from annotator.cli.common import advance, progress_bar, state, stderr, stdout

#: The store-wide lock a push or pull holds: a second one waits, then does only what is left (no task twice).
LS_LOCK = "labelstudio"

#: Label Studio's local-files document root, when it is a parent of the media dir (read as Label Studio reads it).
FILES_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"

app = typer.Typer(help="Label Studio round trip: push pairs for review, pull the verdicts back.", no_args_is_help=True)

URL_OPTION = typer.Option(
    None,
    "--ls-url",
    envvar="LABEL_STUDIO_URL",
    show_envvar=True,
    help="Label Studio base URL, e.g. http://127.0.0.1:8080.",
)
KEY_OPTION = typer.Option(
    None,
    "--ls-api-key",
    envvar="LABEL_STUDIO_API_KEY",
    show_envvar=True,
    show_default=False,
    help=(
        "Label Studio API key: a legacy token or a personal access token (never printed). A key given here shows "
        "in `ps` to every user of the machine: prefer the LABEL_STUDIO_API_KEY environment variable."
    ),
)


def _waiting(quiet: bool) -> Callable[[], None]:
    def say() -> None:
        if not quiet:
            stderr.print("Waiting for another `ls push` / `ls pull` on this store to finish…", markup=False)

    return say


def _table(title: str, rows: list[tuple[str, object]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, str(value))
    return table


@app.command("push")
def push_command(
    ctx: typer.Context,
    ls_url: str | None = URL_OPTION,
    ls_api_key: str | None = KEY_OPTION,
    project: str = typer.Option("annotator review", "--project", help="Title of the review project (reused)."),
    media_base_url: str | None = typer.Option(
        None, "--media-base-url", help="Serve media from this URL instead of Label Studio's local-files serving."
    ),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Tasks per import request."),
    order: str | None = typer.Option(
        None,
        "--order",
        help=(
            "Review order: rank (the most suspicious label first, from the latest `annotator rank` run) or osm "
            "(the least confident OSM match first). [default: rank when a rank run exists, else osm]"
        ),
        show_default=False,
    ),
) -> None:
    """Push every pair not yet pushed as a Label Studio task (OSM class pre-selected); conflicts go to adjudication.

    Idempotent and resumable: a pair is never pushed twice, even after a push was killed mid-way. After
    `annotator rank`, every task also carries the model's suggestion, the tasks not reviewed yet are updated to
    the latest run, and Label Studio serves the most suspicious labels first.

    Example: LABEL_STUDIO_URL=http://127.0.0.1:8080 LABEL_STUDIO_API_KEY=… annotator ls push --project "survey 2024"
    """
    from annotator.labelstudio.client import connect
    from annotator.labelstudio.push import push_pairs
    from annotator.labelstudio.queue import ReviewOrder
    from annotator.store import job_lock, unit_of_work

    if order is not None and order not in set(ReviewOrder):
        raise typer.BadParameter(f"{order!r} is not one of: rank, osm", param_hint="--order")
    app_state = state(ctx)
    # Label Studio's own setting, when its local-files root is a parent of the media dir (default: the media dir).
    files_root = os.environ.get(FILES_ROOT_ENV) or None
    with app_state.store() as engine:
        conn = connect(ls_url, ls_api_key)
        with (
            job_lock(engine, LS_LOCK, on_wait=_waiting(app_state.quiet)),
            unit_of_work(engine) as work,
            progress_bar(app_state, "Pushing tasks", None) as progress,
        ):
            report = push_pairs(
                work,
                app_state.location,
                conn,
                title=project,
                media_base_url=media_base_url,
                batch_size=batch_size,
                order=order,
                files_root=Path(files_root) if files_root else None,
                on_batch=lambda n: advance(progress, n),
                on_total=lambda n: progress.update(progress.task_ids[0], total=n),
            )
    rows: list[tuple[str, object]] = [
        ("Label Studio", report.url),
        ("project", f"{report.title} (id {report.ls_project_id})"),
        ("tasks pushed now", report.pushed),
        ("with an OSM prediction", report.with_prediction),
        ("with the rank run's prediction", report.with_rank_prediction),
        ("already pushed", report.already_pushed),
        ("adopted from an interrupted push", report.adopted),
        ("pairs without media (not pushed)", report.without_media),
        ("batches × size", f"{report.batches} × {report.batch_size}"),
    ]
    if report.rank_run is not None:
        rows += [
            ("unreviewed tasks updated to the rank run", report.updated_in_place),
            ("unreviewed tasks already showing it", report.already_current),
            ("reviewed tasks (left as they are)", report.reviewed_untouched),
        ]
    queue = report.queue_model_version or "no prediction yet"
    rows.append(("review order", f"{report.order}: {report.order.serves_first} ({queue})"))
    if report.adjudication_title:
        rows.append((f"conflicts → {report.adjudication_title}", report.adjudication_pushed))
    stdout.print(_table("ls push", rows))
    stdout.print(f"Review at {report.url}/projects/{report.ls_project_id}/data", markup=False)


@app.command("pull")
def pull_command(
    ctx: typer.Context,
    ls_url: str | None = URL_OPTION,
    ls_api_key: str | None = KEY_OPTION,
    full: bool = typer.Option(False, "--full", help="Reconcile every task; deleted annotations become retracted."),
) -> None:
    """Pull verdicts from Label Studio into the store (incremental since the last pull) and update final labels.

    Example: annotator ls pull            (or: annotator ls pull --full   to reconcile deletions)
    """
    from annotator.labelstudio.client import connect
    from annotator.labelstudio.pull import pull_reviews
    from annotator.store import job_lock, unit_of_work

    app_state = state(ctx)
    with app_state.store() as engine:
        conn = connect(ls_url, ls_api_key)
        with (
            job_lock(engine, LS_LOCK, on_wait=_waiting(app_state.quiet)),
            unit_of_work(engine) as work,
            progress_bar(app_state, "Pulling tasks", None) as progress,
        ):
            report = pull_reviews(work, conn, full=full, on_page=lambda n: advance(progress, n))
    if report.projects == 0:
        stdout.print(
            f"Nothing to pull: the store has pushed nothing to {report.url} yet (run `annotator ls push`).",
            markup=False,
        )
        return
    rows: list[tuple[str, object]] = [
        ("Label Studio", report.url),
        ("mode", report.mode),
        ("projects", report.projects),
        ("tasks seen", report.tasks_seen),
        ("reviews added", report.reviews_added),
        *((f"  {name}", count) for name, count in sorted(report.outcomes.items())),
        ("reviews retracted", report.reviews_retracted),
        ("final labels changed", report.final_labels_changed),
    ]
    if report.unknown_tasks:
        rows.append(("tasks not made by annotator (ignored)", report.unknown_tasks))
    stdout.print(_table("ls pull", rows))
