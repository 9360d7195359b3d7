"""Migrations: the newest revision is the tables in code; older databases upgrade themselves.

Each test runs on SQLite and on PostgreSQL (conftest.db_url).
"""

from __future__ import annotations

import shutil
import threading
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from safety_models.data import migrations
from safety_models.data import store as store_module
from safety_models.data.store import Store
from safety_models.errors import UserError
from safety_models.modeling import registry
from safety_models.service import accounts, audit, jobs

PRODUCT_TABLES = {"uploads", "incidents", "incident_days", "rejected_rows", "boundaries", "meta",
                  "models", "jobs", "accounts", "audit_log"}
# The task queue's own tables (revision 0004), on PostgreSQL only: SQLite has no workers.
QUEUE_TABLES = {"procrastinate_jobs", "procrastinate_workers", "procrastinate_events",
                "procrastinate_periodic_defers"}


def expected_tables(engine: sa.Engine) -> set[str]:
    queue = QUEUE_TABLES if engine.dialect.name == "postgresql" else set()
    return PRODUCT_TABLES | queue | {"alembic_version"}


@pytest.fixture
def home(tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def engine_of_home() -> sa.Engine:
    """An engine on the test's database, as code before migrations made it."""
    from safety_models import paths

    return sa.create_engine(paths.db_url())


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def make_database_as_before_migrations(engine: sa.Engine) -> None:
    """What the last version without Alembic left: store.py's tables by metadata.create_all
    (models and jobs were made on first use: this home never trained), one upload with two
    incidents and a meta row, and no alembic_version table."""
    tables = [store_module.metadata.tables[name]
              for name in ("uploads", "incidents", "rejected_rows", "boundaries", "meta")]
    store_module.metadata.create_all(engine, tables=tables)
    with engine.begin() as conn:
        conn.execute(store_module.uploads.insert().values(
            id=1, file_name="old.csv", category="crime", checksum="0" * 64,
            uploaded_at=datetime(2025, 1, 2, 3, 4, 5), rows_read=2, accepted=2, rejected=0,
            duplicates=0, mapping="{}", is_demo=False, rejected_reasons="{}",
            time_min=datetime(2019, 1, 1, 8), time_max=datetime(2019, 1, 1, 9),
            center_latitude=41.85, center_longitude=-87.65))
        conn.execute(store_module.incidents.insert(), [
            {"upload_id": 1, "category": "crime", "subtype": "theft", "source_key": key,
             "occurred_at": datetime(2019, 1, 1, 8 + i), "latitude": 41.85,
             "longitude": -87.65}
            for i, key in enumerate(["a", "b"])])
        conn.execute(store_module.meta.insert().values(key="first_start", value="done"))


def test_newest_revision_is_the_tables_in_code(home):
    """A table or column added in code without a revision fails here (registry and jobs are
    imported above, so their tables are on the metadata)."""
    assert {registry.models_table.name, jobs.jobs_table.name, accounts.accounts_table.name,
            audit.audit_table.name} <= set(store_module.metadata.tables)
    store = Store()
    product = sa.MetaData()
    for name in PRODUCT_TABLES:
        store_module.metadata.tables[name].to_metadata(product)
    with store.engine.connect() as conn:
        # The queue's tables are procrastinate's schema, not tables in code.
        context = MigrationContext.configure(conn, opts={"include_name": lambda name, kind, _: (
            kind != "table" or name not in QUEUE_TABLES)})
        diff = compare_metadata(context, product)
        assert migrations.current(conn) == migrations.head()
    assert diff == []
    assert table_names(store.engine) == expected_tables(store.engine)
    store.close()


def test_database_made_before_migrations_is_adopted_with_its_rows(home):
    engine = engine_of_home()
    make_database_as_before_migrations(engine)
    assert "alembic_version" not in table_names(engine)

    store = Store()
    with store.engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
    assert table_names(store.engine) == expected_tables(store.engine)
    assert store.incident_counts()["crime"] == 2
    # the per-day counts (revision 0005) were made from the incidents already stored
    daily = store.incidents_per_day("crime")
    assert daily.to_dict("list") == {"occurred_at": [pd.Timestamp("2019-01-01")],
                                     "subtype": ["theft"], "incidents": [2]}
    assert store.incidents("crime")["occurred_at"].tolist() == [
        pd.Timestamp("2019-01-01 08:00"), pd.Timestamp("2019-01-01 09:00")]
    assert store.get_meta("first_start") == "done"
    assert store.list_uploads()["file_name"].tolist() == ["old.csv"]
    # The tables it never had work: a job row, and the registry's listing.
    jobs.cancel_job(store, 1)
    assert jobs.list_jobs(store) == [] and registry.list_models(store).empty
    store.close()
    engine.dispose()


def test_later_revisions_apply_to_an_old_database_keeping_its_rows(home, tmp_path):
    """Stamp as the baseline, then the revisions after it: the product's, and a test
    revision after the head (in a copy of the migrations) that adds a column and a table."""
    location = tmp_path / "migrations"
    shutil.copytree(migrations.HERE, location, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrations.head()
    test_revision = f"{int(head) + 1:04d}"
    (location / "versions" / f"{test_revision}_test_note.py").write_text(
        f'revision = "{test_revision}"\n'
        f'down_revision = "{head}"\n'
        "branch_labels = None\n"
        "depends_on = None\n"
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n\n"
        "def upgrade():\n"
        '    with op.batch_alter_table("uploads") as batch:\n'
        '        batch.add_column(sa.Column("note", sa.Text, nullable=False,\n'
        '                                   server_default="none"))\n'
        '    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))\n\n\n'
        "def downgrade():\n"
        '    op.drop_table("notes")\n')
    engine = engine_of_home()
    make_database_as_before_migrations(engine)
    with engine.begin() as conn:
        migrations.upgrade(conn, location)
    with engine.connect() as conn:
        assert migrations.current(conn) == test_revision
        assert conn.execute(sa.text("SELECT id, file_name, note FROM uploads")).all() == [
            (1, "old.csv", "none")]
        assert conn.execute(sa.text("SELECT count(*) FROM incidents")).scalar() == 2
    assert {"notes", "models", "jobs", "accounts", "audit_log"} <= table_names(engine)

    # This version of the product does not know the test revision: it says so instead of
    # guessing.
    with pytest.raises(UserError, match=f"revision {test_revision}, made by a newer version"):
        Store()
    engine.dispose()


def test_stores_opening_a_new_database_at_once_migrate_it_once(home):
    errors, stores = [], []

    def open_store():
        try:
            stores.append(Store())
        except Exception as err:   # noqa: BLE001 - reported by the assert below
            errors.append(err)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with stores[0].engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
    for s in stores:
        s.close()
