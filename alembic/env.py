"""Alembic environment: the engine comes from `annotator.store` (programmatic) or ANNOTATOR_DB (CLI)."""

from __future__ import annotations

from alembic import context

from annotator.config import resolve_store
from annotator.store.engine import make_engine
from annotator.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or make_engine(resolve_store().url)
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


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `annotator init`")
run_migrations_online()
