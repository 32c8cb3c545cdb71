"""The audit trail: one row per change, written in the same transaction as the change.

Any part of vigil that changes shared state (the registry's aliases and versions, API
keys, endpoints and experiments, canary steps) records it here with :func:`record_audit`,
so the trail and the change commit or roll back together; :func:`read_audit` reads it
back, newest first. The table is created by the first migration
(``storage/migrations/versions/0001_registry.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vigil.names import NAME_LENGTH
from vigil.storage.sql import Base, utcnow


class AuditLogRow(Base):
    """Who changed what, when, with the state before and after (any part of vigil)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_name: Mapped[str] = mapped_column(String(512))
    # The model the change concerns, when there is one: lets audit(name=...) use an index.
    model_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


@dataclass(frozen=True)
class AuditEvent:
    """One audited change: who did what to which entity, with the state before and after."""

    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_name: str
    model_name: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


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
