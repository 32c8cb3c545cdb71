"""Hash-chain the audit log.

``audit_log.prev_digest`` holds the digest of the row before, ``audit_log.digest`` the
SHA-256 of the row's canonical content chained onto it (:mod:`vigil.hashchain`; the
fields are listed in :func:`vigil.audit.entry_digest`). The rows already there are chained
here, in id order, so that ``vigil audit verify`` checks the whole log from its first row.

Revision ID: 0009_audit_chain
Revises: 0008_update_policies
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.hashchain import GENESIS, canonical_time, chain_digest
from vigil.storage.sql import JSONType, UtcDateTime

revision = "0009_audit_chain"
down_revision = "0008_update_policies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
    audit = sa.table(
        "audit_log",
        sa.column("id", sa.Integer()),
        sa.column("at", UtcDateTime()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("entity_type", sa.String()),
        sa.column("entity_name", sa.String()),
        sa.column("model_name", sa.String()),
        sa.column("before", JSONType),
        sa.column("after", JSONType),
        sa.column("prev_digest", sa.String()),
        sa.column("digest", sa.String()),
    )
    conn = op.get_bind()
    prev = GENESIS
    rows = conn.execute(sa.select(audit).order_by(audit.c.id)).mappings().all()
    for row in rows:
        # The same content as vigil.audit.entry_digest (which this migration must not import).
        digest = chain_digest(
            prev,
            {
                "at": canonical_time(row["at"]),
                "actor": row["actor"],
                "action": row["action"],
                "entity": [row["entity_type"], row["entity_name"]],
                "model": row["model_name"],
                "before": row["before"],
                "after": row["after"],
            },
        )
        conn.execute(
            audit.update().where(audit.c.id == row["id"]).values(prev_digest=prev, digest=digest)
        )
        prev = digest
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("prev_digest", existing_type=sa.String(64), nullable=False)
        batch.alter_column("digest", existing_type=sa.String(64), nullable=False)
        batch.create_index("ix_audit_log_digest", ["digest"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_digest")
        batch.drop_column("digest")
        batch.drop_column("prev_digest")
