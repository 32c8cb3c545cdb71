"""Request metrics added once per loop turn: the same values as one by one."""

from __future__ import annotations

import asyncio

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from vigil.serving import metrics


def _samples(histogram: Histogram) -> list[tuple[str, str | None, float]]:
    return [(s.name, s.labels.get("le"), s.value) for s in histogram.collect()[0].samples]


def test_observing_many_at_once_equals_observing_one_by_one():
    rng = np.random.default_rng(7)
    bounds = (0.0005, 0.001, 0.0025, 0.005, 0.01)
    # Values on the bounds themselves too: a bound's bucket takes its own value.
    amounts = [*rng.exponential(0.003, size=500).tolist(), *bounds, 0.0, 1e9]
    one, many = (
        Histogram(name, "test", buckets=bounds, registry=CollectorRegistry())
        for name in ("one_by_one", "at_once")
    )
    for amount in amounts:
        one.observe(amount)
    metrics.observe_many(many, amounts)
    got = [(n.replace("at_once", "one_by_one"), le, v) for n, le, v in _samples(many)]
    expected = _samples(one)
    assert [s[:2] for s in got] == [s[:2] for s in expected]
    assert np.allclose([s[2] for s in got], [s[2] for s in expected], rtol=1e-12)


def test_the_tally_adds_a_turns_requests_and_the_in_flight_change():
    count = metrics.REQUESTS.labels("m", "1", "tally_test", "2xx", "http")
    errors = metrics.REQUESTS.labels("m", "1", "tally_test", "4xx", "http")
    latency = metrics.LATENCY.labels("m", "1", "tally_test", "http")

    def values() -> tuple[float, float, float, float]:
        sums = {
            s.name: s.value
            for s in metrics.LATENCY.collect()[0].samples
            if s.labels.get("route") == "tally_test"
        }
        return (
            count._value.get(),
            errors._value.get(),
            metrics.IN_FLIGHT._value.get(),
            sums.get("vigil_request_duration_seconds_count", 0.0),
        )

    async def main() -> list[tuple[float, float, float, float]]:
        tally = metrics.RequestTally()
        seen = [values()]
        for status in (200, 200, 422):
            tally.started()
            tally.answered("tally_test", "m", "1", status, 0.002)
        tally.started()  # one still in flight
        seen.append(values())  # nothing added yet: the loop has not turned
        await asyncio.sleep(0)
        seen.append(values())
        tally.answered("tally_test", "m", "1", 200, 0.002)
        metrics.flush()  # what /metrics does before reading
        seen.append(values())
        return seen

    before, queued, turned, flushed = asyncio.run(main())
    assert queued == before
    assert turned[0] - before[0] == 2 and turned[1] - before[1] == 1
    assert turned[2] - before[2] == 1  # the request still in flight
    assert turned[3] - before[3] == 3
    assert flushed[0] - before[0] == 3 and flushed[2] == before[2] and flushed[3] - before[3] == 4
    assert latency is metrics.LATENCY.labels("m", "1", "tally_test", "http")
