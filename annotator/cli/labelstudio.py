"""`annotator ls ...` (issue 5)."""

import typer

app = typer.Typer(help="Label Studio round trip.", no_args_is_help=True)
