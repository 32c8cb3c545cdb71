"""Shared experiment policy state: per-variant counters and canary control, for all workers.

Revision ID: 0005_policy_state
Revises: 0004_endpoints
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.storage.sql import JSONType, UtcDateTime

revision = "0005_policy_state"
down_revision = "0004_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_counters",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("counter", sa.String(32), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "variant", "counter", name=op.f("pk_policy_counters")),
    )
    op.create_table(
        "policy_control",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", name=op.f("pk_policy_control")),
    )


def downgrade() -> None:
    op.drop_table("policy_control")
    op.drop_table("policy_counters")
