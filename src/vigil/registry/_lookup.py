"""Finding registry rows, with not-found errors that say what does exist."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vigil.errors import AliasNotFoundError, ModelNotFoundError, VersionNotFoundError
from vigil.names import check_model_name
from vigil.registry.entities import ModelVersion
from vigil.registry.tables import AliasRow, ModelVersionRow, RegisteredModelRow

_LISTED = 20


def listing(items: list[str]) -> str:
    """``a, b, c`` for an error message, cut short after a screenful."""
    shown = ", ".join(items[:_LISTED])
    return shown + (f" (and {len(items) - _LISTED} more)" if len(items) > _LISTED else "")


def newest_version(session: Session, model_id: int) -> int | None:
    """The highest version number of a model (``None`` if it has none)."""
    return session.scalar(
        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model_id)
    )


def model_row(session: Session, name: str, *, lock: bool = False) -> RegisteredModelRow:
    """The model's row (locked for update when ``lock``); ``ModelNotFoundError`` if none."""
    query = select(RegisteredModelRow).where(RegisteredModelRow.name == name)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        check_model_name(name)
        names = list(session.scalars(select(RegisteredModelRow.name).order_by("name")))
        known = f"registered models: {listing(names)}" if names else "no models are registered yet"
        raise ModelNotFoundError(f"no model named {name!r}; {known}", detail={"model": name})
    return row


def aliases_of(session: Session, model_id: int) -> dict[str, int]:
    rows = session.execute(
        select(AliasRow.alias, AliasRow.version)
        .where(AliasRow.model_id == model_id)
        .order_by(AliasRow.alias)
    )
    return {alias: version for alias, version in rows}


def version_row(session: Session, model: RegisteredModelRow, version: int) -> ModelVersionRow:
    row = session.scalars(
        select(ModelVersionRow).where(
            ModelVersionRow.model_id == model.id, ModelVersionRow.version == version
        )
    ).one_or_none()
    if row is None:
        newest = session.scalar(
            select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model.id)
        )
        raise VersionNotFoundError(
            f"model {model.name!r} has no version {version}; it has versions 1..{newest}",
            detail={"model": model.name, "version": version},
        )
    return row


def to_version(row: ModelVersionRow, name: str, aliases: list[str]) -> ModelVersion:
    """A detached :class:`ModelVersion` from its row."""
    return ModelVersion(
        name=name,
        version=row.version,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        flavor=row.flavor,
        signature=dict(row.signature),
        metrics=dict(row.metrics),
        tags=dict(row.tags),
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        lineage=dict(row.lineage),
        artifact_uri=row.artifact_uri,
        manifest=dict(row.manifest),
        aliases=sorted(aliases),
        archived_at=row.archived_at,
        card=dict(row.card or {}),
    )


def version_of(session: Session, model: RegisteredModelRow, row: ModelVersionRow) -> ModelVersion:
    aliases = [a for a, v in aliases_of(session, model.id).items() if v == row.version]
    return to_version(row, model.name, aliases)


def alias_row(session: Session, model: RegisteredModelRow, alias: str) -> AliasRow:
    row = session.scalars(
        select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.alias == alias)
    ).one_or_none()
    if row is None:
        aliases = sorted(aliases_of(session, model.id))
        known = f"aliases: {listing(aliases)}" if aliases else "it has no aliases"
        raise AliasNotFoundError(
            f"model {model.name!r} has no alias {alias!r}; {known}",
            detail={"model": model.name, "alias": alias},
        )
    return row
