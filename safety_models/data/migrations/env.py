"""Alembic's entry point: migrate the connection handed over in config.attributes.

`safety_models.data.migrations.upgrade` passes a connection that is already inside a write
transaction (BEGIN IMMEDIATE on SQLite, the write lock on PostgreSQL), so two processes
opening a new database at once migrate it once. Without one (a developer running
`alembic.command.upgrade(migrations.alembic_config(), "head")` or `command.revision(...)` from
Python), an engine is made for paths.db_url(); config.attributes["target_metadata"] may
carry the tables in code for `--autogenerate`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

config = context.config


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("target_metadata"),
        # SQLite cannot ALTER most things: revisions' batch_alter_table copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from safety_models import paths

    engine = sa.create_engine(paths.db_url(), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("safety_models migrations run online only (python -m safety_models opens "
                     "the database and upgrades it)")
run_online()
