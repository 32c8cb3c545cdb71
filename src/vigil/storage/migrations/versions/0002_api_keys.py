"""API keys (hashed) for the serving and admin APIs.

Revision ID: 0002_api_keys
Revises: 0001_registry
Create Date: 2026-11-22
"""

from __future__ import annotations

revision = "0002_api_keys"
down_revision = "0001_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
