"""The ``api_keys`` table: one row per key, holding its digest, never its secret.

The schema is created by the Alembic migration
``vigil/storage/migrations/versions/0002_api_keys.py``; keep the two in step (a test
compares them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from vigil.storage.sql import Base, utcnow


class ApiKeyRow(Base):
    """One API key. Revoked keys are kept (revoked_at set) so the audit trail can name them."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('read', 'predict', 'admin')", name="role"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """The key id, the ``<id>`` part of ``vk_<id>_<secret>``."""
    prefix: Mapped[str] = mapped_column(String(32))
    """The token's first characters, to recognise it (see :mod:`vigil.auth.tokens`)."""
    secret_hash: Mapped[str] = mapped_column(String(64))
    """Hex SHA-256 of the whole token."""
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(256))
