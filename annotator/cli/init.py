"""`annotator init`: create or upgrade the store."""

from __future__ import annotations

import typer

from annotator.cli.common import print_json, state, stdout


def init_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print what was done as one JSON object."),
) -> None:
    """Create the store, or upgrade an older one in place (idempotent).

    Example: annotator --db corpus.db init

    Example: annotator --db corpus.db init --json
    """
    from annotator.store import upgrade_to_head

    app_state = state(ctx)
    location = app_state.location
    with app_state.store(create=True) as engine:
        before, after = upgrade_to_head(engine)
    location.media_dir.mkdir(parents=True, exist_ok=True)
    where = location.sqlite_path or location.url.split("@")[-1]
    if as_json:
        action = "up_to_date" if before == after else "created" if before is None else "upgraded"
        payload = {"store": where, "action": action, "revision_before": before, "revision": after}
        print_json(payload | {"media_dir": location.media_dir})
    elif before == after:
        stdout.print(f"Store at {where} is up to date (revision {after}).", markup=False)
    elif before is None:
        stdout.print(f"Created store at {where} (revision {after}); media in {location.media_dir}.", markup=False)
    else:
        stdout.print(f"Upgraded store at {where} from revision {before} to {after}.", markup=False)
