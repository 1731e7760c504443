"""`annotator init`: create or upgrade the store."""

from __future__ import annotations

import typer

from annotator.cli.common import state, stdout


def init_command(ctx: typer.Context) -> None:
    """Create the store, or upgrade an older one in place (idempotent).

    Example: annotator --db corpus.db init
    """
    from annotator.store import upgrade_to_head

    app_state = state(ctx)
    location = app_state.location
    with app_state.store(create=True) as engine:
        before, after = upgrade_to_head(engine)
    location.media_dir.mkdir(parents=True, exist_ok=True)
    where = location.sqlite_path or location.url.split("@")[-1]
    if before == after:
        stdout.print(f"Store at {where} is up to date (revision {after}).", markup=False)
    elif before is None:
        stdout.print(f"Created store at {where} (revision {after}); media in {location.media_dir}.", markup=False)
    else:
        stdout.print(f"Upgraded store at {where} from revision {before} to {after}.", markup=False)
