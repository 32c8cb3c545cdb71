"""Shared experiment policy state: per-variant counters and canary control, for all workers.

Every worker (and, scaled out, every replica) routing an endpoint adds what it saw to the
same store: requests, errors, a latency histogram, feedback rewards and labels, per
variant. The counters are plain sums, so updates are atomic increments that never lose a
concurrent update and never need a lock:

- :class:`SqlPolicyState` (default): ``INSERT ... ON CONFLICT DO UPDATE SET value = value +
  excluded.value`` on SQLite or PostgreSQL, one row per ``(endpoint, variant, counter)``;
- :class:`RedisPolicyState` (when ``VIGIL_REDIS_URL`` is set): ``HINCRBY`` /
  ``HINCRBYFLOAT`` in one hash per endpoint.

The *control* record (where a canary's ramp stands) changes by compare-and-set on a
revision number, so when every worker's controller decides the same transition at the same
moment exactly one of them applies it.

Workers buffer their counters and flush them about every half second
(:class:`~vigil.experiments.buffer.BufferedPolicyState`), so :meth:`PolicyStateStore.stats`
lags the traffic by that much.

>>> stats = VariantStats().add(requests=3, errors=1, latency_ms=[4.0, 9.0, 40.0])
>>> round(stats.error_rate, 3), stats.latency_buckets[bucket_of(4.0)]
(0.333, 1)
>>> VariantStats.from_counters(stats.counters()) == stats
True
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, select, update

from vigil._redact import redact_url
from vigil.errors import require
from vigil.experiments.state_tables import PolicyControlRow, PolicyCounterRow
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Table

    from vigil.storage.sql import Database

__all__ = [
    "LATENCY_BOUNDS_MS",
    "Control",
    "PolicyStateStore",
    "RedisPolicyState",
    "SqlPolicyState",
    "VariantStats",
    "bucket_of",
]

LATENCY_BOUNDS_MS: tuple[float, ...] = (
    *(0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750),
    *(1000, 1500, 2000, 3000, 5000, 10000, 30000),
)
"""Upper bounds (inclusive) of the latency histogram's buckets; one more bucket holds the
rest. Roughly 1.5x apart, so a quantile read from them is within about 25 %."""

_N_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
_INT_COUNTERS = ("requests", "errors", "reward_count", "label_count", "label_correct")
_FLOAT_COUNTERS = ("reward_sum", "reward_sumsq")
_BUCKET_NAMES = tuple(f"lat_{i:02d}" for i in range(_N_BUCKETS))
COUNTERS = frozenset((*_INT_COUNTERS, *_FLOAT_COUNTERS, *_BUCKET_NAMES))
"""Names of the stored counters of one variant."""


def bucket_of(latency_ms: float) -> int:
    """The histogram bucket of a latency: the first whose bound is at least it.

    >>> bucket_of(0.2), bucket_of(1.0), bucket_of(1.1), bucket_of(1e9)
    (0, 1, 2, 25)
    """
    return bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@dataclass
class VariantStats:
    """What one variant of an endpoint has seen, summed over every worker.

    Rates are ``NaN`` while there is nothing to divide by (no requests, rewards or labels).
    """

    requests: int = 0
    errors: int = 0
    """Server-side failures (prediction errors, 5xx) and the model's refusals of
    well-formed input (``model_rejected_input``), not input rejected by validation."""
    latency_buckets: list[int] = field(default_factory=lambda: [0] * _N_BUCKETS)
    """Counts per bucket of :data:`LATENCY_BOUNDS_MS`, plus one for slower requests."""
    reward_count: int = 0
    reward_sum: float = 0.0
    reward_sumsq: float = 0.0
    label_count: int = 0
    label_correct: int = 0

    @property
    def error_rate(self) -> float:
        return _ratio(self.errors, self.requests)

    @property
    def reward_mean(self) -> float:
        return _ratio(self.reward_sum, self.reward_count)

    @property
    def accuracy(self) -> float:
        return _ratio(self.label_correct, self.label_count)

    @property
    def p99_ms(self) -> float:
        return self.quantile_ms(0.99)

    def quantile_ms(self, q: float) -> float:
        """Latency quantile ``q``, interpolated linearly inside its bucket (as Prometheus'
        ``histogram_quantile`` does); ``NaN`` without requests. The open last bucket
        answers its lower bound.

        >>> VariantStats().add(latency_ms=[3.0] * 100).quantile_ms(0.5)
        2.5
        """
        total = sum(self.latency_buckets)
        if total == 0:
            return math.nan
        rank = q * total
        seen = 0
        for i, count in enumerate(self.latency_buckets):
            if count and seen + count >= rank:
                if i == len(LATENCY_BOUNDS_MS):
                    return float(LATENCY_BOUNDS_MS[-1])
                low = LATENCY_BOUNDS_MS[i - 1] if i else 0.0
                return float(low + (LATENCY_BOUNDS_MS[i] - low) * (rank - seen) / count)
            seen += count
        return float(LATENCY_BOUNDS_MS[-1])  # pragma: no cover (rank <= total)

    def share_above_ms(self, limit: float) -> float:
        """Share of requests slower than ``limit`` ms, interpolated inside its bucket as
        :meth:`quantile_ms` is (its inverse); ``NaN`` without requests.

        >>> VariantStats().add(latency_ms=[3.0] * 50 + [40.0] * 50).share_above_ms(20.0)
        0.5
        """
        total = sum(self.latency_buckets)
        if total == 0:
            return math.nan
        above = 0.0
        for i, count in enumerate(self.latency_buckets):
            low = LATENCY_BOUNDS_MS[i - 1] if i else 0.0
            high = LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else math.inf
            if low >= limit:
                above += count
            elif high > limit and math.isfinite(high):
                above += count * (high - limit) / (high - low)
        return above / total

    def add(
        self,
        *,
        requests: int = 0,
        errors: int = 0,
        latency_ms: Iterable[float] | None = None,
        rewards: Iterable[float] | None = None,
        labels_correct: int = 0,
        labels: int = 0,
    ) -> VariantStats:
        """Add observations in place; returns ``self``."""
        self.requests += requests
        self.errors += errors
        for ms in latency_ms or ():
            self.latency_buckets[bisect_left(LATENCY_BOUNDS_MS, ms)] += 1
        for reward in rewards or ():
            self.reward_count += 1
            self.reward_sum += reward
            self.reward_sumsq += reward * reward
        self.label_correct += labels_correct
        self.label_count += labels
        return self

    def merge(self, other: VariantStats) -> VariantStats:
        """Add ``other``'s counts in place; returns ``self``."""
        for name in (*_INT_COUNTERS, *_FLOAT_COUNTERS):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency_buckets = [
            a + b for a, b in zip(self.latency_buckets, other.latency_buckets, strict=True)
        ]
        return self

    def counters(self) -> dict[str, float]:
        """The non-zero counters by stored name (what a store adds)."""
        out: dict[str, float] = {
            name: getattr(self, name) for name in (*_INT_COUNTERS, *_FLOAT_COUNTERS)
        }
        out.update(zip(_BUCKET_NAMES, self.latency_buckets, strict=True))
        return {name: value for name, value in out.items() if value}

    @classmethod
    def from_counters(cls, counters: Mapping[str, float]) -> VariantStats:
        """Rebuild from stored counters (unknown names are ignored: newer writers)."""
        stats = cls()
        for name in _INT_COUNTERS:
            setattr(stats, name, round(counters.get(name, 0)))
        for name in _FLOAT_COUNTERS:
            setattr(stats, name, float(counters.get(name, 0.0)))
        stats.latency_buckets = [round(counters.get(name, 0)) for name in _BUCKET_NAMES]
        return stats


@dataclass(frozen=True)
class Control:
    """Where an endpoint's policy stands, and the revision to compare-and-set it against.

    ``data`` holds ``{"step": int, "status": "ramping" | "rolled_back" | "promoted" |
    "stopped", "step_started_at": unix seconds}`` for a canary; empty (revision 0) when
    nothing was ever written, which means step 0, ramping, started now.
    """

    revision: int = 0
    data: dict[str, Any] = field(default_factory=dict)


class PolicyStateStore(Protocol):
    """Counters and control shared by every worker and replica routing an endpoint."""

    def add(
        self,
        endpoint: str,
        variant: str,
        *,
        requests: int = 0,
        errors: int = 0,
        latency_ms: list[float] | None = None,
        rewards: list[float] | None = None,
        labels_correct: int = 0,
        labels: int = 0,
    ) -> None:
        """Add observations of one variant (atomic, safe from any number of workers)."""
        ...

    def add_many(self, endpoint: str, deltas: Mapping[str, VariantStats]) -> None:
        """Add the counts of several variants at once (what a worker's buffer flushes)."""
        ...

    def stats(self, endpoint: str) -> dict[str, VariantStats]:
        """Totals per variant (variants never seen are absent)."""
        ...

    def control(self, endpoint: str) -> Control:
        """The current control record (revision 0 and no data when never set)."""
        ...

    def set_control(self, endpoint: str, data: dict[str, Any], *, expected_revision: int) -> bool:
        """Replace the control data if its revision is still ``expected_revision``; exactly one
        of several concurrent callers with the same expectation wins (``True``)."""
        ...

    def reset(self, endpoint: str) -> None:
        """Forget every counter and the control record of ``endpoint`` (a new experiment)."""
        ...


class _AddOne:
    """``add`` in terms of ``add_many``."""

    def add_many(self, endpoint: str, deltas: Mapping[str, VariantStats]) -> None:
        raise NotImplementedError

    def add(
        self,
        endpoint: str,
        variant: str,
        *,
        requests: int = 0,
        errors: int = 0,
        latency_ms: list[float] | None = None,
        rewards: list[float] | None = None,
        labels_correct: int = 0,
        labels: int = 0,
    ) -> None:
        delta = VariantStats().add(
            requests=requests,
            errors=errors,
            latency_ms=latency_ms,
            rewards=rewards,
            labels_correct=labels_correct,
            labels=labels,
        )
        self.add_many(endpoint, {variant: delta})


class SqlPolicyState(_AddOne):
    """Policy state in vigil's SQL database (tables of migration ``0005_policy_state``)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._counters: Table = PolicyCounterRow.__table__  # type: ignore[assignment]
        self._control: Table = PolicyControlRow.__table__  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SqlPolicyState({self.database!r})"

    def add_many(self, endpoint: str, deltas: Mapping[str, VariantStats]) -> None:
        # Sorted keys: two PostgreSQL transactions upserting the same rows lock them in the
        # same order, so they queue instead of deadlocking.
        rows = sorted(
            (
                {"endpoint": endpoint, "variant": variant, "counter": name, "value": float(value)}
                for variant, delta in deltas.items()
                for name, value in delta.counters().items()
            ),
            key=lambda r: (r["variant"], r["counter"]),
        )
        if not rows:
            return
        table = self._counters
        stmt = self.database.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.endpoint, table.c.variant, table.c.counter],
            set_={"value": table.c.value + stmt.excluded.value},
        )
        with self.database.session(write=True) as session:
            session.connection().execute(stmt, rows)

    def stats(self, endpoint: str) -> dict[str, VariantStats]:
        table = self._counters
        query = select(table.c.variant, table.c.counter, table.c.value).where(
            table.c.endpoint == endpoint
        )
        found: dict[str, dict[str, float]] = {}
        with self.database.session() as session:
            for variant, counter, value in session.connection().execute(query):
                found.setdefault(variant, {})[counter] = value
        return {v: VariantStats.from_counters(c) for v, c in sorted(found.items())}

    def control(self, endpoint: str) -> Control:
        table = self._control
        query = select(table.c.revision, table.c.data).where(table.c.endpoint == endpoint)
        with self.database.session() as session:
            row = session.connection().execute(query).first()
        return Control() if row is None else Control(int(row[0]), dict(row[1]))

    def set_control(self, endpoint: str, data: dict[str, Any], *, expected_revision: int) -> bool:
        table = self._control
        with self.database.session(write=True) as session:
            conn = session.connection()
            if expected_revision == 0:
                values = {"endpoint": endpoint, "revision": 1, "data": data, "updated_at": utcnow()}
                stmt = self.database.insert(table).values(values).on_conflict_do_nothing()
                # RETURNING, not rowcount: psycopg does not report it for ON CONFLICT.
                return conn.execute(stmt.returning(table.c.revision)).first() is not None
            stmt = (
                update(table)
                .where(table.c.endpoint == endpoint, table.c.revision == expected_revision)
                .values(revision=expected_revision + 1, data=data, updated_at=utcnow())
                .returning(table.c.revision)
            )
            return conn.execute(stmt).first() is not None

    def reset(self, endpoint: str) -> None:
        with self.database.session(write=True) as session:
            conn = session.connection()
            conn.execute(delete(self._counters).where(self._counters.c.endpoint == endpoint))
            conn.execute(delete(self._control).where(self._control.c.endpoint == endpoint))


# KEYS[1] = control hash, ARGV = expected revision, new data (JSON). Runs atomically.
_CAS = """
local current = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'revision', current + 1, 'data', ARGV[2])
return 1
"""


class RedisPolicyState(_AddOne):
    """Policy state in Redis: one hash of counters and one control hash per endpoint.

    Counter fields are ``VARIANT|COUNTER`` (names cannot hold ``|``); integers use
    ``HINCRBY`` and sums ``HINCRBYFLOAT``, sent together in one ``MULTI`` so a reader never
    sees half a flush. ``prefix`` namespaces the keys (several vigil installations, tests).
    """

    def __init__(self, url: str, *, prefix: str = "vigil") -> None:
        redis = require("redis", "redis")
        self.url = url
        self.prefix = prefix
        self.client: Any = redis.Redis.from_url(url, decode_responses=True)
        self._cas = self.client.register_script(_CAS)

    def __repr__(self) -> str:
        return f"RedisPolicyState({redact_url(self.url)!r})"

    def _key(self, endpoint: str, kind: str) -> str:
        return f"{self.prefix}:policy:{endpoint}:{kind}"

    def add_many(self, endpoint: str, deltas: Mapping[str, VariantStats]) -> None:
        key = self._key(endpoint, "counters")
        pipe = self.client.pipeline(transaction=True)
        queued = False
        for variant, delta in deltas.items():
            for name, value in delta.counters().items():
                if name in _FLOAT_COUNTERS:
                    pipe.hincrbyfloat(key, f"{variant}|{name}", float(value))
                else:
                    pipe.hincrby(key, f"{variant}|{name}", int(value))
                queued = True
        if queued:
            pipe.execute()

    def stats(self, endpoint: str) -> dict[str, VariantStats]:
        found: dict[str, dict[str, float]] = {}
        for field_name, value in self.client.hgetall(self._key(endpoint, "counters")).items():
            variant, _, counter = field_name.rpartition("|")
            found.setdefault(variant, {})[counter] = float(value)
        return {v: VariantStats.from_counters(c) for v, c in sorted(found.items())}

    def control(self, endpoint: str) -> Control:
        revision, data = self.client.hmget(self._key(endpoint, "control"), "revision", "data")
        if revision is None:
            return Control()
        return Control(int(revision), json.loads(data) if data else {})

    def set_control(self, endpoint: str, data: dict[str, Any], *, expected_revision: int) -> bool:
        won = self._cas(
            keys=[self._key(endpoint, "control")], args=[expected_revision, json.dumps(data)]
        )
        return bool(int(won))

    def reset(self, endpoint: str) -> None:
        self.client.delete(self._key(endpoint, "counters"), self._key(endpoint, "control"))

    def close(self) -> None:
        self.client.close()
