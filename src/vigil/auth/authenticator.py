"""Bearer-token checks for the server, cached so the hot path stays one dict lookup.

:class:`Authenticator` turns an ``Authorization`` header into a
:class:`~vigil.auth.keys.Principal` and checks its role against what a route needs.
A successful check is cached in the worker for ``ttl`` seconds (5 by default), keyed by
the raw header: repeated requests with the same key cost one dict lookup, not a database
query. Failures are not cached (a bad token must not push good ones out of the cache).

**Revocation takes effect within ``ttl`` seconds** on every worker: a cached entry is
never used past its expiry, and the next check reads the key's row again. Concurrent
requests with the same token while its entry is being refreshed share one database
lookup. The lookup runs in a thread of the authenticator's own pool, off the event loop.
``last_used_at`` is refreshed in the background, at most once a minute per key.

Tokens never reach a log: errors carry the key id at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from vigil.auth.keys import TOUCH_EVERY, KeyStore, Principal
from vigil.auth.roles import Role, allows
from vigil.errors import AuthenticationError, PermissionDeniedError
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from vigil.auth.keys import ApiKey

log = logging.getLogger("vigil.auth")


_MAX_HEADER = 256
_MISSING = (
    "this operation needs an API key: send the header 'Authorization: Bearer vk_...' "
    "(create a key with: vigil key create --role predict)"
)


class Authenticator:
    """Checks bearer tokens against a :class:`KeyStore`, with a short per-worker cache.

    Parameters
    ----------
    store:
        Where keys are looked up.
    ttl:
        Seconds a successful check is reused; the bound on how long a revoked key keeps
        working on a worker that saw it just before.
    max_entries:
        Cache size; the oldest entry is dropped when it is full.
    executor:
        Threads the database is read on: a pool of the authenticator's own (the server
        gives it one), so no other work can hold up key checks; ``None``: the event loop's
        default executor.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        ttl: float = 5.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self.executor = executor
        self._clock = clock
        # Python dicts compare a lookup key's bytes only after their (per-process keyed)
        # hashes matched, so probing this cache leaks no timing about stored tokens.
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._pending: dict[bytes, asyncio.Future[Principal]] = {}

    async def authorize(self, authorization: bytes | None, role: Role) -> Principal:
        """The caller of a request with this ``Authorization`` header, if it may act as
        ``role``; else :class:`AuthenticationError` (401) or :class:`PermissionDeniedError`
        (403)."""
        if not authorization:
            raise AuthenticationError(_MISSING, detail={"reason": "missing_token"})
        entry = self._cache.get(authorization)
        if entry is not None and entry[1] > self._clock():
            principal = entry[0]
        else:
            principal = await self._refresh(authorization)
        if not allows(principal.role, role):
            raise PermissionDeniedError(
                f"API key {principal.key_id} has role {principal.role!r}; this operation "
                f"needs {role!r} or higher (create one with: vigil key create --role {role})",
                detail={"key_id": principal.key_id, "role": principal.role, "needed": role},
            )
        return principal

    def cached(self, authorization: bytes | None, role: Role) -> Principal | None:
        """:meth:`authorize`'s answer when it needs no lookup and raises nothing: the
        caller of a header checked less than ``ttl`` ago whose role allows ``role``;
        ``None`` for anything else (then only :meth:`authorize` may judge it)."""
        entry = self._cache.get(authorization) if authorization else None
        if entry is None or entry[1] <= self._clock() or not allows(entry[0].role, role):
            return None
        return entry[0]

    async def _refresh(self, authorization: bytes) -> Principal:
        pending = self._pending.get(authorization)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(authorization))
            self._pending[authorization] = pending
            pending.add_done_callback(lambda _: self._pending.pop(authorization, None))
        # shield: a client that hangs up must not cancel the lookup others are awaiting.
        return await asyncio.shield(pending)

    async def _lookup(self, authorization: bytes) -> Principal:
        token = bearer_token(authorization)
        loop = asyncio.get_running_loop()
        key: ApiKey = await loop.run_in_executor(self.executor, self.store.check, token)
        principal = Principal(key.id, key.role, key.name)
        if len(self._cache) >= self.max_entries:
            self._cache.pop(next(iter(self._cache)), None)
        self._cache[authorization] = (principal, self._clock() + self.ttl)
        if key.last_used_at is None or utcnow() - key.last_used_at > TOUCH_EVERY:
            # Not awaited: off the request's path.
            loop.run_in_executor(self.executor, self.store.touch, key.id)
        return principal

    def forget(self) -> None:
        """Drop every cached check (the next request of each key reads the database)."""
        self._cache.clear()


def bearer_token(authorization: bytes) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value.

    >>> bearer_token(b"Bearer vk_abc")
    'vk_abc'
    >>> bearer_token(b"Basic dXNlcg==")
    Traceback (most recent call last):
    ...
    vigil.errors.AuthenticationError: use the Bearer scheme: 'Authorization: Bearer vk_...'
    """
    if len(authorization) > _MAX_HEADER:  # a valid one is ~70 bytes; keep junk out of the cache
        raise AuthenticationError(
            "the bearer token is not a vigil API key (vk_<id>_<secret>)",
            detail={"reason": "malformed_token"},
        )
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise AuthenticationError(
            "use the Bearer scheme: 'Authorization: Bearer vk_...'",
            detail={"reason": "malformed_header"},
        )
    try:
        return token.strip().decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationError(
            "the bearer token is not a vigil API key (vk_<id>_<secret>)",
            detail={"reason": "malformed_token"},
        ) from None
