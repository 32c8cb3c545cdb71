"""The audit trail: one row per change, written in the same transaction as the change.

Any part of vigil that changes shared state (registry, endpoints, experiments, policies)
records it here with :func:`record_audit`, so the trail and the change commit or roll
back together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.registry.entities import AuditEvent
from vigil.registry.tables import AuditLogRow
from vigil.storage.sql import utcnow


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_name: str,
    model_name: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to ``session`` (committed with the change it describes)."""
    session.add(
        AuditLogRow(
            at=utcnow(),
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_name=entity_name,
            model_name=model_name,
            before=before,
            after=after,
        )
    )


def read_audit(
    session: Session, *, model_name: str | None = None, limit: int = 100
) -> list[AuditEvent]:
    """Audit events, newest first, optionally only those about one model."""
    query = select(AuditLogRow).order_by(AuditLogRow.id.desc()).limit(limit)
    if model_name is not None:
        query = query.where(AuditLogRow.model_name == model_name)
    return [
        AuditEvent(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            entity_type=row.entity_type,
            entity_name=row.entity_name,
            model_name=row.model_name,
            before=row.before,
            after=row.after,
        )
        for row in session.scalars(query)
    ]
