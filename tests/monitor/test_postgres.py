"""The series, the alert claims and the lease on a real PostgreSQL server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from tests.monitor._series import T0, store_window

from vigil.monitor.alerts import evaluate_rules, list_alerts
from vigil.monitor.rules import AlertRule
from vigil.monitor.scheduler import LEASE, acquire_lease
from vigil.monitor.series import latest_points, read_series, stored_windows
from vigil.storage.sql import Database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(migrated_postgres_url: str) -> Iterator[Database]:
    db = Database(migrated_postgres_url)
    yield db
    db.dispose()


def test_series_round_trip_and_replacement(pg: Database) -> None:
    store_window(pg, 0, {"drift.share": 0.1, ("drift.statistic", "age"): 0.02})
    store_window(pg, 1, {"drift.share": 0.7, ("drift.statistic", "age"): 0.4})
    store_window(pg, 1, {"drift.share": 0.6, ("drift.statistic", "age"): 0.3})  # recomputed
    points = read_series(pg, metrics=["drift.share", "drift.statistic"], window="1h")
    assert [(p.metric, p.feature, p.window_start, p.value) for p in points] == [
        ("drift.share", None, T0, 0.1),
        ("drift.statistic", "age", T0, 0.02),
        ("drift.share", None, T0 + timedelta(hours=1), 0.6),
        ("drift.statistic", "age", T0 + timedelta(hours=1), 0.3),
    ]
    assert [w.start for w in stored_windows(pg, window="1h")] == [T0, T0 + timedelta(hours=1)]
    assert latest_points(points) == {
        ("churn", 1, "native_predict", "drift.share", ""): 0.6,
        ("churn", 1, "native_predict", "drift.statistic", "age"): 0.3,
    }


def test_concurrent_evaluations_write_each_transition_once(migrated_postgres_url: str) -> None:
    databases = [Database(migrated_postgres_url) for _ in range(4)]
    store_window(databases[0], 0, {"traffic.error_rate": 0.5})
    rule = AlertRule(name="errors", metric="traffic.error_rate", threshold=0.05)
    barrier = threading.Barrier(4)
    written: list[int] = []

    def worker(db: Database) -> None:
        barrier.wait()
        written.append(len(evaluate_rules(db, [rule], since=T0, window="1h", claim="c")))

    threads = [threading.Thread(target=worker, args=(d,)) for d in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(written) == [0, 0, 0, 1]
    assert [e.status for e in list_alerts(databases[0], include_resolved=True)] == ["firing"]
    for d in databases:
        d.dispose()


def test_lease_on_postgres(pg: Database) -> None:
    ttl = timedelta(minutes=5)
    assert acquire_lease(pg, LEASE, "a", ttl)
    assert not acquire_lease(pg, LEASE, "b", ttl)
    assert acquire_lease(pg, LEASE, "a", ttl)
