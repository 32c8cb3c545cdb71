"""A model version's card facts: purpose, owner, intended use and limitations.

``model_versions.card`` holds what a person says about a version for its model card
(``vigil card``): a JSON object of text fields, given at registration and editable later
(audited), like ``description`` and ``tags``. Versions registered before have none (NULL).

Revision ID: 0010_version_card
Revises: 0009_audit_chain
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.storage.sql import JSONType

revision = "0010_version_card"
down_revision = "0009_audit_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("card", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("card")
