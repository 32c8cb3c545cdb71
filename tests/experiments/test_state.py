"""Shared policy state on SQLite, PostgreSQL and a real Redis: exact sums under concurrency,
compare-and-set that exactly one caller wins, and the worker-side buffer."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.experiments._endpoints import make_vigil
from tests.servers import needs

from vigil.experiments.buffer import BufferedPolicyState
from vigil.experiments.state import (
    LATENCY_BOUNDS_MS,
    PolicyStateStore,
    RedisPolicyState,
    SqlPolicyState,
    VariantStats,
    bucket_of,
)
from vigil.storage.sql import Database

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", needs("postgres", "postgres"), needs("redis", "redis")]


def _open(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[PolicyStateStore, str]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'vigil.db'}"
        return SqlPolicyState(Database(url)), url
    if kind == "postgres":
        url = request.getfixturevalue("migrated_postgres_url")
        return SqlPolicyState(Database(url)), url
    url = request.getfixturevalue("redis_url")
    return RedisPolicyState(url), url


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[PolicyStateStore, str, str]]:
    store, url = _open(str(request.param), request, tmp_path)
    yield store, str(request.param), url
    if isinstance(store, SqlPolicyState):
        store.database.dispose()
    else:
        store.close()


# -- the counters themselves ---------------------------------------------------------------


def test_latency_quantiles_follow_numpy_within_a_bucket() -> None:
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(mean=2.0, sigma=0.6, size=5000)  # median ~7.4 ms
    stats = VariantStats().add(requests=len(latencies), latency_ms=latencies.tolist())
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(latencies, q))
        bucket = bucket_of(exact)
        low = LATENCY_BOUNDS_MS[bucket - 1] if bucket else 0.0
        assert low <= stats.quantile_ms(q) <= LATENCY_BOUNDS_MS[bucket]
    assert stats.p99_ms == stats.quantile_ms(0.99)
    assert sum(stats.latency_buckets) == 5000


def test_rates_are_nan_without_data_and_exact_with() -> None:
    empty = VariantStats()
    assert all(math.isnan(x) for x in (empty.error_rate, empty.reward_mean, empty.accuracy))
    assert math.isnan(empty.p99_ms)
    stats = VariantStats().add(
        requests=8, errors=2, rewards=[1.0, 0.0, 1.0, 1.0], labels=5, labels_correct=4
    )
    assert (stats.error_rate, stats.reward_mean, stats.accuracy) == (0.25, 0.75, 0.8)
    assert (stats.reward_count, stats.reward_sum, stats.reward_sumsq) == (4, 3.0, 3.0)
    slow = VariantStats().add(latency_ms=[1e6])
    assert slow.p99_ms == LATENCY_BOUNDS_MS[-1]  # the open bucket answers its lower bound


def test_counters_round_trip_and_merge() -> None:
    a = VariantStats().add(requests=3, errors=1, latency_ms=[2.0, 60.0], rewards=[0.5])
    b = VariantStats().add(requests=2, latency_ms=[2.0], rewards=[1.5], labels=1)
    assert VariantStats.from_counters(a.counters()) == a
    merged = VariantStats.from_counters(a.counters()).merge(b)
    assert (merged.requests, merged.errors, merged.reward_count) == (5, 1, 2)
    assert merged.reward_sumsq == 0.25 + 2.25
    assert merged.latency_buckets[bucket_of(2.0)] == 2


# -- every backend ---------------------------------------------------------------------------


def test_add_and_read_back(backend: tuple[PolicyStateStore, str, str]) -> None:
    store, _, _ = backend
    assert store.stats("checkout") == {}
    store.add("checkout", "a", requests=2, errors=1, latency_ms=[3.0, 40.0], rewards=[1.0, 0.0])
    store.add(
        "checkout", "a", requests=1, latency_ms=[3.0], rewards=[0.5], labels=2, labels_correct=1
    )
    store.add("checkout", "b", requests=5)
    store.add("other", "a", requests=7)
    stats = store.stats("checkout")
    assert sorted(stats) == ["a", "b"]
    a = stats["a"]
    assert (a.requests, a.errors, a.reward_count, a.label_count, a.label_correct) == (3, 1, 3, 2, 1)
    assert a.reward_sum == pytest.approx(1.5) and a.reward_sumsq == pytest.approx(1.25)
    assert a.latency_buckets[bucket_of(3.0)] == 2 and a.latency_buckets[bucket_of(40.0)] == 1
    assert stats["b"] == VariantStats(requests=5)
    store.reset("checkout")
    assert store.stats("checkout") == {}
    assert store.stats("other")["a"].requests == 7


def test_control_is_compare_and_set(backend: tuple[PolicyStateStore, str, str]) -> None:
    store, _, _ = backend
    control = store.control("checkout")
    assert (control.revision, control.data) == (0, {})
    assert store.set_control("checkout", {"step": 0, "status": "ramping"}, expected_revision=0)
    assert not store.set_control("checkout", {"step": 9}, expected_revision=0)
    assert store.set_control("checkout", {"step": 1, "status": "ramping"}, expected_revision=1)
    assert not store.set_control("checkout", {"step": 2}, expected_revision=1)
    control = store.control("checkout")
    assert (control.revision, control.data) == (2, {"step": 1, "status": "ramping"})
    store.reset("checkout")
    assert store.control("checkout").revision == 0


def test_concurrent_threads_add_exact_totals_and_one_cas_winner(
    backend: tuple[PolicyStateStore, str, str],
) -> None:
    store, _, _ = backend
    threads, rounds = 8, 25
    start = threading.Barrier(threads)
    wins: list[bool] = []

    def work(i: int) -> None:
        start.wait()
        for r in range(rounds):
            store.add_many(
                "race",
                {
                    "a": VariantStats().add(requests=1, rewards=[float(r % 2)]),
                    "b": VariantStats().add(requests=2, errors=1, latency_ms=[5.0]),
                },
            )
        wins.append(store.set_control("race", {"by": i}, expected_revision=0))

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    stats = store.stats("race")
    assert stats["a"].requests == threads * rounds
    assert stats["a"].reward_sum == threads * (rounds // 2)
    assert (stats["b"].requests, stats["b"].errors) == (2 * threads * rounds, threads * rounds)
    assert stats["b"].latency_buckets[bucket_of(5.0)] == threads * rounds
    assert sorted(wins) == [False] * (threads - 1) + [True]
    assert store.control("race").revision == 1


_ADDER = """
import sys
from vigil.experiments.state import RedisPolicyState, SqlPolicyState, VariantStats
from vigil.storage.sql import Database
kind, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = RedisPolicyState(url) if kind == "redis" else SqlPolicyState(Database(url))
for i in range(n):
    store.add_many("procs", {"a": VariantStats().add(requests=1, rewards=[1.0])})
"""


@pytest.mark.slow
def test_concurrent_processes_add_exact_totals(backend: tuple[PolicyStateStore, str, str]) -> None:
    store, kind, url = backend
    store.stats("procs")  # migrate the schema once, before the processes race
    processes, each = 3, 60
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _ADDER, kind, url, str(each)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    a = store.stats("procs")["a"]
    assert (a.requests, a.reward_count, a.reward_sum) == (processes * each,) * 3


# -- the buffer and the factory ---------------------------------------------------------------


def test_buffer_sums_in_memory_and_flushes_in_one_write(tmp_path: Path) -> None:
    store = SqlPolicyState(Database(f"sqlite:///{tmp_path / 'v.db'}"))
    buffer = BufferedPolicyState(store)
    for i in range(100):
        buffer.record("e", "a" if i % 4 else "b", 2.0, error=i % 10 == 0)
    buffer.add("e", "a", rewards=[1.0, 0.0])
    assert store.stats("e") == {} and buffer.pending()
    buffer.flush()
    assert not buffer.pending()
    stats = store.stats("e")
    assert (stats["a"].requests, stats["b"].requests) == (75, 25)
    assert stats["a"].errors + stats["b"].errors == 10
    assert stats["a"].reward_count == 2
    buffer.flush()  # nothing pending: nothing changes
    assert store.stats("e")["a"].requests == 75


class _Flaky:
    """A store whose first write fails."""

    def __init__(self, inner: SqlPolicyState) -> None:
        self.inner = inner
        self.fail = True

    def add_many(self, endpoint: str, deltas: dict[str, VariantStats]) -> None:
        if self.fail:
            self.fail = False
            raise ConnectionError("database unreachable")
        self.inner.add_many(endpoint, deltas)


def test_a_failed_flush_keeps_its_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inner = SqlPolicyState(Database(f"sqlite:///{tmp_path / 'v.db'}"))
    buffer = BufferedPolicyState(_Flaky(inner))  # type: ignore[arg-type]
    buffer.record("e", "a", 1.0, error=False)
    buffer.flush()
    assert "retrying later" in caplog.text and buffer.pending()
    buffer.record("e", "a", 1.0, error=True)
    buffer.flush()
    assert (inner.stats("e")["a"].requests, inner.stats("e")["a"].errors) == (2, 1)


def test_factory_picks_redis_when_configured(tmp_path: Path, redis_url: str) -> None:
    assert isinstance(make_vigil(tmp_path / "a").policy_state(), SqlPolicyState)
    store = make_vigil(tmp_path / "b", redis_url=redis_url).policy_state()
    assert isinstance(store, RedisPolicyState)
    assert "127.0.0.1" in repr(store)
    store.add("e", "a", requests=1)
    assert store.stats("e")["a"].requests == 1
