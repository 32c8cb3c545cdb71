"""The ``console_sessions`` table: one row per signed-in browser, holding its digest.

The schema is created by the Alembic migration
``vigil/storage/migrations/versions/0011_console_sessions.py``; keep the two in step (a
test compares them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from vigil.storage.sql import Base, utcnow


class ConsoleSessionRow(Base):
    """One console session. The browser holds its token; the table holds the token's
    SHA-256 only, so a copy of the database signs nobody in."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_key_id", "key_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """Hex SHA-256 of the session token the cookie carries."""
    key_id: Mapped[str] = mapped_column(String(32), ForeignKey("api_keys.id", ondelete="CASCADE"))
    """The API key signed in with: its role is the session's, its revocation ends it."""
    csrf: Mapped[str] = mapped_column(String(64))
    """The token every state-changing form of this session carries."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
