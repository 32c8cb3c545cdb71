"""Update policies and their runs (the retraining loop).

``update_policies`` holds each model's policy; ``policy_runs`` each run's state machine, with
a unique ``active_model`` that allows one run in flight per model.

Revision ID: 0008_update_policies
Revises: 0007_alert_silences
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.storage.sql import JSONType, UtcDateTime

revision = "0008_update_policies"
down_revision = "0007_alert_silences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "update_policies",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("trigger_state", JSONType, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_update_policies")),
    )
    op.create_table(
        "policy_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("active_model", sa.String(128), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("trigger", JSONType, nullable=False),
        sa.Column("served_version", sa.Integer(), nullable=True),
        sa.Column("candidate_version", sa.Integer(), nullable=True),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_holder", sa.String(128), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_runs")),
        sa.UniqueConstraint("run_id", name=op.f("uq_policy_runs_run_id")),
        sa.UniqueConstraint("active_model", name=op.f("uq_policy_runs_active_model")),
    )
    op.create_index("ix_policy_runs_model_id", "policy_runs", ["model", "id"])


def downgrade() -> None:
    op.drop_index("ix_policy_runs_model_id", table_name="policy_runs")
    op.drop_table("policy_runs")
    op.drop_table("update_policies")
