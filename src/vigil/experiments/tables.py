"""The ``endpoints`` table: one row per experiment endpoint, its configuration as JSON.

The schema is created by the Alembic migration
``vigil/storage/migrations/versions/0004_endpoints.py``; keep the two in step (a test
compares them).

A deleted endpoint keeps its row (``deleted_at`` set) so that its ``revision`` never goes
back: a worker that cached revision 7 of ``checkout`` and then sees ``checkout`` at
revision 9 knows it changed, even if it was deleted and created again in between.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vigil.names import NAME_LENGTH
from vigil.storage.sql import Base, utcnow


class EndpointRow(Base):
    """One endpoint: its validated configuration and who changed it last, when."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    config: Mapped[dict[str, Any]]
    """:class:`~vigil.experiments.config.EndpointConfig` as JSON."""
    revision: Mapped[int] = mapped_column(Integer)
    """Goes up by one on every change (create, update, delete)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(256))
    deleted_at: Mapped[datetime | None]
