"""Experiment endpoints: variants, policies and shared policy state.

Revision ID: 0004_endpoints
Revises: 0003_monitoring
Create Date: 2026-11-22
"""

from __future__ import annotations

revision = "0004_endpoints"
down_revision = "0003_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
