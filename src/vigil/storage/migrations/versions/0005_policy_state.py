"""Shared experiment policy state: per-variant counters and canary control, for all workers.

Revision ID: 0005_policy_state
Revises: 0004_endpoints
Create Date: 2026-11-22
"""

from __future__ import annotations

revision = "0005_policy_state"
down_revision = "0004_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
