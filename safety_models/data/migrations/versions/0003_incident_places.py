"""Incidents keep their place text (issue 13): incidents.place, the block, street or address
the file gave (NULL where it gave none), which names the map's hot spots.

Nullable, so the rows already stored stay valid; a home made before keeps working and only
its new uploads carry places.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("incidents")}
    if "place" not in present:
        with op.batch_alter_table("incidents") as batch:
            batch.add_column(sa.Column("place", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("place")
