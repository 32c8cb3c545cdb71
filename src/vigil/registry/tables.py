"""The registry's tables: models, versions, aliases and alias history.

Every timestamp is UTC. The schema itself is created by the Alembic migrations
``vigil/storage/migrations/versions/0001_registry.py``, ``0006_registry_housekeeping.py`` and
``0010_version_card.py``;
keep them in step (a test compares them).

Versions are immutable: an ORM guard refuses any change to what identifies a version's
model (artifact digest, signature, flavor, manifest, number); only ``description``,
``tags``, ``card`` and ``archived_at`` may change, and the registry audits such edits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from vigil.errors import ImmutableVersionError
from vigil.names import NAME_LENGTH
from vigil.storage.sql import Base, JSONType, utcnow


class RegisteredModelRow(Base):
    """One named model; its versions hang off it."""

    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_version: Mapped[int | None] = mapped_column(Integer)
    """The highest version number ever given out (migration 0006): a deleted version's
    number is never reused. ``None`` on rows older than that migration."""


class ModelVersionRow(Base):
    """One immutable version of a model: an artifact (by digest) and what describes it."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        Index("ix_model_versions_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    flavor: Mapped[str] = mapped_column(String(64))
    signature: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256))
    lineage: Mapped[dict[str, Any]]
    artifact_uri: Mapped[str] = mapped_column(Text)
    manifest: Mapped[dict[str, Any]]
    archived_at: Mapped[datetime | None]
    """When the version was archived: kept for the record, but no alias may point at it."""
    card: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """What a person says about it for its model card (migration 0010): purpose, owner,
    intended use, limitations. ``None`` on versions registered before that migration."""


IMMUTABLE_VERSION_FIELDS = (
    "model_id",
    "version",
    "sha256",
    "size_bytes",
    "flavor",
    "signature",
    "metrics",
    "created_at",
    "created_by",
    "lineage",
    "artifact_uri",
    "manifest",
)


@event.listens_for(ModelVersionRow, "before_update")
def _refuse_changes_to_a_version(
    _mapper: Mapper[Any], _connection: Any, target: ModelVersionRow
) -> None:
    state = inspect(target)
    changed = [f for f in IMMUTABLE_VERSION_FIELDS if state.attrs[f].history.has_changes()]
    if changed:
        raise ImmutableVersionError(
            f"model versions are immutable (tried to change {', '.join(changed)}); "
            "register a new version instead",
            detail={"fields": changed},
        )


class AliasRow(Base):
    """Where an alias (``production``, ``staging``...) points now."""

    __tablename__ = "aliases"
    __table_args__ = (
        UniqueConstraint("model_id", "alias"),
        # An alias can only point at a version that exists.
        ForeignKeyConstraint(
            ["model_id", "version"], ["model_versions.model_id", "model_versions.version"]
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    alias: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasEventRow(Base):
    """One move of an alias: ``set``, ``rollback`` or ``delete`` (the full history)."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_model_alias", "model_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    alias: Mapped[str] = mapped_column(String(NAME_LENGTH))
    action: Mapped[str] = mapped_column(String(16))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(256))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)
