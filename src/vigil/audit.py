"""The audit trail: one row per change, written in the same transaction as the change,
hash-chained so that a reviewer can prove nothing was edited, inserted or deleted.

Any part of vigil that changes shared state (the registry's aliases and versions, API
keys, endpoints and experiments, canary steps) records it here with :func:`record_audit`,
so the trail and the change commit or roll back together; :func:`read_audit` reads it
back, newest first. The table is created by the first migration
(``storage/migrations/versions/0001_registry.py``); the chain columns by
``0009_audit_chain.py``, which chained the rows already there.

Each row carries ``prev_digest``, the digest of the row before it, and ``digest``, the
SHA-256 of the canonical JSON of its fields (``at``, ``actor``, ``action``, ``entity``,
``model``, ``before``, ``after``) and ``prev`` (:func:`vigil.hashchain.chain_digest`).
Rows are chained when their transaction commits, and appending is serialised:
``pg_advisory_xact_lock`` on PostgreSQL, the write lock on SQLite (held by a ``write=True``
session from its start, and by any session from its first write), so two writers never
chain onto the same row. :func:`verify_audit` walks the chain
and names the first broken row; :func:`audit_head` gives the last row's id and digest,
which, exported and given back to :func:`verify_audit`, also proves the tail was not cut.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Integer, String, event, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from vigil.hashchain import GENESIS, canonical_time, chain_digest
from vigil.names import NAME_LENGTH
from vigil.storage.sql import Base, utcnow

# Any fixed 64-bit number works; it only has to be the same in every vigil process.
_PG_AUDIT_LOCK = zlib.crc32(b"vigil-audit-chain")


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
    # The hash chain: the digest of the row before this one, and this row's own.
    prev_digest: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), index=True)


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
    prev_digest: str = GENESIS
    digest: str = GENESIS


@dataclass(frozen=True)
class AuditHead:
    """The last entry of the chain: export it, and :func:`verify_audit` checks against it
    later that nothing up to it changed and that the log was not cut short of it."""

    id: int
    digest: str


Problem = Literal["edited", "inserted", "deleted", "truncated", "rewritten"]


@dataclass(frozen=True)
class AuditVerification:
    """What :func:`verify_audit` found: ``ok``, or the first broken entry and why."""

    ok: bool
    entries: int
    """How many entries were checked (up to and including the first broken one)."""
    head: AuditHead | None
    """The last entry of the log when it verified (``None`` when it is empty or broken)."""
    broken_id: int | None = None
    problem: Problem | None = None
    reason: str | None = None


def entry_digest(
    prev: str,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_name: str,
    model_name: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> str:
    """The digest of one audit entry chained onto ``prev`` (what ``digest`` holds)."""
    return chain_digest(
        prev,
        {
            "at": canonical_time(at),
            "actor": actor,
            "action": action,
            "entity": [entity_type, entity_name],
            "model": model_name,
            "before": before,
            "after": after,
        },
    )


def _row_digest(row: AuditLogRow) -> str:
    return entry_digest(
        row.prev_digest,
        at=row.at,
        actor=row.actor,
        action=row.action,
        entity_type=row.entity_type,
        entity_name=row.entity_name,
        model_name=row.model_name,
        before=row.before,
        after=row.after,
    )


def _lock_chain(session: Session) -> None:
    """Serialise appends until ``session``'s transaction ends (see the module docstring)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_AUDIT_LOCK})


def _last(session: Session) -> AuditLogRow | None:
    return session.scalars(select(AuditLogRow).order_by(AuditLogRow.id.desc()).limit(1)).first()


_PENDING = "vigil.audit.pending"


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
    """Add an audit row to ``session``, committed with the change it describes.

    The row is chained when the transaction commits (:func:`_chain_pending`): the chain's
    lock is then the last lock the transaction takes, held only for its commit, so a
    transaction that audits and then changes more rows never waits for a row while
    holding it (no deadlock with one that changed that row and waits to audit).
    """
    pending: list[dict[str, Any]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "before_commit", _chain_pending)
        event.listen(session, "after_soft_rollback", _forget_pending)
    pending.append(
        {
            "at": utcnow(),
            "actor": actor,
            "action": action,
            "entity_type": entity_type,
            "entity_name": entity_name,
            "model_name": model_name,
            "before": before,
            "after": after,
        }
    )


def _chain_pending(session: Session) -> None:
    """Chain this transaction's audit rows onto the last row, under the chain's lock."""
    pending: list[dict[str, Any]] = session.info.get(_PENDING) or []
    if not pending:
        return
    _lock_chain(session)
    # Flushes what the transaction changed first, so that on SQLite the write lock is
    # already held when the last row is read.
    session.flush()
    last = _last(session)
    prev = last.digest if last is not None else GENESIS
    for fields in pending:
        row = AuditLogRow(**fields, prev_digest=prev)
        row.digest = prev = _row_digest(row)
        session.add(row)
    pending.clear()
    session.flush()  # ids now, under the lock: ids follow the chain


def _forget_pending(session: Session, _previous: Any) -> None:
    pending: list[dict[str, Any]] | None = session.info.get(_PENDING)
    if pending is not None and not session.in_transaction():
        pending.clear()


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
            prev_digest=row.prev_digest,
            digest=row.digest,
        )
        for row in session.scalars(query)
    ]


def audit_head(session: Session) -> AuditHead | None:
    """The last entry's id and digest (``None`` when the log is empty)."""
    last = _last(session)
    return None if last is None else AuditHead(id=last.id, digest=last.digest)


def verify_audit(
    session: Session, *, head: AuditHead | str | None = None, batch: int = 1000
) -> AuditVerification:
    """Walk the chain in id order and report the first entry that breaks it.

    An entry whose digest does not match its content was ``edited``; one whose ``prev``
    skips the entry before it means that entry was ``inserted``; one whose ``prev`` matches
    nothing before it means an entry was ``deleted`` there (or the one before rewritten
    together with its digest). ``head`` (an exported :class:`AuditHead`, or a bare
    digest) must still be in the chain: otherwise the log was ``truncated`` below it or
    ``rewritten`` at it. Reads ``batch`` rows at a time; memory stays constant.
    """
    prev_prev: str | None = None
    prev = GENESIS
    prev_id: int | None = None
    entries = 0
    head_seen = False
    rows = session.execute(select(AuditLogRow).order_by(AuditLogRow.id)).yield_per(batch)
    for row in rows.scalars():
        entries += 1
        if row.prev_digest != prev:
            if prev_id is not None and row.prev_digest == prev_prev:
                return _broken(
                    entries - 1,
                    prev_id,
                    "inserted",
                    (
                        f"entry {prev_id} was inserted: entry {row.id} chains onto the entry "
                        "before it"
                    ),
                )
            after = f"entry {prev_id}" if prev_id is not None else "the start of the log"
            return _broken(
                entries,
                row.id,
                "deleted",
                (
                    f"entry {row.id} does not chain onto {after}: an entry between them was "
                    f"deleted, or {after} was rewritten together with its digest"
                ),
            )
        if _row_digest(row) != row.digest:
            return _broken(
                entries,
                row.id,
                "edited",
                (f"entry {row.id} was edited: its content does not match its digest"),
            )
        if (isinstance(head, AuditHead) and row.id == head.id) or head == row.digest:
            if isinstance(head, AuditHead) and row.digest != head.digest:
                return _broken(
                    entries,
                    row.id,
                    "rewritten",
                    (
                        f"entry {row.id} is not the exported head: its digest is {row.digest}, "
                        f"the head says {head.digest}; the log was rewritten up to it"
                    ),
                )
            head_seen = True
        prev_prev, prev, prev_id = prev, row.digest, row.id
        session.expunge(row)
    last = None if prev_id is None else AuditHead(id=prev_id, digest=prev)
    if head is not None and not head_seen:
        wanted = f"entry {head.id}" if isinstance(head, AuditHead) else f"digest {head}"
        end = f"entry {last.id}" if last is not None else "no entry (it is empty)"
        return _broken(
            entries,
            head.id if isinstance(head, AuditHead) else None,
            "truncated",
            (
                f"the exported head ({wanted}) is not in the log, which ends at {end}: the log "
                "was truncated, or rewritten, before it"
            ),
        )
    return AuditVerification(ok=True, entries=entries, head=last)


def _broken(
    entries: int, broken_id: int | None, problem: Problem, reason: str
) -> AuditVerification:
    return AuditVerification(
        ok=False, entries=entries, head=None, broken_id=broken_id, problem=problem, reason=reason
    )
