"""The model registry: versions, aliases, lineage, artifacts and the audit trail."""

from __future__ import annotations

from vigil.registry.entities import AliasEvent, AuditEvent, ModelVersion, RegisteredModel
from vigil.registry.registry import Registry

__all__ = ["AliasEvent", "AuditEvent", "ModelVersion", "RegisteredModel", "Registry"]
