"""`annotator imagery ...` (issue 3)."""

import typer

app = typer.Typer(help="Aerial imagery for pairs.", no_args_is_help=True)
