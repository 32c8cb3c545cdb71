"""The model registry: numbered immutable versions, movable aliases, a full audit trail.

A version is a bundle directory stored by digest in the :class:`ArtifactStore` plus a row
in the SQL database. Registration numbers versions 1, 2, 3... per model with no gaps or
duplicates even when several processes register at once: the model's row is locked
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) before the next
number is taken. If anything fails, the transaction rolls back and the uploaded bundle is
deleted unless another version already uses the same content.

That clean-up is safe against a registration of the same content running at the same
moment (which found the tree already stored and uploaded nothing): both the decision to
delete (no version row uses the digest) and the delete itself happen inside one
transaction holding the digest's lock (:meth:`~vigil.storage.sql.Database.lock`), and a
registration checks, under the same lock and in the transaction that inserts its row, that
the tree is still complete, storing it again if it was collected meanwhile. So a version
row is only ever committed while its tree is whole, and a tree is only deleted while no
row can be committed against it.

Versions are immutable: their artifact, signature, flavor, metrics and lineage never
change. Their ``description`` and ``tags`` may be edited (:meth:`Registry.update_version`),
and every edit is audited. Aliases (``production``, ``staging``...) move freely; each move
is kept in the alias history, and :meth:`Registry.rollback` walks that history back
(see :mod:`vigil.registry.aliases`).

>>> import json, pathlib, tempfile
>>> from vigil.storage import ArtifactStore, Database
>>> home = pathlib.Path(tempfile.mkdtemp())
>>> registry = Registry(Database("sqlite://"), ArtifactStore(str(home / "store")), actor="ada")
>>> bundle = home / "bundle"; bundle.mkdir()
>>> manifest = {"flavor": "sklearn", "model_file": "model.bin", "signature": {"inputs": []},
...             "source": {"kind": "file", "name": "model.bin"}}
>>> _ = (bundle / "vigil.json").write_text(json.dumps(manifest))
>>> registry.register_version("churn", bundle, alias="production").version
1
>>> _ = (bundle / "model.bin").write_bytes(b"v2")
>>> registry.register_version("churn", bundle, alias="production").version
2
>>> registry.rollback("churn", "production")
(2, 1)
>>> registry.resolve("models:/churn@production").version
1
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.audit import AuditEvent, read_audit, record_audit
from vigil.bundle.manifest import read_manifest
from vigil.errors import (
    AliasNotFoundError,
    ConflictError,
)
from vigil.names import check_alias, check_model_name
from vigil.registry._lookup import (
    alias_row,
    aliases_of,
    listing,
    model_row,
    newest_version,
    to_version,
    version_of,
    version_row,
)
from vigil.registry._metadata import check_card, check_metrics, check_tags
from vigil.registry._usage import EndpointReferences, Usage, usage
from vigil.registry.aliases import alias_stack, rollback_target
from vigil.registry.entities import (
    AliasEvent,
    AliasState,
    DeletedModel,
    ModelVersion,
    RegisteredModel,
)
from vigil.registry.lineage import collect_lineage
from vigil.registry.tables import (
    AliasEventRow,
    AliasRow,
    ModelVersionRow,
    RegisteredModelRow,
)
from vigil.storage.sql import utcnow
from vigil.storage.tree import list_tree, tree_digest
from vigil.uri import ModelRef, parse_model_ref

__all__ = [
    "AliasEvent",
    "AliasState",
    "AuditEvent",
    "DeletedModel",
    "ModelVersion",
    "RegisteredModel",
    "Registry",
]

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore, StoredTree
    from vigil.storage.sql import Database

# Locks make collisions impossible; the retry only guards against a database that
# ignores them (it costs nothing when there is no collision).
_REGISTER_ATTEMPTS = 5
_ARTIFACT_LOCK = "artifact"
"""Lock kind (see :meth:`Database.lock`) serialising what touches one artifact digest."""


class _ArtifactCollected(Exception):
    """The tree a registration stored was deleted before its row was committed."""


class Registry:
    """Register, find, alias and roll back model versions.

    Parameters
    ----------
    db:
        The metadata database (its schema is migrated on first use).
    store:
        Where bundle directories are kept, by digest.
    actor:
        Who is acting; recorded in the audit log and as ``created_by``.
    endpoint_references:
        Finds the experiment endpoints whose variants name a model (given by the
        composition root; see :mod:`vigil.registry._usage`), so that a version or model an
        endpoint serves is never archived or deleted.
    """

    def __init__(
        self,
        db: Database,
        store: ArtifactStore,
        *,
        actor: str,
        endpoint_references: EndpointReferences | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.actor = actor
        self.endpoint_references = endpoint_references

    def acting_as(self, actor: str) -> Registry:
        """This registry (same database and store) recording ``actor`` as who acts, e.g.
        the API key behind an admin request or the canary controller."""
        return Registry(
            self.db, self.store, actor=actor, endpoint_references=self.endpoint_references
        )

    def __repr__(self) -> str:
        return f"Registry({self.db!r}, {self.store!r}, actor={self.actor!r})"

    # -- registering ------------------------------------------------------------------

    def register_version(
        self,
        name: str,
        bundle_dir: Path | str,
        *,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        lineage: dict[str, Any] | None = None,
        alias: str | None = None,
        card: dict[str, str] | None = None,
    ) -> ModelVersion:
        """Store a bundle directory as the next version of model ``name``.

        Creates the model on its first version. ``alias``, when given, is moved to the new
        version in the same transaction. ``card`` holds the facts of its model card
        (:data:`vigil.registry.CARD_FIELDS`). Nothing is left behind if
        anything fails.
        """
        check_model_name(name)
        if alias is not None:
            check_alias(alias)
        tags = check_tags(tags)
        metrics = check_metrics(metrics)
        checked_card = check_card(card)
        manifest = read_manifest(bundle_dir).model_dump(mode="json")
        full_lineage = collect_lineage(lineage, manifest)
        stored = self.store.put_dir(bundle_dir)
        try:
            for attempt in range(1, _REGISTER_ATTEMPTS + 1):
                try:
                    with self.db.session(write=True) as session:
                        self.db.lock(session, _ARTIFACT_LOCK, stored.sha256)
                        if not self.store.has_complete(stored.sha256):
                            raise _ArtifactCollected
                        return self._insert_version(
                            session,
                            name,
                            stored,
                            manifest,
                            description=description,
                            tags=tags,
                            metrics=metrics,
                            lineage=full_lineage,
                            alias=alias,
                            card=checked_card,
                        )
                except IntegrityError:
                    if attempt == _REGISTER_ATTEMPTS:
                        raise ConflictError(
                            f"could not number a new version of {name!r}: too many concurrent "
                            "registrations; try again"
                        ) from None
                except _ArtifactCollected:
                    # A failed registration of the same content removed the tree after this
                    # one found it stored: store it again (outside the lock) and retry.
                    if attempt == _REGISTER_ATTEMPTS:
                        raise ConflictError(
                            f"the bundle of {name!r} was removed from the artifact store "
                            f"{_REGISTER_ATTEMPTS} times while being registered; try again"
                        ) from None
                    stored = self.store.put_dir(bundle_dir)
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            self._discard_unreferenced(stored.sha256)
            raise

    def _insert_version(
        self,
        session: Session,
        name: str,
        stored: StoredTree,
        manifest: dict[str, Any],
        *,
        description: str | None,
        tags: dict[str, str],
        metrics: dict[str, float],
        lineage: dict[str, Any],
        alias: str | None,
        card: dict[str, str],
    ) -> ModelVersion:
        """Number and insert the version under the model's lock, with its audit rows."""
        model, created = self._lock_or_create_model(session, name)
        # A deleted version's number is never given out again (last_version remembers it).
        number = max(newest_version(session, model.id) or 0, model.last_version or 0) + 1
        model.last_version = number
        row = ModelVersionRow(
            model_id=model.id,
            version=number,
            sha256=stored.sha256,
            size_bytes=stored.size,
            flavor=manifest["flavor"],
            signature=manifest["signature"],
            metrics=metrics,
            tags=tags,
            description=description,
            created_at=utcnow(),
            created_by=self.actor,
            lineage=lineage,
            artifact_uri=stored.uri,
            manifest=manifest,
            card=card or None,
        )
        session.add(row)
        session.flush()
        if created:
            self._audit(session, "create_model", "model", name, name, None, {"name": name})
        self._audit(
            session,
            "register_version",
            "model_version",
            f"{name}/{number}",
            name,
            None,
            {"version": number, "sha256": stored.sha256, "flavor": row.flavor},
        )
        if alias is not None:
            self._move_alias(session, model, alias, number, "set", None)
        model.updated_at = utcnow()
        return to_version(row, name, [alias] if alias else [])

    def _discard_unreferenced(self, sha: str) -> None:
        """Delete the tree ``sha`` if no version uses it, deciding and deleting under the
        digest's lock (see the module docstring). Best effort: a tree left behind only
        takes space."""
        try:
            with self.db.session(write=True) as session:
                self.db.lock(session, _ARTIFACT_LOCK, sha)
                used = session.scalar(select(func.count()).where(ModelVersionRow.sha256 == sha))
                if not used:
                    self.store.delete(sha)
        except Exception:  # noqa: S110 - the registration error matters more than cleanup
            pass

    def _lock_or_create_model(self, session: Session, name: str) -> tuple[RegisteredModelRow, bool]:
        now = utcnow()
        result = session.execute(
            self.db.insert(RegisteredModelRow)
            .values(name=name, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(RegisteredModelRow.id)
        )
        created = result.scalar_one_or_none() is not None
        return model_row(session, name, lock=True), created

    # -- reading ----------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        """One model with its newest version number, version count and aliases."""
        with self.db.session() as session:
            model = model_row(session, name)
            newest, count = session.execute(
                select(func.max(ModelVersionRow.version), func.count()).where(
                    ModelVersionRow.model_id == model.id
                )
            ).one()
            return RegisteredModel(
                name=model.name,
                description=model.description,
                created_at=model.created_at,
                updated_at=model.updated_at,
                latest_version=newest,
                version_count=count,
                aliases=aliases_of(session, model.id),
            )

    def list_models(self) -> list[RegisteredModel]:
        """Every model, by name, with its newest version, version count and aliases."""
        with self.db.session() as session:
            models = list(
                session.scalars(select(RegisteredModelRow).order_by(RegisteredModelRow.name))
            )
            stats = {
                model_id: (newest, count)
                for model_id, newest, count in session.execute(
                    select(
                        ModelVersionRow.model_id,
                        func.max(ModelVersionRow.version),
                        func.count(),
                    ).group_by(ModelVersionRow.model_id)
                )
            }
            aliases: dict[int, dict[str, int]] = {}
            for model_id, alias, version in session.execute(
                select(AliasRow.model_id, AliasRow.alias, AliasRow.version).order_by(AliasRow.alias)
            ):
                aliases.setdefault(model_id, {})[alias] = version
            return [
                RegisteredModel(
                    name=m.name,
                    description=m.description,
                    created_at=m.created_at,
                    updated_at=m.updated_at,
                    latest_version=stats.get(m.id, (None, 0))[0],
                    version_count=stats.get(m.id, (None, 0))[1],
                    aliases=aliases.get(m.id, {}),
                )
                for m in models
            ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        with self.db.session() as session:
            model = model_row(session, name)
            by_version: dict[int, list[str]] = {}
            for alias, version in aliases_of(session, model.id).items():
                by_version.setdefault(version, []).append(alias)
            rows = session.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id)
                .order_by(ModelVersionRow.version)
            )
            return [to_version(r, model.name, by_version.get(r.version, [])) for r in rows]

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version by number."""
        with self.db.session() as session:
            model = model_row(session, name)
            return version_of(session, model, version_row(session, model, version))

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The version a reference names: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``
        or ``models:/NAME/latest`` (bare ``NAME``, ``NAME@ALIAS``, ``NAME/3`` work too)."""
        if isinstance(ref, str):
            ref = parse_model_ref(ref)
        with self.db.session() as session:
            model = model_row(session, ref.name)
            if ref.version is not None:
                number = ref.version
            elif ref.alias is not None:
                aliases = aliases_of(session, model.id)
                if ref.alias not in aliases:
                    known = (
                        f"aliases: {listing(sorted(aliases))}"
                        if aliases
                        else "it has no aliases yet; set one with `vigil alias set`"
                    )
                    raise AliasNotFoundError(
                        f"model {model.name!r} has no alias {ref.alias!r}; {known}",
                        detail={"model": model.name, "alias": ref.alias},
                    )
                number = aliases[ref.alias]
            else:
                number = _newest_in_service(session, model.id) or 0
            return version_of(session, model, version_row(session, model, number))

    def fetch_bundle(self, mv: ModelVersion, cache_dir: Path | str) -> Path:
        """A local, verified copy of a version's bundle directory (see
        :func:`fetch_bundle`)."""
        return fetch_bundle(self.store, mv.sha256, cache_dir)

    # -- aliases ----------------------------------------------------------------------

    def _move_alias(
        self,
        session: Session,
        model: RegisteredModelRow,
        alias: str,
        to_version: int,
        action: str,
        reason: str | None,
    ) -> int | None:
        current = session.scalars(
            select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.alias == alias)
        ).one_or_none()
        from_version = current.version if current is not None else None
        if from_version == to_version:
            return from_version
        target = session.execute(
            select(ModelVersionRow.archived_at).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.version == to_version
            )
        ).one_or_none()
        if target is None:  # only a rollback can name it: set_alias looked the version up
            raise ConflictError(
                f"cannot move {model.name}@{alias} back to version {to_version}: that version "
                f"was deleted; point the alias explicitly (vigil alias set {model.name} {alias} "
                "VERSION)",
                detail={"model": model.name, "alias": alias, "version": to_version},
            )
        if target.archived_at is not None:
            raise ConflictError(
                f"version {to_version} of {model.name!r} is archived, so no alias may point at "
                f"it; restore it first (vigil model unarchive {model.name} {to_version})",
                detail={"model": model.name, "alias": alias, "version": to_version},
            )
        now = utcnow()
        if current is None:
            session.add(
                AliasRow(model_id=model.id, alias=alias, version=to_version, updated_at=now)
            )
        else:
            current.version = to_version
            current.updated_at = now
        session.add(
            AliasEventRow(
                model_id=model.id,
                alias=alias,
                action=action,
                from_version=from_version,
                to_version=to_version,
                actor=self.actor,
                at=now,
                reason=reason,
            )
        )
        self._audit(
            session,
            "set_alias" if action == "set" else action,
            "alias",
            f"{model.name}@{alias}",
            model.name,
            None if from_version is None else {"version": from_version},
            {"version": to_version, **({"reason": reason} if reason else {})},
        )
        model.updated_at = now
        return from_version

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str | None = None
    ) -> ModelVersion:
        """Point ``alias`` at ``version`` (creating the alias if new); returns that version.

        Setting an alias to where it already points changes nothing and records nothing.
        """
        check_alias(alias)
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            row = version_row(session, model, version)
            self._move_alias(session, model, alias, version, "set", reason)
            return version_of(session, model, row)

    def delete_alias(self, name: str, alias: str, *, reason: str | None = None) -> int:
        """Remove an alias; returns the version it pointed to. Its history is kept."""
        check_alias(alias)
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            current = alias_row(session, model, alias)
            version = current.version
            session.delete(current)
            now = utcnow()
            session.add(
                AliasEventRow(
                    model_id=model.id,
                    alias=alias,
                    action="delete",
                    from_version=version,
                    to_version=None,
                    actor=self.actor,
                    at=now,
                    reason=reason,
                )
            )
            self._audit(
                session,
                "delete_alias",
                "alias",
                f"{name}@{alias}",
                name,
                {"version": version},
                None,
            )
            model.updated_at = now
            return version

    def rollback(
        self, name: str, alias: str = "production", *, reason: str | None = None
    ) -> tuple[int, int]:
        """Move ``alias`` back to where it pointed before its last move.

        Returns ``(from_version, to_version)``. Repeated rollbacks keep walking back the
        history (see :mod:`vigil.registry.aliases`); each is recorded as its own event.
        Raises :class:`~vigil.errors.ConflictError` when there is nothing earlier.
        """
        check_alias(alias)
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            current = alias_row(session, model, alias)
            events = session.execute(
                select(AliasEventRow.action, AliasEventRow.to_version)
                .where(AliasEventRow.model_id == model.id, AliasEventRow.alias == alias)
                .order_by(AliasEventRow.id)
            )
            history = [(a, v) for a, v in events]
            target = rollback_target(alias_stack(history))
            if target is None:
                raise ConflictError(
                    _nothing_to_roll_back(name, alias, current.version, history),
                    detail={"model": name, "alias": alias, "version": current.version},
                )
            from_version = current.version
            self._move_alias(session, model, alias, target, "rollback", reason)
            return from_version, target

    def alias_history(self, name: str, alias: str, limit: int | None = None) -> list[AliasEvent]:
        """Every move of an alias (the newest ``limit`` when given), newest first (empty if
        it never existed)."""
        check_alias(alias)
        with self.db.session() as session:
            model = model_row(session, name)
            rows = session.scalars(
                select(AliasEventRow)
                .where(AliasEventRow.model_id == model.id, AliasEventRow.alias == alias)
                .order_by(AliasEventRow.id.desc())
                .limit(limit)
            )
            return [
                AliasEvent(
                    name=model.name,
                    alias=r.alias,
                    action=r.action,
                    from_version=r.from_version,
                    to_version=r.to_version,
                    actor=r.actor,
                    at=r.at,
                    reason=r.reason,
                )
                for r in rows
            ]

    def alias_table(self) -> dict[tuple[str, str], int]:
        """``{(model, alias): version}`` for every alias: one cheap query, for polling."""
        with self.db.session() as session:
            rows = session.execute(
                select(RegisteredModelRow.name, AliasRow.alias, AliasRow.version).join(
                    RegisteredModelRow, RegisteredModelRow.id == AliasRow.model_id
                )
            )
            return {(name, alias): version for name, alias, version in rows}

    # -- housekeeping -----------------------------------------------------------------

    def list_aliases(self, name: str | None = None) -> list[AliasState]:
        """Every alias (of model ``name`` only, when given), by model and alias name."""
        with self.db.session() as session:
            query = (
                select(
                    RegisteredModelRow.name, AliasRow.alias, AliasRow.version, AliasRow.updated_at
                )
                .join(RegisteredModelRow, RegisteredModelRow.id == AliasRow.model_id)
                .order_by(RegisteredModelRow.name, AliasRow.alias)
            )
            if name is not None:
                model = model_row(session, name)
                query = query.where(AliasRow.model_id == model.id)
            return [AliasState(m, a, v, at) for m, a, v, at in session.execute(query)]

    def _usage(self, session: Session, model: RegisteredModelRow, version: int | None) -> Usage:
        return usage(
            session,
            model.name,
            aliases_of(session, model.id),
            self.endpoint_references,
            version=version,
            newest_in_service=_newest_in_service(session, model.id),
        )

    def _refuse_in_use(
        self, session: Session, model: RegisteredModelRow, version: int, what: str
    ) -> None:
        used = self._usage(session, model, version)
        if used:
            raise ConflictError(
                f"cannot {what} version {version} of {model.name!r}: {used.describe(model.name)} "
                "point(s) at it; move or delete them first (vigil alias set / vigil alias delete "
                "/ vigil endpoint update)",
                detail={"model": model.name, "version": version, **used.detail()},
            )

    def archive_version(
        self, name: str, version: int, *, reason: str | None = None
    ) -> ModelVersion:
        """Take a version out of service but keep it (artifact, lineage, history): no alias
        may point at it until :meth:`unarchive_version`, and ``latest`` skips it. Refused
        (:class:`~vigil.errors.ConflictError`, naming them) while an alias or endpoint
        points at it. Archiving an archived version changes nothing."""
        return self._set_archived(name, version, archived=True, reason=reason)

    def unarchive_version(
        self, name: str, version: int, *, reason: str | None = None
    ) -> ModelVersion:
        """Put an archived version back in service (audited)."""
        return self._set_archived(name, version, archived=False, reason=reason)

    def _set_archived(
        self, name: str, version: int, *, archived: bool, reason: str | None
    ) -> ModelVersion:
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            row = version_row(session, model, version)
            if (row.archived_at is not None) == archived:
                return version_of(session, model, row)
            if archived:
                self._refuse_in_use(session, model, version, "archive")
            row.archived_at = utcnow() if archived else None
            self._audit(
                session,
                "archive_version" if archived else "unarchive_version",
                "model_version",
                f"{name}/{version}",
                name,
                None,
                {"version": version, **({"reason": reason} if reason else {})},
            )
            model.updated_at = utcnow()
            return version_of(session, model, row)

    def delete_version(self, name: str, version: int, *, reason: str | None = None) -> ModelVersion:
        """Delete a version for good; its number is never given out again, its artifact is
        reclaimed unless another version has the same content. Refused
        (:class:`~vigil.errors.ConflictError`, naming them) while an alias or endpoint
        points at it. The audit trail keeps what it was; the inference log keeps its
        predictions."""
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            row = version_row(session, model, version)
            self._refuse_in_use(session, model, version, "delete")
            gone = version_of(session, model, row)
            model.last_version = max(
                model.last_version or 0, newest_version(session, model.id) or 0
            )
            session.delete(row)
            self._audit(
                session,
                "delete_version",
                "model_version",
                f"{name}/{version}",
                name,
                {"version": version, "sha256": row.sha256, "flavor": row.flavor},
                {"reason": reason} if reason else None,
            )
            model.updated_at = utcnow()
        self._discard_unreferenced(gone.sha256)
        return gone

    def delete_model(
        self, name: str, *, force: bool = False, reason: str | None = None
    ) -> DeletedModel:
        """Delete a model, every version and its alias history; artifacts no other version
        shares are reclaimed. The audit trail keeps every step.

        Refused while an alias points at one of its versions, unless ``force``: then each
        alias is deleted first, audited one by one and listed in the result. An endpoint
        that names the model always refuses it (even with ``force``): deleting the model
        would break its live traffic, so update or delete the endpoint first.
        """
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            used = self._usage(session, model, None)
            if used.endpoints or (used.aliases and not force):
                advice = (
                    "update or delete the endpoint(s) first (vigil endpoint update / delete)"
                    if used.endpoints
                    else "delete the aliases first (vigil alias delete), or pass force to "
                    "delete them with the model (vigil model delete --force)"
                )
                raise ConflictError(
                    f"cannot delete model {name!r}: {used.describe(name)} point(s) at it; "
                    + advice,
                    detail={"model": name, **used.detail()},
                )
            for alias, version in sorted(used.aliases.items()):
                self._audit(
                    session,
                    "delete_alias",
                    "alias",
                    f"{name}@{alias}",
                    name,
                    {"version": version},
                    {"reason": "model deleted (force)"},
                )
            rows = list(
                session.execute(
                    select(ModelVersionRow.version, ModelVersionRow.sha256)
                    .where(ModelVersionRow.model_id == model.id)
                    .order_by(ModelVersionRow.version)
                )
            )
            for table in (AliasEventRow, AliasRow, ModelVersionRow):
                session.execute(delete(table).where(table.model_id == model.id))
            session.delete(model)
            self._audit(
                session,
                "delete_model",
                "model",
                name,
                name,
                {"versions": [v for v, _ in rows], "aliases": used.aliases},
                {"reason": reason} if reason else None,
            )
        for sha in dict.fromkeys(sha for _, sha in rows):
            self._discard_unreferenced(sha)
        return DeletedModel(name=name, versions=[v for v, _ in rows], aliases=used.aliases)

    # -- editing and auditing ---------------------------------------------------------

    def update_version(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        """Replace a version's description and/or tags (``None`` leaves one unchanged).

        Only these two may change; everything else about a version is immutable.
        """
        checked_tags = check_tags(tags) if tags is not None else None
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            row = version_row(session, model, version)
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            if description is not None and description != row.description:
                before["description"], after["description"] = row.description, description
                row.description = description
            if checked_tags is not None and checked_tags != row.tags:
                before["tags"], after["tags"] = row.tags, checked_tags
                row.tags = checked_tags
            if after:
                self._audit(
                    session,
                    "update_version",
                    "model_version",
                    f"{name}/{version}",
                    name,
                    before,
                    after,
                )
            return version_of(session, model, row)

    def update_card(self, name: str, version: int, card: dict[str, str]) -> ModelVersion:
        """Set the model card facts given in ``card`` (an empty text removes one; fields
        not given stay as they are), audited as ``update_card`` with before and after."""
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            row = version_row(session, model, version)
            current = dict(row.card or {})
            updated = check_card({**current, **card})
            if updated != current:
                changed = sorted(
                    k for k in {*current, *updated} if current.get(k) != updated.get(k)
                )
                self._audit(
                    session,
                    "update_card",
                    "model_version",
                    f"{name}/{version}",
                    name,
                    {k: current.get(k) for k in changed},
                    {k: updated.get(k) for k in changed},
                )
                row.card = updated or None
            return version_of(session, model, row)

    def update_model(self, name: str, *, description: str) -> RegisteredModel:
        """Replace a model's description (audited)."""
        with self.db.session(write=True) as session:
            model = model_row(session, name, lock=True)
            if description != model.description:
                self._audit(
                    session,
                    "update_model",
                    "model",
                    name,
                    name,
                    {"description": model.description},
                    {"description": description},
                )
                model.description = description
                model.updated_at = utcnow()
        return self.get_model(name)

    def audit(self, name: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Audit events, newest first; only those about model ``name`` when given."""
        with self.db.session() as session:
            return read_audit(session, model_name=name, limit=limit)

    def _audit(
        self,
        session: Session,
        action: str,
        entity_type: str,
        entity_name: str,
        model_name: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        record_audit(
            session,
            actor=self.actor,
            action=action,
            entity_type=entity_type,
            entity_name=entity_name,
            model_name=model_name,
            before=before,
            after=after,
        )


def _newest_in_service(session: Session, model_id: int) -> int | None:
    """The newest version that is not archived: what ``models:/NAME/latest`` names."""
    return session.scalar(
        select(func.max(ModelVersionRow.version)).where(
            ModelVersionRow.model_id == model_id, ModelVersionRow.archived_at.is_(None)
        )
    )


def fetch_bundle(store: ArtifactStore, sha256: str, cache_dir: Path | str) -> Path:
    """A local, verified copy of the bundle directory stored under ``sha256``, cached by
    digest. Needs only the artifact store, not the registry's database.

    A cached copy is checked against the digest before use and fetched again if it was
    damaged; a damaged *stored* copy raises :class:`~vigil.errors.ArtifactCorruptError`.
    """
    dest = Path(cache_dir) / sha256
    if dest.is_dir():
        if tree_digest(list_tree(dest)) == sha256:
            return dest
        shutil.rmtree(dest)
    try:
        return store.get_dir(sha256, dest)
    except FileExistsError:
        # Another process fetched it at the same moment; use theirs if it is intact.
        if tree_digest(list_tree(dest)) == sha256:
            return dest
        raise


def _nothing_to_roll_back(
    name: str, alias: str, version: int, history: list[tuple[str, int | None]]
) -> str:
    """Why ``name@alias`` cannot be rolled back, and what to run instead."""
    trailing = 0
    for action, _ in reversed(history):
        if action != "rollback":
            break
        trailing += 1
    if trailing:
        moves = "move" if trailing == 1 else "moves"
        happened = (
            f"it was already rolled back {trailing} {moves} and is now at the first version "
            "it pointed to"
        )
    else:
        happened = "it was never moved from the first version it pointed to"
    return (
        f"{name}@{alias} (version {version}) has no earlier version to roll back to: "
        f"{happened}. To point it at another version, run `vigil alias set {name} {alias} "
        f"VERSION` (or PUT /v1/admin/models/{name}/aliases/{alias}); `vigil audit {name}` "
        "shows every move"
    )
