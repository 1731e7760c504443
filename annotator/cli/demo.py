"""`annotator demo OUT`: generate the offline demo corpus (SPEC §5)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.table import Table

from annotator.cli.common import print_json, state, stdout


def demo_command(
    ctx: typer.Context,
    out: Path = typer.Argument(..., metavar="OUT", help="Folder to write the corpus into (created if needed)."),
    as_json: bool = typer.Option(False, "--json", help="Print where the parts are as one JSON object."),
) -> None:
    """Generate a small offline corpus: recordings + manifest, a local XYZ tile pyramid and an OSM extract.

    Everything is made by seeded generators on this machine; nothing is downloaded. The README demo
    (scripts/demo.sh) imports it with the real CLI.

    Example: annotator demo demo-run/corpus && annotator import demo-run/corpus/recordings/manifest.csv
    --imagery demo-run/corpus/tiles
    """
    from annotator.demo.corpus import build_demo_corpus

    state(ctx)
    corpus = build_demo_corpus(out)
    if as_json:
        print_json(dataclasses.asdict(corpus))
        return
    table = Table(title=f"Demo corpus in {corpus.root}")
    table.add_column("what")
    table.add_column("where")
    table.add_row("recordings manifest", str(corpus.manifest))
    table.add_row("tile pyramid (imagery SOURCE)", str(corpus.tiles))
    table.add_row("OSM extract", str(corpus.osm_file))
    stdout.print(table)
    stdout.print(f"Next: annotator init && annotator import {corpus.manifest} --imagery {corpus.tiles}", markup=False)
