"""Alert acknowledgements and silences.

``alert_silences`` holds label matchers and a period: an alert event that matches an active
silence when it is to be delivered is recorded but not sent (``alert_events.silenced_by``).
``alert_events.acknowledged_at``/``acknowledged_by`` record who took a firing alert on.

Revision ID: 0007_alert_silences
Revises: 0006_registry_housekeeping
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.storage.sql import JSONType, UtcDateTime

revision = "0007_alert_silences"
down_revision = "0006_registry_housekeeping"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("matchers", JSONType, nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_silences")),
    )
    op.create_index("ix_alert_silences_ends_at", "alert_silences", ["ends_at"])
    with op.batch_alter_table("alert_events") as batch:
        batch.add_column(sa.Column("silenced_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_events") as batch:
        batch.drop_column("acknowledged_by")
        batch.drop_column("acknowledged_at")
        batch.drop_column("silenced_by")
    op.drop_index("ix_alert_silences_ends_at", table_name="alert_silences")
    op.drop_table("alert_silences")
