"""Registry housekeeping: archived versions, and version numbers that are never reused.

``model_versions.archived_at`` marks a version kept for the record but out of service (no
alias may point at it). ``registered_models.last_version`` remembers the highest number a
model ever gave out, so deleting its newest version does not hand that number to the next
registration (``models:/churn/3`` always means one artifact, in the inference log too).

Revision ID: 0006_registry_housekeeping
Revises: 0005_policy_state
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.storage.sql import UtcDateTime

revision = "0006_registry_housekeeping"
down_revision = "0005_policy_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("archived_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("registered_models") as batch:
        batch.add_column(sa.Column("last_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.drop_column("last_version")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("archived_at")
