"""Workers on other machines (issue 14): jobs.queue_job_id, and the task queue's own tables.

`jobs.queue_job_id` is the id of the job's entry in the task queue (procrastinate) when a
worker (`python -m safety_models worker`) is to run it, NULL for a job that the dashboard or
the CLI runs itself. The jobs table stays the product's record of every job (status,
progress, cancel); the queue only hands the job to one worker and watches its heartbeat.

On PostgreSQL this revision also applies procrastinate's schema (its tables, types and
functions, as the pinned version ships them in procrastinate/sql/schema.sql), unless a
procrastinate schema is there already. SQLite has no queue: jobs there run on the machine
that starts them, as before. A later procrastinate version with schema changes needs a
revision of its own that runs that version's files in procrastinate/sql/migrations/.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

QUEUE_TABLES = ("procrastinate_jobs", "procrastinate_workers", "procrastinate_events",
                "procrastinate_periodic_defers")


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "queue_job_id" not in {c["name"] for c in inspector.get_columns("jobs")}:
        with op.batch_alter_table("jobs") as batch:
            batch.add_column(sa.Column("queue_job_id", sa.BigInteger, nullable=True))
    if bind.dialect.name == "postgresql" and not inspector.has_table("procrastinate_jobs"):
        from procrastinate.schema import SchemaManager

        # The driver's own connection, without parameters: the schema is many statements,
        # and its '%' signs are not placeholders. It runs in the migration's transaction.
        bind.connection.driver_connection.execute(SchemaManager.get_schema())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in QUEUE_TABLES:
            op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queue_job_id")
