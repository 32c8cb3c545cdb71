"""Console sessions: signing in with an API key, the session a browser then holds, and
its end (sign-out, expiry, or the key's revocation).

A session is a random token in an ``HttpOnly`` cookie; the database keeps only its
SHA-256 (:class:`~vigil.ui.tables.ConsoleSessionRow`), the key it was opened with, its
CSRF token and its expiry. Every console request reads it joined with its key, so a key
revoked by any path (``vigil key revoke``, the admin API, the console) ends its sessions
on their next request, whatever their expiry. Signing in and out are not audited: they
change nothing a reviewer asks about, and the key's own use is on record.

>>> from datetime import timedelta
>>> from vigil.auth.keys import KeyStore
>>> from vigil.storage.sql import Database
>>> db = Database("sqlite://")
>>> keys = KeyStore(db, actor="ada")
>>> sessions = SessionStore(db, ttl=timedelta(hours=1))
>>> token, session = sessions.sign_in(keys.create("read").token)
>>> sessions.get(token).role
'read'
>>> sessions.sign_in(keys.create("predict").token)
Traceback (most recent call last):
...
vigil.errors.PermissionDeniedError: a predict key cannot sign in to the console: it may only send predictions; sign in with a read or admin key (vigil key create --role read)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from vigil.auth.keys import KeyStore
from vigil.auth.roles import Role, check_role
from vigil.auth.tables import ApiKeyRow
from vigil.errors import PermissionDeniedError
from vigil.storage.sql import Database, utcnow
from vigil.ui.tables import ConsoleSessionRow

CONSOLE_ROLES: tuple[Role, ...] = ("read", "admin")
"""The roles that may sign in: ``read`` sees, ``admin`` acts. A ``predict`` key belongs to
a program that sends predictions, not to a person."""

_MAX_TOKEN = 128


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in browser: its key, role and CSRF token."""

    key_id: str
    role: Role
    name: str | None
    csrf: str
    expires_at: datetime

    @property
    def actor(self) -> str:
        """How the audit log names what this session does (as the REST API names its key)."""
        return f"key:{self.key_id}"

    def csrf_matches(self, sent: str | None) -> bool:
        """Whether a form carried this session's CSRF token (compared in constant time)."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class SessionStore:
    """Open, read and end console sessions in the metadata database.

    Parameters
    ----------
    db:
        The metadata database (holding the API keys).
    ttl:
        How long a session lasts from sign-in; it ends then, signed out or not.
    """

    def __init__(self, db: Database, *, ttl: timedelta) -> None:
        self.db = db
        self.ttl = ttl

    def sign_in(self, api_key: str) -> tuple[str, ConsoleSession]:
        """A new session for the holder of ``api_key``: its token (for the cookie, and
        nowhere else) and what it is. An unknown, revoked or malformed key raises
        :class:`~vigil.errors.AuthenticationError`, a ``predict`` key
        :class:`~vigil.errors.PermissionDeniedError`."""
        key = KeyStore(self.db, actor="console").check(api_key.strip()[:_MAX_TOKEN])
        if key.role not in CONSOLE_ROLES:
            raise PermissionDeniedError(
                f"a {key.role} key cannot sign in to the console: it may only send "
                "predictions; sign in with a read or admin key (vigil key create --role read)",
                detail={"role": key.role, "expected": list(CONSOLE_ROLES)},
            )
        token = secrets.token_urlsafe(32)
        now = utcnow()
        row = ConsoleSessionRow(
            id=_digest(token),
            key_id=key.id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self.ttl,
        )
        with self.db.session(write=True) as session:
            # Expired sessions go as new ones come: the table stays as small as its users.
            session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < now))
            session.add(row)
        return token, ConsoleSession(key.id, key.role, key.name, row.csrf, row.expires_at)

    def get(self, token: str | None) -> ConsoleSession | None:
        """The live session ``token`` opens, or ``None``: unknown, expired, or its key
        revoked (the row of an ended session is deleted)."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        digest = _digest(token)
        query = (
            select(ConsoleSessionRow, ApiKeyRow)
            .join(ApiKeyRow, ApiKeyRow.id == ConsoleSessionRow.key_id)
            .where(ConsoleSessionRow.id == digest)
        )
        with self.db.session() as session:
            found = session.execute(query).first()
        if found is None:
            return None
        row, key = found
        role = check_role(key.role)
        if key.revoked_at is not None or row.expires_at <= utcnow() or role not in CONSOLE_ROLES:
            self.sign_out(token)
            return None
        return ConsoleSession(key.id, role, key.name, row.csrf, row.expires_at)

    def sign_out(self, token: str) -> None:
        """End the session ``token`` opens (nothing happens for an unknown one)."""
        with self.db.session(write=True) as session:
            session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.id == _digest(token)))

    def end_for_key(self, key_id: str) -> int:
        """End every session of a key (its revocation); how many there were."""
        with self.db.session(write=True) as session:
            result = session.execute(
                delete(ConsoleSessionRow).where(ConsoleSessionRow.key_id == key_id)
            )
            return int(getattr(result, "rowcount", 0) or 0)
