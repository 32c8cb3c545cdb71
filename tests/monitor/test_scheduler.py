"""Scheduled monitoring: one worker at a time (a SQL lease), and the Prometheus gauges."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.monitor._data import Trained, capture_sink, make_frame, write_traffic

from vigil.app import Vigil
from vigil.monitor import prometheus
from vigil.monitor.cycle import CycleResult
from vigil.monitor.scheduler import LEASE, MonitorScheduler, acquire_lease, release_lease
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.windows import parse_window
from vigil.storage.sql import utcnow


def test_lease_is_held_by_one_worker_until_released_or_expired(empty_vigil: Vigil) -> None:
    db = empty_vigil.database
    ttl = timedelta(minutes=5)
    now = utcnow()
    assert acquire_lease(db, LEASE, "a", ttl, now=now)
    assert not acquire_lease(db, LEASE, "b", ttl, now=now)
    assert acquire_lease(db, LEASE, "a", ttl, now=now + timedelta(minutes=1))  # renewal
    assert not acquire_lease(db, LEASE, "b", ttl, now=now + timedelta(minutes=5))
    assert acquire_lease(db, LEASE, "b", ttl, now=now + timedelta(minutes=7))  # a died
    release_lease(db, LEASE, "b")
    assert acquire_lease(db, LEASE, "a", ttl)


def test_the_lease_is_renewed_while_a_long_cycle_runs(
    empty_vigil: Vigil, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle may run longer than the lease lives (its timeout is three intervals, the
    lease two): while it runs, its worker renews the lease, so no other worker starts a
    cycle beside it. Once it ends, renewal stops."""
    db = empty_vigil.database
    scheduler = MonitorScheduler(empty_vigil, MonitorSettings(interval_s=60))
    scheduler.ttl = timedelta(seconds=0.9)  # renewed every 0.3 s
    seen: list[bool] = []

    def long_cycle() -> CycleResult:
        time.sleep(2.0)  # more than twice the lease's life
        seen.append(acquire_lease(db, LEASE, "another-worker", scheduler.ttl))
        return CycleResult(windows=[], events=[])

    monkeypatch.setattr(scheduler, "_cycle_here", long_cycle)
    assert scheduler.tick() is not None and scheduler.runs == 1
    assert seen == [False]  # still held: renewed during the cycle
    time.sleep(1.2)  # no cycle runs: the lease lapses
    assert acquire_lease(db, LEASE, "another-worker", scheduler.ttl)
    assert [t.name for t in threading.enumerate()].count("vigil-monitor-lease") == 0


def _samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(prometheus.exposition().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_one_worker_computes_every_worker_exports(vigil: Vigil, trained: Trained) -> None:
    start, _ = parse_window("1h").bounds(utcnow() - timedelta(hours=3))
    sink = capture_sink(vigil)
    write_traffic(
        sink,
        trained.model,
        make_frame(300, seed=3, shift_age=True, shift_plan=True),
        start=start,
        batch=3,
        route="churn_gauges",
    )
    sink.close()
    settings = MonitorSettings(interval_s=60)
    first, second = MonitorScheduler(vigil, settings), MonitorScheduler(vigil, settings)
    result = first.tick()
    assert result is not None and len(result.windows) == 1
    assert [e.rule for e in result.events] == ["dataset_drift"]
    assert second.tick() is None  # the lease is taken: this worker only refreshes gauges
    assert (first.runs, second.runs) == (1, 0)

    values = _samples("vigil_monitor_value")
    base = (("model", "churn"), ("route", "churn_gauges"), ("version", "1"))

    def value(metric: str, feature: str = "") -> float:
        key = tuple(sorted((*base, ("metric", metric), ("feature", feature))))
        return values[key]

    window = result.windows[0]
    assert value("drift.dataset") == 1.0
    assert value("traffic.rows") == 300.0
    assert value("drift.statistic", "age") == window.value("drift.statistic", "age")
    assert value("quality.missing_rate", "plan") == 0.0
    features = {dict(k)["feature"] for k in values if dict(k)["route"] == "churn_gauges"}
    assert features == {"", "age", "income", "plan"}  # the signature's features only
    ends = _samples("vigil_monitor_window_end_timestamp_seconds")
    assert ends[base] == window.end.timestamp()
    firing = _samples("vigil_alerts_firing")
    key = (("alertname", "dataset_drift"), ("model", "churn"), ("severity", "warning"))
    assert firing[key] == 1.0
