"""The series the deployment's dashboards read besides the request metrics: experiment
traffic and rewards (counted when the policy counters are flushed), the canary's share,
CPU time per process and failed inference-log writes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests._waiting import wait_for
from tests.experiments.test_state import _Flaky
from tests.serving.conftest import Models, ServerThread, make_provider

import vigil.serving.app
from vigil.experiments.buffer import BufferedPolicyState
from vigil.experiments.state import SqlPolicyState, VariantStats
from vigil.monitor import prometheus
from vigil.serving import metrics
from vigil.serving.app import create_app
from vigil.serving.endpoints import metrics as endpoint_metrics
from vigil.storage.sql import Database


def _exported() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(prometheus.exposition().decode())
        for s in family.samples
    }


def _variant(name: str, endpoint: str, variant: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, (("endpoint", endpoint), ("variant", variant))


def test_flushed_counters_are_exported_once_the_store_took_them(tmp_path: Path) -> None:
    inner = SqlPolicyState(Database(f"sqlite:///{tmp_path / 'v.db'}"))
    seen: list[tuple[str, dict[str, VariantStats]]] = []

    def flushed(endpoint: str, deltas: object) -> None:
        assert isinstance(deltas, dict)
        seen.append((endpoint, dict(deltas)))
        endpoint_metrics.count_flushed(endpoint, deltas)

    buffer = BufferedPolicyState(_Flaky(inner), on_flushed=flushed)  # type: ignore[arg-type]
    for i in range(10):
        buffer.record("metrics-e", "a" if i < 7 else "b", 2.0, error=i == 0)
    buffer.add("metrics-e", "b", rewards=[1.0, -3.5, 0.5])
    buffer.flush()  # the store refuses this write: nothing is exported yet
    assert seen == [] and buffer.pending()
    assert _variant("vigil_endpoint_requests_total", "metrics-e", "a") not in _exported()
    buffer.flush()
    assert [endpoint for endpoint, _ in seen] == ["metrics-e"]
    got = _exported()
    assert got[_variant("vigil_endpoint_requests_total", "metrics-e", "a")] == 7
    assert got[_variant("vigil_endpoint_requests_total", "metrics-e", "b")] == 3
    assert got[_variant("vigil_endpoint_errors_total", "metrics-e", "a")] == 1
    assert got[_variant("vigil_endpoint_errors_total", "metrics-e", "b")] == 0
    assert got[_variant("vigil_endpoint_rewards_total", "metrics-e", "b")] == 3
    assert got[_variant("vigil_endpoint_reward_sum", "metrics-e", "b")] == -2.0  # may go down
    # The exported totals are the shared store's.
    stats = inner.stats("metrics-e")
    assert (stats["a"].requests, stats["b"].requests, stats["b"].reward_count) == (7, 3, 3)


def test_canary_share_is_a_gauge_per_endpoint() -> None:
    endpoint_metrics.set_canary_percent("metrics-canary", 25.0)
    endpoint_metrics.set_canary_percent("metrics-canary", 0.0)  # rolled back: it falls
    key = ("vigil_endpoint_canary_percent", (("endpoint", "metrics-canary"),))
    assert _exported()[key] == 0.0


def test_cpu_seconds_follow_the_process_cpu_time() -> None:
    before = _exported()[("vigil_process_cpu_seconds_total", ())]
    sum(i * i for i in range(300_000))  # burn a little CPU
    total = metrics.record_process_cpu()
    after = _exported()[("vigil_process_cpu_seconds_total", ())]
    assert after > before and abs(after - total) < 1e-6  # the counter holds all of it
    assert metrics.record_process_cpu() >= total


def test_capture_write_failures_exist_from_the_start() -> None:
    got = _exported()
    for record in ("answered", "rejected"):
        assert (("vigil_capture_write_failures_total", (("record", record),))) in got


def test_every_worker_refreshes_its_cpu_and_memory_without_being_scraped(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vigil.serving.app, "USAGE_INTERVAL_S", 0.05)
    with ServerThread(create_app(make_provider(models))):
        before = metrics.CPU_SECONDS._value.get()
        burn_until = time.process_time() + 0.3
        while time.process_time() < burn_until:  # CPU time of this process, not a sleep
            pass
        # Nobody asks /metrics: the worker's own refresh counts the CPU just used.
        wait_for(
            lambda: metrics.CPU_SECONDS._value.get() >= before + 0.25,
            10,
            what="the CPU counter to follow the process",
        )
