"""API keys: create (the token is shown once), list, revoke, and check a token.

:class:`KeyStore` works over the metadata database (``Vigil.database``), like the
registry. Creating and revoking a key are audited in the same transaction as the change
(actor, the key's id, role and name; never its token). A token is checked by its id (one
primary-key lookup) and the SHA-256 of the whole token, compared in constant time (see
:mod:`vigil.auth.tokens`).

>>> from vigil.storage.sql import Database
>>> store = KeyStore(Database("sqlite://"), actor="ada")
>>> created = store.create("predict", name="churn-frontend")
>>> created.token.startswith(f"vk_{created.key.id}_")
True
>>> principal = store.authenticate(created.token)
>>> principal.role, principal.actor == f"key:{created.key.id}"
('predict', True)
>>> store.revoke(created.key.id).active
False
>>> try:
...     store.authenticate(created.token)
... except AuthenticationError as exc:
...     print(exc.status, exc.detail["reason"])
401 revoked
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vigil.audit import record_audit
from vigil.auth.roles import Role, allows, check_role
from vigil.auth.tables import ApiKeyRow
from vigil.auth.tokens import PREFIX_LENGTH, hash_token, new_token, parse_token, token_matches
from vigil.errors import (
    ApiKeyNotFoundError,
    AuthenticationError,
    DatabaseUnavailableError,
    InvalidParameterError,
)
from vigil.names import NAME_LENGTH
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from vigil.services import Services
    from vigil.storage.sql import Database

log = logging.getLogger("vigil.auth")

TOUCH_EVERY = timedelta(seconds=60)
"""``last_used_at`` is refreshed at most this often per key (a write per request would
queue every worker behind the database's write lock)."""


@dataclass(frozen=True)
class ApiKey:
    """What is known about a key; never its token or digest."""

    id: str
    prefix: str
    role: Role
    name: str | None
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its token: the only time the token exists outside its holder."""

    key: ApiKey
    token: str = field(repr=False)  # kept out of reprs, so out of logs and tracebacks


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the authenticated key."""

    key_id: str
    role: Role
    name: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"key:{self.key_id}"


def _record(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        prefix=row.prefix,
        role=check_role(row.role),
        name=row.name,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


def _check_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or len(name) > NAME_LENGTH or not name.isprintable():
        raise InvalidParameterError(
            f"a key name must be printable text of at most {NAME_LENGTH} characters",
            detail={"field": "name"},
        )
    return name or None


class KeyStore:
    """Create, list, revoke and check API keys.

    Parameters
    ----------
    db:
        The metadata database (its schema is migrated on first use).
    actor:
        Who is acting, recorded in the audit log for creations and revocations.
    """

    def __init__(self, db: Database, *, actor: str) -> None:
        self.db = db
        self.actor = actor

    @classmethod
    def from_vigil(cls, app: Services) -> KeyStore:
        """The key store of an installation (its database and actor)."""
        return cls(app.database, actor=app.settings.resolved_actor)

    def __repr__(self) -> str:
        return f"KeyStore({self.db!r}, actor={self.actor!r})"

    def create(self, role: str, *, name: str | None = None) -> CreatedKey:
        """A new key with ``role``; its token is in the result and nowhere else."""
        checked = check_role(role)
        name = _check_name(name)
        key_id, token = new_token()
        row = ApiKeyRow(
            id=key_id,
            prefix=token[:PREFIX_LENGTH],
            secret_hash=hash_token(token),
            role=checked,
            name=name,
            created_at=utcnow(),
            created_by=self.actor,
        )
        with self.db.session(write=True) as session:
            session.add(row)
            record_audit(
                session,
                actor=self.actor,
                action="create_api_key",
                entity_type="api_key",
                entity_name=key_id,
                after={"role": checked, "name": name, "prefix": row.prefix},
            )
            session.flush()
            key = _record(row)
        log.info("API key %s created (role %s) by %s", key_id, checked, self.actor)
        return CreatedKey(key, token)

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first (revoked ones too unless told otherwise)."""
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        with self.db.session() as session:
            return [_record(row) for row in session.scalars(query)]

    def get(self, key_id: str) -> ApiKey:
        """One key by id, or :class:`~vigil.errors.ApiKeyNotFoundError`."""
        with self.db.session() as session:
            return _record(self._row(session, key_id))

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key for good. Revoking a revoked key changes and records nothing.

        Servers refuse the key once their short authentication cache expires (see
        :mod:`vigil.auth.authenticator`).
        """
        with self.db.session(write=True) as session:
            row = self._row(session, key_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                row.revoked_by = self.actor
                record_audit(
                    session,
                    actor=self.actor,
                    action="revoke_api_key",
                    entity_type="api_key",
                    entity_name=row.id,
                    before={"role": row.role, "name": row.name, "revoked": False},
                    after={"role": row.role, "name": row.name, "revoked": True},
                )
                log.info("API key %s revoked by %s", row.id, self.actor)
            return _record(row)

    def has_active(self, role: Role) -> bool:
        """Whether some unrevoked key may call operations that need ``role``."""
        with self.db.session() as session:
            roles = session.scalars(select(ApiKeyRow.role).where(ApiKeyRow.revoked_at.is_(None)))
            return any(allows(check_role(held), role) for held in roles)

    def check(self, token: str) -> ApiKey:
        """The active key ``token`` belongs to, or :class:`~vigil.errors.AuthenticationError`.

        An unknown id and a wrong secret get the same message, so the answer does not
        tell a guesser which part was wrong.
        """
        parsed = parse_token(token)
        if parsed is None:
            raise AuthenticationError(
                "the bearer token is not a vigil API key (vk_<id>_<secret>); "
                "create one with: vigil key create --role predict",
                detail={"reason": "malformed_token"},
            )
        key_id, _ = parsed
        with self.db.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or not token_matches(token, row.secret_hash):
                raise AuthenticationError(
                    "invalid API key; check the token, or create a key with: "
                    "vigil key create --role predict",
                    detail={"reason": "invalid_token"},
                )
            if row.revoked_at is not None:
                raise AuthenticationError(
                    f"API key {row.id} was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC; "
                    "ask an admin for a new key (vigil key create)",
                    detail={"reason": "revoked", "key_id": row.id},
                )
            return _record(row)

    def authenticate(self, token: str) -> Principal:
        """The caller ``token`` authenticates, or :class:`~vigil.errors.AuthenticationError`."""
        key = self.check(token)
        return Principal(key.id, key.role, key.name)

    def touch(self, key_id: str) -> None:
        """Record that the key was just used (best effort: a failure is only logged)."""
        now = utcnow()
        try:
            with self.db.session(write=True) as session:
                session.execute(
                    update(ApiKeyRow)
                    .where(
                        ApiKeyRow.id == key_id,
                        or_(
                            ApiKeyRow.last_used_at.is_(None),
                            ApiKeyRow.last_used_at < now - TOUCH_EVERY,
                        ),
                    )
                    .values(last_used_at=now)
                )
        except (SQLAlchemyError, DatabaseUnavailableError):
            log.warning("could not record the last use of API key %s", key_id, exc_info=True)

    @staticmethod
    def _row(session: Session, key_id: str) -> ApiKeyRow:
        row = session.get(ApiKeyRow, key_id) if isinstance(key_id, str) else None
        if row is None:
            raise ApiKeyNotFoundError(
                f"no API key {str(key_id)[:40]!r}; list the keys with: vigil key list",
                detail={"key_id": str(key_id)[:40]},
            )
        return row
