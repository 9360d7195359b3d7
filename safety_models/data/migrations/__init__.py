"""Schema migrations (Alembic), run by `Store` whenever it opens a database.

The tables are defined in code (store.py, modeling/registry.py, service/jobs.py,
service/accounts.py, service/audit.py); the
revisions in versions/ are how a database gets them, so a home or a PostgreSQL database made
by an older version upgrades itself when a newer one adds tables or columns. No alembic.ini
is needed: `alembic_config` builds the configuration in code.

Revision 0001 is the schema as it stood before migrations. It creates only the tables that
are missing, which is how a database made before migrations (by `metadata.create_all`, with
no alembic_version table) is adopted: its rows stay, the tables it never got (models and
jobs were created on first use) are added, it is stamped 0001, and later revisions apply.

To change the schema: change the sa.Table, then add versions/NNNN_what.py (copy
script.py.mako; down_revision = the current head; SQLite needs `op.batch_alter_table` to
alter a column). tests/data/test_migrations.py fails while the head differs from the tables
in code.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from safety_models.errors import UserError

HERE = Path(__file__).resolve().parent
BASELINE = "0001"              # the schema of the last version without migrations
VERSION_TABLE = "alembic_version"


def alembic_config(connection: sa.Connection | None = None,
                   script_location: Path | str = HERE) -> Config:
    """An Alembic Config without an ini file; env.py migrates `connection` when given
    (inside the caller's transaction), else the database of paths.db_url()."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=8)
def head(script_location: Path | str = HERE) -> str:
    """The newest revision (one head: revisions form a line)."""
    return ScriptDirectory.from_config(alembic_config(script_location=script_location)
                                       ).get_current_head()


def current(connection: sa.Connection) -> str | None:
    """The revision the database is at; None for a new database or one made before
    migrations (no alembic_version table)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(connection: sa.Connection, script_location: Path | str = HERE) -> None:
    """Bring the database behind `connection` to the head revision, in the caller's
    transaction (so it commits or rolls back with it); nothing when already there.
    UserError for a database that a newer version of safety_models has upgraded."""
    at = current(connection)
    if at == head(script_location):
        return
    if at is not None and at not in _known(script_location):
        raise UserError(
            f"the database {connection.engine.url.render_as_string(hide_password=True)} is at "
            f"schema revision {at}, made by a newer version of safety_models than this one "
            f"(which knows revisions up to {head(script_location)}); upgrade safety_models, "
            "or point SAFETY_MODELS_DB_URL / SAFETY_MODELS_HOME elsewhere")
    command.upgrade(alembic_config(connection, script_location), "head")


@functools.lru_cache(maxsize=8)
def _known(script_location: Path | str = HERE) -> frozenset[str]:
    scripts = ScriptDirectory.from_config(alembic_config(script_location=script_location))
    return frozenset(rev.revision for rev in scripts.walk_revisions())
