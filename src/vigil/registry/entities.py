"""What the registry hands out: plain frozen records, detached from any database session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ModelVersion:
    """One immutable, registered version of a model."""

    name: str
    version: int
    sha256: str
    """Digest of the bundle directory (see :mod:`vigil.storage.tree`)."""
    size_bytes: int
    flavor: str
    signature: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    description: str | None
    created_at: datetime
    created_by: str
    lineage: dict[str, Any]
    """Where it came from: source file and digest, git commit, reference data digest,
    host, vigil version."""
    artifact_uri: str
    manifest: dict[str, Any]
    """The bundle's ``vigil.json`` as registered."""
    aliases: list[str] = field(default_factory=list)
    archived_at: datetime | None = None
    """When the version was archived (kept for the record; no alias may point at it)."""
    card: dict[str, str] = field(default_factory=dict)
    """What a person said about it for its model card: any of ``purpose``, ``owner``,
    ``intended_use``, ``limitations`` (see :data:`vigil.registry.CARD_FIELDS`)."""

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class RegisteredModel:
    """A named model with a summary of its versions and aliases."""

    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    version_count: int
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias. ``action`` is ``set``, ``rollback`` or ``delete``."""

    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class AliasState:
    """Where one alias points now."""

    name: str
    alias: str
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class DeletedModel:
    """What :meth:`~vigil.registry.Registry.delete_model` removed."""

    name: str
    versions: list[int]
    aliases: dict[str, int]
    """The aliases removed with it (only with ``force``)."""
