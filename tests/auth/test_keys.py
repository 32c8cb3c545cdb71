"""API keys on a real database: hashed at rest, shown once, audited, revocable."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from tests.servers import needs

from vigil.audit import AuditLogRow
from vigil.auth.keys import KeyStore
from vigil.auth.roles import ROLES, allows
from vigil.auth.tables import ApiKeyRow
from vigil.auth.tokens import PREFIX_LENGTH, TOKEN_LENGTH, parse_token
from vigil.errors import ApiKeyNotFoundError, AuthenticationError, InvalidParameterError
from vigil.storage.sql import Database, utcnow


@pytest.fixture(params=["sqlite", needs("postgres", "postgres")])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vigil.db'}"
    else:
        url = request.getfixturevalue("migrated_postgres_url")
    db = Database(url)
    yield KeyStore(db, actor="ada")
    db.dispose()


def test_roles_are_ordered():
    assert ROLES == ("read", "predict", "admin")
    table = {(h, n): allows(h, n) for h in ROLES for n in ROLES}
    assert [pair for pair, ok in table.items() if ok] == [
        ("read", "read"),
        ("predict", "read"),
        ("predict", "predict"),
        ("admin", "read"),
        ("admin", "predict"),
        ("admin", "admin"),
    ]


def test_only_the_digest_is_stored_and_the_token_is_shown_once(store: KeyStore):
    created = store.create("predict", name="churn-frontend")
    token, key = created.token, created.key
    assert len(token) == TOKEN_LENGTH and token.startswith(f"vk_{key.id}_")
    assert parse_token(token) == (key.id, token)
    assert token not in repr(created)
    assert (key.role, key.name, key.created_by, key.active) == (
        "predict",
        "churn-frontend",
        "ada",
        True,
    )
    assert key.prefix == token[:PREFIX_LENGTH]
    secret = token[PREFIX_LENGTH:]
    with store.db.session() as session:
        row = session.get(ApiKeyRow, key.id)
        assert row is not None
        assert row.secret_hash == hashlib.sha256(token.encode()).hexdigest()
        # Neither the token nor its unrevealed part is anywhere in the database.
        dump = " ".join(
            str(value)
            for table in ("api_keys", "audit_log")
            for record in session.execute(text(f"SELECT * FROM {table}"))
            for value in record
        )
    assert token not in dump and secret not in dump
    assert key.id in dump


def test_authenticate_compares_digests_in_constant_time(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
):
    token = store.create("read").token
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    principal = store.authenticate(token)
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert calls == [(digest, digest)]
    assert (principal.role, principal.actor) == ("read", f"key:{principal.key_id}")

    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(AuthenticationError, match="invalid API key") as caught:
        store.authenticate(forged)
    assert caught.value.status == 401
    assert len(calls) == 2 and calls[1][1] == digest


@pytest.mark.parametrize(
    "token",
    ["", "Bearer", "vk_short", "vk_0123456789ab_" + "x" * 42, "vk_0123456789AB_" + "x" * 43],
)
def test_malformed_tokens_are_refused_without_a_lookup(token: str):
    store = KeyStore(Database("sqlite://", auto_migrate=False), actor="x")  # never touched
    with pytest.raises(AuthenticationError, match="not a vigil API key"):
        store.authenticate(token)


def test_unknown_id_and_wrong_secret_get_the_same_answer(store: KeyStore):
    token = store.create("admin").token
    unknown = "vk_" + "0" * 12 + token[15:]
    messages = set()
    for bad in (unknown, token[:-2] + "zz" if not token.endswith("zz") else token[:-2] + "yy"):
        with pytest.raises(AuthenticationError) as caught:
            store.authenticate(bad)
        messages.add(caught.value.message)
    assert len(messages) == 1


def test_list_revoke_and_audit(store: KeyStore):
    reader = store.create("read", name="dashboard")
    predictor = store.create("predict")
    assert [k.id for k in store.list()] == [reader.key.id, predictor.key.id]
    assert store.has_active("predict") and store.has_active("read")
    assert not store.has_active("admin")

    revoked = store.revoke(predictor.key.id)
    assert not revoked.active and revoked.revoked_by == "ada"
    assert store.revoke(predictor.key.id).revoked_at == revoked.revoked_at  # idempotent
    assert [k.id for k in store.list(include_revoked=False)] == [reader.key.id]
    assert not store.has_active("predict")
    with pytest.raises(AuthenticationError, match=f"API key {predictor.key.id} was revoked"):
        store.authenticate(predictor.token)

    with store.db.session() as session:
        rows = session.scalars(select(AuditLogRow).order_by(AuditLogRow.id)).all()
        trail = [(r.actor, r.action, r.entity_type, r.entity_name, r.after) for r in rows]
    assert trail == [
        ("ada", "create_api_key", "api_key", reader.key.id,
         {"role": "read", "name": "dashboard", "prefix": reader.key.prefix}),
        ("ada", "create_api_key", "api_key", predictor.key.id,
         {"role": "predict", "name": None, "prefix": predictor.key.prefix}),
        ("ada", "revoke_api_key", "api_key", predictor.key.id,
         {"role": "predict", "name": None, "revoked": True}),
    ]  # fmt: skip


def test_errors_are_typed(store: KeyStore):
    with pytest.raises(ApiKeyNotFoundError, match="vigil key list") as caught:
        store.revoke("nope")
    assert caught.value.status == 404
    with pytest.raises(InvalidParameterError, match="unknown role 'root'"):
        store.create("root")
    with pytest.raises(InvalidParameterError, match="printable"):
        store.create("read", name="bad\nname")
    assert store.list() == []


def test_touch_records_last_use_at_most_once_a_minute(store: KeyStore):
    key = store.create("read").key
    assert key.last_used_at is None
    store.touch(key.id)
    first = store.get(key.id).last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    store.touch(key.id)
    assert store.get(key.id).last_used_at == first
