"""The audit page: the hash-chained audit log, filtered by model, actor, action and time,
newest first, a page at a time (keyset pagination on the event id, so a page costs the
same however deep it is)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from vigil.audit import AuditLogRow
from vigil.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from vigil.storage.sql import Database

FILTERS = ("model", "actor", "action", "since", "until")
_MAX_FILTER = 256


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    model: str | None
    before: object
    after: object


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    filters: dict[str, str]
    next_before: int | None
    """The ``before`` of the next (older) page, ``None`` on the last."""


def _time(text: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"{field!r} must be a date or time such as 2026-12-06 or 2026-12-06T14:30, "
            f"got {text[:40]!r}",
            detail={"field": field, "expected": "ISO 8601 date or time", "got": text[:40]},
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def audit_page(db: Database, query: Mapping[str, str], *, size: int) -> AuditPage:
    """One page of at most ``size`` events matching ``query``'s filters (empty ones are
    ignored), older than its ``before`` id when given."""
    filters = {k: query[k].strip()[:_MAX_FILTER] for k in FILTERS if query.get(k, "").strip()}
    stmt = select(AuditLogRow).order_by(AuditLogRow.id.desc()).limit(size + 1)
    if "model" in filters:
        stmt = stmt.where(AuditLogRow.model_name == filters["model"])
    if "actor" in filters:
        stmt = stmt.where(AuditLogRow.actor == filters["actor"])
    if "action" in filters:
        stmt = stmt.where(AuditLogRow.action == filters["action"])
    if "since" in filters:
        stmt = stmt.where(AuditLogRow.at >= _time(filters["since"], "since"))
    if "until" in filters:
        stmt = stmt.where(AuditLogRow.at < _time(filters["until"], "until"))
    before = query.get("before", "")
    if before:
        if not before.isdigit() or len(before) > 18:
            raise ValidationError(
                f"'before' must be an event id, got {before[:40]!r}",
                detail={"field": "before", "expected": "integer", "got": before[:40]},
            )
        stmt = stmt.where(AuditLogRow.id < int(before))
    with db.session() as session:
        found = [
            AuditRow(
                r.id,
                r.at,
                r.actor,
                r.action,
                f"{r.entity_type} {r.entity_name}",
                r.model_name,
                r.before,
                r.after,
            )
            for r in session.scalars(stmt)
        ]
    more = len(found) > size
    rows = found[:size]
    return AuditPage(rows, filters, rows[-1].id if more and rows else None)
