"""The server's cached bearer check: one lookup per TTL, revocation bounded by the TTL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vigil.auth.authenticator import Authenticator, bearer_token
from vigil.auth.keys import ApiKey, KeyStore
from vigil.errors import AuthenticationError, PermissionDeniedError
from vigil.storage.sql import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(KeyStore):
    """A real KeyStore that counts database lookups."""

    lookups = 0

    def check(self, token: str) -> ApiKey:
        self.lookups += 1
        return super().check(token)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(Database(f"sqlite:///{tmp_path / 'vigil.db'}"), actor="ada")


def header(token: str) -> bytes:
    return f"Bearer {token}".encode()


def test_a_check_is_cached_for_the_ttl_and_revocation_bites_after_it(store: CountingStore):
    clock = Clock()
    auth = Authenticator(store, ttl=5.0, clock=clock)
    created = store.create("predict")

    async def scenario() -> None:
        for _ in range(3):
            principal = await auth.authorize(header(created.token), "predict")
            assert principal.key_id == created.key.id
        assert store.lookups == 1
        store.revoke(created.key.id)
        clock.now += 4.9  # still inside the TTL: the cached check answers
        await auth.authorize(header(created.token), "read")
        assert store.lookups == 1
        clock.now += 0.2  # past the TTL: the key's row is read again, and it is revoked
        with pytest.raises(AuthenticationError, match="was revoked"):
            await auth.authorize(header(created.token), "read")
        assert store.lookups == 2

    asyncio.run(scenario())


def test_concurrent_requests_share_one_lookup(store: CountingStore):
    auth = Authenticator(store)
    token = store.create("read").token

    async def scenario() -> list[str]:
        found = await asyncio.gather(*(auth.authorize(header(token), "read") for _ in range(20)))
        return [p.key_id for p in found]

    assert len(set(asyncio.run(scenario()))) == 1
    assert store.lookups == 1


def test_roles_and_failures(store: CountingStore):
    auth = Authenticator(store)
    reader = store.create("read").token

    async def scenario() -> None:
        with pytest.raises(PermissionDeniedError, match="needs 'predict' or higher") as denied:
            await auth.authorize(header(reader), "predict")
        assert denied.value.status == 403
        with pytest.raises(AuthenticationError, match="needs an API key") as missing:
            await auth.authorize(None, "read")
        assert missing.value.detail == {"reason": "missing_token"}
        with pytest.raises(AuthenticationError, match="Bearer scheme"):
            await auth.authorize(b"Basic dXNlcjpwdw==", "read")
        with pytest.raises(AuthenticationError, match="not a vigil API key"):
            await auth.authorize("Bearer v\u00e9".encode("latin-1"), "read")
        bad = header(reader[:-1] + ("a" if reader[-1] != "a" else "b"))
        for _ in range(2):  # failures are not cached: each one is checked again
            with pytest.raises(AuthenticationError, match="invalid API key"):
                await auth.authorize(bad, "read")

    asyncio.run(scenario())
    assert store.lookups == 3  # the reader once (then cached), the bad token twice


def test_the_cache_is_bounded(store: CountingStore):
    auth = Authenticator(store, max_entries=2)
    tokens = [store.create("read").token for _ in range(3)]

    async def scenario() -> None:
        for token in tokens:
            await auth.authorize(header(token), "read")

    asyncio.run(scenario())
    assert len(auth._cache) == 2 and header(tokens[0]) not in auth._cache


def test_bearer_parsing_is_lenient_about_case_and_spaces():
    assert bearer_token(b"bearer  vk_x ") == "vk_x"
    with pytest.raises(AuthenticationError):
        bearer_token(b"Bearer ")
    with pytest.raises(AuthenticationError, match="not a vigil API key"):
        bearer_token(b"Bearer vk_x" + b" " * 300)
