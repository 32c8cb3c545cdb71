"""Monitoring: metric time series, alert rules and alert events.

Revision ID: 0003_monitoring
Revises: 0002_api_keys
Create Date: 2026-11-22
"""

from __future__ import annotations

revision = "0003_monitoring"
down_revision = "0002_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
