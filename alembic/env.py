"""Alembic environment: the engine comes from `annotator.store` (programmatic) or ANNOTATOR_DB (CLI).

This folder is the migrations' source; the wheel carries it as `annotator/_migrations` (see pyproject.toml).
"""

from __future__ import annotations

from alembic import context

from annotator.config import resolve_store
from annotator.store.engine import make_engine
from annotator.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Migrate the engine `annotator init` hands over, or (Alembic's own CLI) the database of ANNOTATOR_DB."""
    given = config.attributes.get("engine")
    engine = given or make_engine(resolve_store().url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot ALTER most things: batch mode copies the table, named constraints survive it.
                render_as_batch=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        if given is None:  # the engine is ours only when Alembic's CLI runs us
            engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `annotator init`")
run_migrations_online()
