"""Baseline: the tables as they stood before migrations.

uploads, incidents, rejected_rows, boundaries and meta (store.py), models
(modeling/registry.py) and jobs (service/jobs.py). Each is created only when missing: a
database made before migrations already has some or all of them, with its rows, and is
adopted as it is.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("uploads"):
        op.create_table(
            "uploads",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("file_name", sa.Text, nullable=False),
            sa.Column("category", sa.String(16), nullable=False),
            sa.Column("checksum", sa.String(64), nullable=False),
            sa.Column("uploaded_at", sa.DateTime, nullable=False),
            sa.Column("rows_read", sa.Integer, nullable=False),
            sa.Column("accepted", sa.Integer, nullable=False),
            sa.Column("rejected", sa.Integer, nullable=False),
            sa.Column("duplicates", sa.Integer, nullable=False),
            sa.Column("mapping", sa.Text, nullable=False),
            sa.Column("stored_path", sa.Text),
            sa.Column("is_demo", sa.Boolean, nullable=False),
            sa.Column("time_min", sa.DateTime),
            sa.Column("time_max", sa.DateTime),
            sa.Column("rejected_reasons", sa.Text, nullable=False),
            sa.Column("center_latitude", sa.Float),
            sa.Column("center_longitude", sa.Float),
            sqlite_autoincrement=True,
        )
        op.create_index("ix_uploads_checksum", "uploads", ["checksum", "category"])
    if _missing("incidents"):
        op.create_table(
            "incidents",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("upload_id", sa.Integer, sa.ForeignKey("uploads.id"), nullable=False),
            sa.Column("category", sa.String(16), nullable=False),
            sa.Column("subtype", sa.Text, nullable=False),
            sa.Column("occurred_at", sa.DateTime, nullable=False),
            sa.Column("latitude", sa.Float, nullable=False),
            sa.Column("longitude", sa.Float, nullable=False),
            sa.Column("source_key", sa.String(200), nullable=False),
            sa.UniqueConstraint("category", "source_key",
                                name="uq_incidents_category_source_key"),
        )
        op.create_index("ix_incidents_category_occurred_at", "incidents",
                        ["category", "occurred_at"])
        op.create_index("ix_incidents_upload_id", "incidents", ["upload_id"])
    if _missing("rejected_rows"):
        op.create_table(
            "rejected_rows",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("upload_id", sa.Integer, sa.ForeignKey("uploads.id"), nullable=False),
            sa.Column("row_number", sa.Integer, nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("raw", sa.Text, nullable=False),
        )
        op.create_index("ix_rejected_rows_upload_id", "rejected_rows", ["upload_id"])
    if _missing("boundaries"):
        op.create_table(
            "boundaries",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("geojson", sa.Text, nullable=False),
            sa.Column("is_demo", sa.Boolean, nullable=False),
        )
    if _missing("meta"):
        op.create_table(
            "meta",
            sa.Column("key", sa.String(200), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
    if _missing("models"):
        op.create_table(
            "models",
            sa.Column("model_id", sa.String(64), primary_key=True),
            sa.Column("category", sa.String(16), nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("activated_at", sa.DateTime),
            sa.Column("base_model_id", sa.String(64)),
            sa.Column("parent", sa.String(64)),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("is_base", sa.Boolean, nullable=False),
            sa.Column("grid", sa.JSON),
            sa.Column("window_hours", sa.Integer),
            sa.Column("cell_size_m", sa.Float),
            sa.Column("data_start", sa.DateTime),
            sa.Column("data_end", sa.DateTime),
            sa.Column("train_end", sa.DateTime),
            sa.Column("val_end", sa.DateTime),
            sa.Column("train_seconds", sa.Float),
            sa.Column("val_metrics", sa.JSON),
            sa.Column("test_metrics", sa.JSON),
            sa.Column("path", sa.Text, nullable=False),
        )
        op.create_index("ix_models_category_status", "models", ["category", "status"])
        # At most one active model per category, enforced by the database.
        op.create_index("uq_models_one_active", "models", ["category"], unique=True,
                        sqlite_where=sa.text("status = 'active'"),
                        postgresql_where=sa.text("status = 'active'"))
    if _missing("jobs"):
        op.create_table(
            "jobs",
            sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("category", sa.String(16)),
            sa.Column("config", sa.JSON, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("pid", sa.Integer),
            sa.Column("host", sa.String(255)),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("started_at", sa.DateTime),
            sa.Column("finished_at", sa.DateTime),
            sa.Column("progress", sa.JSON),
            sa.Column("history", sa.JSON),
            sa.Column("message", sa.Text),
            sa.Column("model_id", sa.Text),
            sa.Column("cancel_requested", sa.Boolean, nullable=False),
            sa.Column("log_path", sa.Text),
        )
        op.create_index("ix_jobs_status", "jobs", ["status"])


def downgrade() -> None:
    for name in ("jobs", "models", "meta", "boundaries", "rejected_rows", "incidents",
                 "uploads"):
        op.drop_table(name)
