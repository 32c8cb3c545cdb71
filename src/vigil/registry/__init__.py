"""The model registry: immutable versions, aliases, lineage, rollback and their artifacts."""

from __future__ import annotations

from vigil.audit import AuditEvent
from vigil.registry._metadata import CARD_FIELDS, check_card
from vigil.registry.entities import AliasEvent, ModelVersion, RegisteredModel
from vigil.registry.registry import Registry

__all__ = [
    "CARD_FIELDS",
    "AliasEvent",
    "AuditEvent",
    "ModelVersion",
    "RegisteredModel",
    "Registry",
    "check_card",
]
