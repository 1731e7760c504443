"""`annotator ls push` / `pull` / `serve` / `stop`: the Label Studio round trip (SPEC §7) and a local server.

The API key comes from --ls-api-key or LABEL_STUDIO_API_KEY and is never shown (not in --help, messages or
tracebacks). label_studio_sdk is imported inside the commands (it takes ~1 s).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from annotator.cli.common import advance, print_json, progress_bar, state, stderr, stdout

#: The store-wide lock a push or pull holds: a second one waits, then does only what is left (no task twice).
LS_LOCK = "labelstudio"

#: Label Studio's local-files document root, when it is a parent of the media dir (read as Label Studio reads it).
FILES_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
#: Where `ls serve` keeps a server (database, log, login) unless told: beside the store's media dir.
DEFAULT_DATA_DIR = "label-studio"

app = typer.Typer(
    help="Label Studio round trip: push pairs for review, pull the verdicts back; serve / stop a local server.",
    no_args_is_help=True,
)

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


JSON_OPTION = typer.Option(False, "--json", help="Print the summary as one JSON object instead of the table.")
DATA_DIR_OPTION = typer.Option(
    None,
    "--data-dir",
    help="The server's folder: its database, log, login and token [default: label-studio/ beside the media dir].",
    show_default=False,
)


def _data_dir(ctx: typer.Context, given: Path | None) -> Path:
    return given if given is not None else state(ctx).location.media_dir.parent / DEFAULT_DATA_DIR


@app.command("push")
def push_command(
    ctx: typer.Context,
    ls_url: str | None = URL_OPTION,
    ls_api_key: str | None = KEY_OPTION,
    project: str = typer.Option("annotator review", "--project", help="Title of the review project (reused)."),
    media_base_url: str | None = typer.Option(
        None, "--media-base-url", help="Serve media from this URL instead of Label Studio's local-files serving."
    ),
    ls_files_root: Path | None = typer.Option(
        None,
        "--ls-files-root",
        envvar=FILES_ROOT_ENV,
        show_envvar=True,
        show_default=False,
        help=(
            "The Label Studio server's local-files root (its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT): the media "
            "dir or a folder containing it; both must name the same folder. [default: the media dir]"
        ),
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
    overlap: int | None = typer.Option(
        None,
        "--overlap",
        min=1,
        show_default=False,
        help=(
            "How many different annotators label each task: sets the review project (and its tasks pushed "
            "before) to N. [default: 1 for a new project; an existing one keeps its setting]"
        ),
    ),
    overlap_fraction: float = typer.Option(
        1.0, "--overlap-fraction", min=0.0, max=1.0, help="Only this seeded share of tasks gets --overlap; the rest 1."
    ),
    control_fraction: float = typer.Option(
        0.0,
        "--control-fraction",
        min=0.0,
        max=1.0,
        help=(
            "Serve this seeded share of pairs whose label is settled (agreed by two, or adjudicated) again as "
            "control items, to measure the annotators; they look like any task and never change a final label."
        ),
    ),
    blind_fraction: float = typer.Option(
        0.0,
        "--blind-fraction",
        min=0.0,
        max=1.0,
        help="Push this seeded share of tasks without the pre-selected suggestion (measures anchoring).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the overlap, control and blind shares."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Push every pair not yet pushed as a Label Studio task (OSM class pre-selected); conflicts go to adjudication.

    Idempotent and resumable: a pair is never pushed twice, even after a push was killed mid-way. After
    `annotator rank`, every task also carries the model's suggestion, the tasks not reviewed yet are updated to
    the latest run, and Label Studio serves the most suspicious labels first. Before creating any task, one
    task's image, audio and overlay are fetched through Label Studio as a browser would: if they do not come
    back intact, nothing is created (set --ls-files-root to the server's local-files root).

    Example: LABEL_STUDIO_URL=http://127.0.0.1:8080 LABEL_STUDIO_API_KEY=… annotator ls push --project "survey 2024"
    --overlap 2 --control-fraction 0.1 --blind-fraction 0.2
    """
    from annotator.labelstudio.client import connect
    from annotator.labelstudio.push import ReviewDesign, push_pairs
    from annotator.labelstudio.queue import ReviewOrder
    from annotator.store import job_lock, unit_of_work

    if order is not None and order not in set(ReviewOrder):
        raise typer.BadParameter(f"{order!r} is not one of: rank, osm", param_hint="--order")
    design = ReviewDesign(overlap, overlap_fraction, control_fraction, blind_fraction, seed).checked()
    app_state = state(ctx)
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
                design=design,
                files_root=ls_files_root,
                on_batch=lambda n: advance(progress, n),
                on_total=lambda n: progress.update(progress.task_ids[0], total=n),
            )
    if json_out:
        print_json(report.to_json())
        return
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
        ("annotators per task", _overlap_text(report)),
        ("tasks wanting > 1 annotator", report.with_overlap),
        ("control items now (in project)", f"{report.control_pushed} ({report.control_total})"),
        ("pushed blind (no pre-selection)", report.blind_pushed),
        ("overlay images drawn now", report.overlays_rendered),
    ]
    if report.media_checked:
        rows.append(("media checked", ", ".join(report.media_checked)))
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


def _overlap_text(report: object) -> str:
    overlap = getattr(report, "overlap", 1)
    before = getattr(report, "overlap_changed_from", None)
    if before is None:
        return str(overlap)
    return f"{overlap} (was {before}; {getattr(report, 'overlap_tasks_updated', 0)} tasks updated)"


@app.command("pull")
def pull_command(
    ctx: typer.Context,
    ls_url: str | None = URL_OPTION,
    ls_api_key: str | None = KEY_OPTION,
    full: bool = typer.Option(False, "--full", help="Reconcile every task; deleted annotations become retracted."),
    json_out: bool = JSON_OPTION,
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
    if json_out:
        to_json = getattr(report, "to_json", None)
        print_json(to_json() if callable(to_json) else dataclasses.asdict(report))
        return
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


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    data_dir: Path | None = DATA_DIR_OPTION,
    files_root: Path | None = typer.Option(
        None,
        "--files-root",
        show_default=False,
        help=(
            "The folder Label Studio may serve media from (its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT): the media "
            "dir or a folder containing it. [default: the media dir]"
        ),
    ),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, show_default=False, help="[default: the port used last time, else a free one]"
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on; 127.0.0.1 keeps it to this machine (anything else exposes it).",
    ),
    env_file: Path | None = typer.Option(
        None,
        "--env-file",
        show_default=False,
        help="Where to write the shell variables for `ls push` / `ls pull` (mode 600) [default: DATA_DIR/ls.env].",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Start a local, headless Label Studio in the background (local-files serving on, a preset admin and token).

    It keeps running after this command returns; `annotator ls stop` ends it. The admin login and the API token
    are written to files of mode 600 in the data dir, never printed; source the env file and push.

    Example: annotator ls serve --port 8080 && set -a && . label-studio/ls.env && set +a && annotator ls push
    """
    from annotator.labelstudio.server import serve

    app_state = state(ctx)
    root = files_root if files_root is not None else app_state.location.media_dir
    served = serve(_data_dir(ctx, data_dir), root, port=port, host=host, env_file=env_file)
    if json_out:
        print_json(dataclasses.asdict(served))
        return
    rows: list[tuple[str, object]] = [
        ("Label Studio", served.url),
        ("pid", served.pid),
        ("data dir", served.data_dir),
        ("local-files root", served.files_root),
        ("admin login and API token (mode 600)", served.credentials_file),
        ("shell variables for ls push / pull (mode 600)", served.env_file),
    ]
    stdout.print(_table("ls serve", rows))
    stdout.print(
        f"Next: set -a; . {served.env_file}; set +a; annotator ls push   (log in at {served.url} with the login in "
        f"{served.credentials_file}; stop it with: annotator ls stop --data-dir {served.data_dir})",
        markup=False,
    )


@app.command("stop")
def stop_command(ctx: typer.Context, data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Stop the Label Studio that `annotator ls serve` started from a data dir (by the PID it recorded).

    Example: annotator ls stop --data-dir label-studio
    """
    from annotator.labelstudio.server import stop

    folder = _data_dir(ctx, data_dir).resolve()
    if stop(folder):
        stdout.print(f"Stopped the Label Studio of {folder}.", markup=False)
    else:
        stdout.print(f"No Label Studio was running from {folder}.", markup=False)
