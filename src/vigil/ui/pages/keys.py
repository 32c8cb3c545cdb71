"""The keys page (admin): every API key, creating one (its token shown once, on the page
that answers the form and nowhere else) and revoking one, through
:class:`~vigil.auth.keys.KeyStore` as ``vigil key`` does (audited with the session's key
as the actor). Revoking a key also ends its console sessions at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil.auth.keys import ApiKey, CreatedKey, KeyStore

if TYPE_CHECKING:
    from collections.abc import Mapping

    from vigil.storage.sql import Database
    from vigil.ui.sessions import SessionStore


def list_keys(db: Database) -> list[ApiKey]:
    """Every key, newest first."""
    return list(reversed(KeyStore(db, actor="console").list()))


def create_key(db: Database, form: Mapping[str, str], actor: str) -> CreatedKey:
    """A new key from the form's ``role`` and ``name`` (an invalid role is a 400)."""
    return KeyStore(db, actor=actor).create(form.get("role", ""), name=form.get("name") or None)


def revoke_key(db: Database, sessions: SessionStore, key_id: str, actor: str) -> ApiKey:
    """Revoke a key and end its console sessions."""
    revoked = KeyStore(db, actor=actor).revoke(key_id)
    sessions.end_for_key(revoked.id)
    return revoked
