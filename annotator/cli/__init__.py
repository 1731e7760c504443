"""The `annotator` command line: one module per command group, joined here (SPEC §5).

Command bodies stay thin: parse, open the store, call one library function, print. Expected failures are
:class:`~annotator.errors.AnnotatorError`; the group below turns them into one line on stderr and an exit code.
Heavy libraries (torch, label-studio-sdk, osmium) are imported inside the commands that need them.
"""

from __future__ import annotations

import typer

from annotator import __version__
from annotator.cli import (
    demo,
    evaluate,
    export,
    imagery,
    import_,
    init,
    labelstudio,
    prelabel,
    rank,
    report,
    status,
    train,
    verify,
)
from annotator.cli.common import AnnotatorGroup, AppState

app = typer.Typer(
    name="annotator",
    cls=AnnotatorGroup,
    help="Build an ADVANCE-style audiovisual aerial-scene dataset from geotagged recordings, and train on it.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold the Label Studio API key
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"annotator {__version__}")
        raise typer.Exit()


@app.callback()
def global_options(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None,
        "--db",
        envvar="ANNOTATOR_DB",
        help="SQLite file or SQLAlchemy URL of the store [default: ./annotator.db].",
        show_envvar=True,
    ),
    media_dir: str | None = typer.Option(
        None,
        "--media-dir",
        envvar="ANNOTATOR_MEDIA",
        help="Where clips and images live [default: media/ beside the SQLite file].",
        show_envvar=True,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summaries on stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global options come before the command: `annotator --db run.db import recordings.csv`."""
    ctx.obj = AppState(db=db, media_dir=media_dir, quiet=quiet)


app.command("init")(init.init_command)
app.command("import")(import_.import_command)
app.command("prelabel")(prelabel.prelabel_command)
app.command("status")(status.status_command)
app.command("export")(export.export_command)
app.command("verify")(verify.verify_command)
app.command("train")(train.train_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("rank")(rank.rank_command)
app.command("report")(report.report_command)
app.command("demo")(demo.demo_command)
app.add_typer(imagery.app, name="imagery")
app.add_typer(labelstudio.app, name="ls")


def main() -> None:
    app()
