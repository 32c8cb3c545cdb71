"""The prediction cache: answers for rows a model version has already predicted, in Redis.

Opt-in per model (``serve: cache: {churn: {ttl: 5m, max_entries: 100000}}``, see
:class:`~vigil.serving.config.CachePolicy`), shared by every worker and replica that uses
the same Redis (``VIGIL_REDIS_URL``).

**Keys.** One entry per validated row: ``vigil:pc:{MODEL/VERSION/DIGEST}:HASH``, where
``DIGEST`` is the start of the version's artifact digest (its registry sha256), so two
versions, or a model deleted and registered again under the same number, never share an
entry, and ``HASH`` is a BLAKE2b-128 of the row *after* validation: columns in the
signature's order, extra columns dropped, numbers as the model receives them. So
``{"a": 1, "b": 2}`` and ``{"b": 2.0, "a": 1}`` are one key. Every NaN (``null``, a
missing optional feature, ``NaN``) hashes alike; ``-0.0`` and ``0.0`` do not (a model may
tell them apart). A model served from a file rather than the registry has no digest: its
entries are private to the worker process that made them.

**Bound.** Redis bounds memory only server-wide (``maxmemory``), so each version has an
index (a sorted set of its keys by insertion time, under the same hash tag, so Redis
Cluster keeps it in one slot). One script per write adds the entries with their TTL, drops
index members older than the TTL and, past ``max_entries``, deletes the oldest entries:
a model version never holds more than ``max_entries`` entries, across every replica.
Eviction is first-in-first-out, not least-recently-used: LRU would turn every hit into a
write.

**Cost.** The requests that reach the cache in one turn of the event loop are looked up
with one ``MGET`` (the same gathering the micro-batcher does), and the answers of one
turn are written with one script call per version, off the request's path. Nothing waits
on Redis longer than ``cache_timeout_ms``: a lookup that fails or times out is a miss
(counted as ``error``), and while Redis keeps failing it is not asked again for
:data:`RETRY_AFTER_S`. A request is a hit only when every one of its rows is (and, when
probabilities are needed, every entry has them); otherwise all of its rows are predicted
and written back.

>>> import numpy as np
>>> a = row_hashes(np.array([[1.0, float("nan")], [1.0, -float("nan")]]))
>>> len(a[0]), a[0] == a[1]
(32, True)
>>> entry = encode_entry(np.array([1, 0])[0], None)
>>> predictions, probabilities = decode_entries([entry, entry])
>>> predictions.tolist(), predictions.dtype.name, probabilities
([1, 1], 'int64', None)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil._redact import redact_url
from vigil.errors import require
from vigil.serving import metrics

if TYPE_CHECKING:
    from vigil.serving.config import CachePolicy

log = logging.getLogger("vigil.serving")

RETRY_AFTER_S = 1.0
"""Seconds the cache is left alone after Redis failed (requests are predicted meanwhile)."""
CONNECT_TIMEOUT_S = 1.0
"""Seconds a new connection to Redis may take (at start, and after Redis came back)."""
MAX_PENDING_WRITES = 50_000
"""Entries waiting to be written beyond which new ones are dropped (Redis too slow)."""
PREFIX = "vigil:pc"

_NAN = np.float64("nan")
_PROCESS_TOKEN = os.urandom(8).hex()
"""Stands for the digest of a model served from a file: its entries stay in this process."""

# KEYS: the version's index, then the entry keys; ARGV: ttl (ms), max entries, the values.
# Redis's own clock orders the index, so replicas with skewed clocks agree on what is old.
_STORE = """
local ttl = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local index = KEYS[1]
redis.call('ZREMRANGEBYSCORE', index, '-inf', now - ttl)
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ttl)
  redis.call('ZADD', index, now, KEYS[i])
end
local excess = redis.call('ZCARD', index) - cap
if excess > 0 then
  local old = redis.call('ZPOPMIN', index, excess)
  for i = 1, #old, 2 do
    redis.call('DEL', old[i])
  end
end
redis.call('PEXPIRE', index, ttl)
return math.max(excess, 0)
"""


@dataclass(frozen=True, slots=True)
class Namespace:
    """Where one model version's entries live, with its policy."""

    model: str
    version: str
    tag: str
    """``{model/version/digest}``: the hash tag of every key of this version."""
    ttl_ms: int
    max_entries: int

    @classmethod
    def of(cls, model: str, version: int, digest: str | None, policy: CachePolicy) -> Namespace:
        """``digest`` is the version's artifact digest (``None``: a model from a file)."""
        token = (digest or _PROCESS_TOKEN)[:16]
        return cls(
            model,
            str(version),
            f"{{{model}/{version}/{token}}}",
            max(1, round(policy.ttl_seconds * 1000)),
            policy.max_entries,
        )

    def key(self, row_hash: str) -> str:
        return f"{PREFIX}:{self.tag}:{row_hash}"

    @property
    def index(self) -> str:
        return f"{PREFIX}:{self.tag}:index"


def row_hashes(X: Any) -> list[str]:
    """One hex BLAKE2b-128 per row of a validated table (a 2-D array or a DataFrame)."""
    if isinstance(X, np.ndarray):
        A = np.ascontiguousarray(X)
        if A.dtype.kind == "f" and np.isnan(A).any():
            A = np.where(np.isnan(A), _NAN, A)  # one bit pattern for every NaN
        tag = A.dtype.str.encode()
        return [hashlib.blake2b(tag + row.tobytes(), digest_size=16).hexdigest() for row in A]
    return _frame_hashes(X)


def _frame_hashes(frame: Any) -> list[str]:
    n = len(frame)
    hashes = [hashlib.blake2b(digest_size=16) for _ in range(n)]
    for name in frame.columns:
        column = frame[name].to_numpy()
        if column.dtype.kind in "biuf":
            if column.dtype.kind == "f" and np.isnan(column).any():
                column = np.where(np.isnan(column), _NAN, column)
            column = np.ascontiguousarray(column)
            raw = column.tobytes()
            size = column.dtype.itemsize
            tag = column.dtype.str.encode()
            for i, h in enumerate(hashes):
                h.update(tag + raw[i * size : (i + 1) * size])
        else:
            for h, value in zip(hashes, column.tolist(), strict=True):
                h.update(_token(value))
    return [h.hexdigest() for h in hashes]


def _token(value: Any) -> bytes:
    """A value of a text/category column, typed and length-prefixed (no two collide)."""
    if value is None or (isinstance(value, float) and value != value):
        return b"\x00"
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"s%d:%b" % (len(data), data)
    if isinstance(value, bool):
        return b"b1" if value else b"b0"
    text = repr(value).encode()
    return b"%s%d:%b" % (type(value).__name__[:1].encode(), len(text), text)


def encode_entry(prediction: Any, probabilities: Any) -> bytes:
    """One row's answer: its prediction and class probabilities (or ``None``), with their
    dtypes, as JSON (no pickle: Redis is shared)."""
    pred = np.asarray(prediction)
    body = [pred.dtype.str, pred.tolist(), None, None]
    if probabilities is not None:
        proba = np.asarray(probabilities)
        body[2], body[3] = proba.dtype.str, proba.tolist()
    return json.dumps(body, separators=(",", ":")).encode()


def decode_entries(entries: Sequence[bytes]) -> tuple[np.ndarray[Any, Any], Any]:
    """The predictions (and probabilities, or ``None`` if any entry lacks them) of rows."""
    rows = [json.loads(e) for e in entries]
    dtype = rows[0][0]
    kind = np.dtype(dtype).kind
    # Text predictions: numpy picks a width that fits every row.
    predictions = np.array([r[1] for r in rows], dtype=None if kind == "U" else np.dtype(dtype))
    if any(r[3] is None for r in rows):
        return predictions, None
    return predictions, np.array([r[3] for r in rows], dtype=np.dtype(rows[0][2]))


class _Lookup:
    __slots__ = ("future", "keys", "namespace")

    def __init__(self, namespace: Namespace, keys: list[str], future: asyncio.Future[Any]):
        self.namespace = namespace
        self.keys = keys
        self.future = future


class PredictionCache:
    """The Redis prediction cache of one serving worker (see the module documentation).

    Parameters
    ----------
    url
        The Redis to use (``VIGIL_REDIS_URL``).
    timeout
        Seconds a lookup or a write may take before it counts as failed.
    """

    def __init__(self, url: str, *, timeout: float = 0.05) -> None:
        self.url = url
        self.timeout = timeout
        self._client: Any = None
        self._script: Any = None
        self._lookups: list[_Lookup] = []
        self._looking = False
        self._looker: asyncio.Task[None] | None = None
        self._writes: dict[Namespace, dict[str, bytes]] = {}
        self._pending_writes = 0
        self._writer: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self.lookups = 0
        """``MGET`` calls made (for tests and the benchmark)."""
        self.writes = 0
        """Script calls made to store entries."""

    def __repr__(self) -> str:
        return f"PredictionCache({redact_url(self.url)!r})"

    async def start(self) -> None:
        """Make the client, on the worker's event loop (it connects on first use)."""
        if self._client is None:
            asyncio_redis = require("redis.asyncio", "redis")
            self._client = asyncio_redis.Redis.from_url(
                self.url,
                socket_timeout=max(self.timeout, CONNECT_TIMEOUT_S),  # commands: asyncio.timeout
                socket_connect_timeout=max(self.timeout, CONNECT_TIMEOUT_S),
                decode_responses=False,
            )
            self._script = self._client.register_script(_STORE)
            # Connect now, with time to spare (a connection's handshake is several round
            # trips): a lookup's own timeout is meant for a command, not for connecting.
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await self._client.ping()
            except Exception as exc:
                self._failed("connecting", exc)

    async def stop(self) -> None:
        """Write what is pending (bounded by the timeout), then close the client."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), self.timeout * 4)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    @property
    def available(self) -> bool:
        """Whether Redis is being asked (false for a while after it failed)."""
        return self._client is not None and monotonic() >= self._down_until

    def _failed(self, what: str, exc: BaseException) -> None:
        if monotonic() >= self._down_until:
            log.warning(
                "prediction cache: %s failed (%s: %s); predicting without the cache for %.0fs",
                what,
                type(exc).__name__,
                str(exc)[:200],
                RETRY_AFTER_S,
            )
        self._down_until = monotonic() + RETRY_AFTER_S

    # -- lookups -------------------------------------------------------------------------

    async def get(self, namespace: Namespace, hashes: list[str]) -> list[bytes | None] | None:
        """The entries of ``hashes`` (``None`` for each one missing), or ``None`` when Redis
        could not be asked. Lookups of one turn of the event loop share one ``MGET``."""
        if not self.available:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._lookups.append(_Lookup(namespace, [namespace.key(h) for h in hashes], future))
        if not self._looking:
            self._looking = True
            self._looker = loop.create_task(self._look_up())
        result: list[bytes | None] | None = await future
        return result

    async def _look_up(self) -> None:
        try:
            await asyncio.sleep(0)  # the other requests of this turn join the same MGET
            while self._lookups:
                batch, self._lookups = self._lookups, []
                keys = [k for item in batch for k in item.keys]
                try:
                    async with asyncio.timeout(self.timeout):
                        values = await self._client.mget(keys)
                    self.lookups += 1
                except Exception as exc:  # Redis away, slow or refusing: serve uncached
                    self._failed("a lookup", exc)
                    for item in batch:
                        if not item.future.done():
                            item.future.set_result(None)
                    continue
                start = 0
                for item in batch:
                    stop = start + len(item.keys)
                    if not item.future.done():
                        item.future.set_result(values[start:stop])
                    start = stop
        finally:
            self._looking = False
            for item in self._lookups:  # cancelled half-way: nobody waits for ever
                if not item.future.done():
                    item.future.set_result(None)
            self._lookups = []

    # -- writes --------------------------------------------------------------------------

    def put(self, namespace: Namespace, hashes: list[str], entries: list[bytes]) -> None:
        """Store entries in the background (one script call per version per turn);
        dropped when Redis is failing or too many are already waiting."""
        if not self.available or self._pending_writes + len(hashes) > MAX_PENDING_WRITES:
            return
        table = self._writes.setdefault(namespace, {})
        for h, entry in zip(hashes, entries, strict=True):
            table[namespace.key(h)] = entry
        self._pending_writes += len(hashes)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._writes:
                writes, self._writes = self._writes, {}
                self._pending_writes = 0
                for namespace, table in writes.items():
                    try:
                        async with asyncio.timeout(self.timeout * 4):
                            await self._script(
                                keys=[namespace.index, *table],
                                args=[namespace.ttl_ms, namespace.max_entries, *table.values()],
                            )
                        self.writes += 1
                    except Exception as exc:
                        metrics.record_cache(namespace.model, namespace.version, "write_error")
                        self._failed("a write", exc)
                        break
        finally:
            self._writer = None
            self._writes = {}
            self._pending_writes = 0
