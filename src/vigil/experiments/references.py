"""Which live endpoints name a model: what the registry asks before it archives or deletes
a version or a model (see :mod:`vigil.registry._usage`; the composition root wires it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.errors import InvalidURIError
from vigil.experiments.tables import EndpointRow
from vigil.uri import parse_model_ref


def endpoint_references(session: Session, model: str) -> list[tuple[str, str]]:
    """``[(endpoint, variant model URI), ...]`` for every live endpoint with a variant
    naming ``model``, read in the caller's transaction. Endpoints are few (one row each),
    so they are read whole and matched here rather than through JSON operators that differ
    between SQLite and PostgreSQL."""
    found: list[tuple[str, str]] = []
    rows = session.execute(
        select(EndpointRow.name, EndpointRow.config).where(EndpointRow.deleted_at.is_(None))
    )
    for name, config in rows:
        for variant in (config or {}).get("variants", []):
            try:
                ref = parse_model_ref(str(variant.get("model", "")))
            except InvalidURIError:  # pragma: no cover - configs are validated on write
                continue
            if ref.name == model:
                found.append((name, str(ref)))
    return found
