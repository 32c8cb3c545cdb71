"""Prometheus metrics of the serving core, created once for the whole process.

Labels are bounded: ``model`` and ``version`` only ever take the values of models the
server actually serves (never a name a client typed), ``route`` is one of a fixed set of
operation names, ``status`` a class (``2xx``/``4xx``/``5xx``; a gRPC call counts the class
of the HTTP status its error maps from), ``kind`` an error code from :mod:`vigil.errors`
and ``protocol`` the transport (``http`` or ``grpc``). Children are bound once and cached, so a request pays a few
dictionary lookups and lock-protected additions.

They live on :data:`vigil.monitor.prometheus.REGISTRY`, with the monitoring gauges;
:func:`vigil.monitor.prometheus.exposition` answers ``/metrics`` (all workers' values).

>>> before = REQUESTS.labels("m", "1", "native_predict", "2xx", "http")._value.get()
>>> record_request("native_predict", "m", "1", 200, 0.003)
>>> REQUESTS.labels("m", "1", "native_predict", "2xx", "http")._value.get() - before
1.0
"""

from __future__ import annotations

import asyncio
import os
import weakref
from bisect import bisect_left
from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from vigil.monitor.prometheus import REGISTRY

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_QUEUE_BUCKETS = (0.0, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

REQUESTS = Counter(
    "vigil_requests",
    "Requests answered, by model version, route, status class and protocol (http, grpc).",
    ("model", "version", "route", "status", "protocol"),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "vigil_request_duration_seconds",
    "Time from the request's first byte to the response, by model version, route and protocol.",
    ("model", "version", "route", "protocol"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
ERRORS = Counter(
    "vigil_errors",
    "Requests answered with an error, by route, error kind and protocol.",
    ("route", "kind", "protocol"),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "vigil_in_flight_requests",
    "Requests being processed right now.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "vigil_batch_size",
    "Rows per model call made by the micro-batcher.",
    ("model", "version"),
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
QUEUE_TIME = Histogram(
    "vigil_queue_time_seconds",
    "Time a request waited in the micro-batcher before its model call started.",
    ("model", "version"),
    buckets=_QUEUE_BUCKETS,
    registry=REGISTRY,
)
PREDICT_TIME = Histogram(
    "vigil_predict_duration_seconds",
    "Duration of one vectorised model call (a whole batch).",
    ("model", "version"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
ROWS = Counter(
    "vigil_predicted_rows",
    "Rows predicted, by model version.",
    ("model", "version"),
    registry=REGISTRY,
)
MODEL_LOAD = Gauge(
    "vigil_model_load_seconds",
    "Seconds taken to load and warm a model version.",
    ("model", "version"),
    multiprocess_mode="max",
    registry=REGISTRY,
)
RESIDENT_MEMORY = Gauge(
    "vigil_process_resident_memory_bytes",
    "Resident memory of the serving process (one series per worker pid with several "
    "workers), updated at start-up and on every scrape it answers.",
    multiprocess_mode="liveall",
    registry=REGISTRY,
)

CPU_SECONDS = Counter(
    "vigil_process_cpu_seconds",
    "CPU time (user and system) used by the serving worker processes (summed over "
    "workers), brought up to date every few seconds and on every scrape.",
    registry=REGISTRY,
)
CAPTURE_WRITE_FAILURES = Counter(
    "vigil_capture_write_failures",
    "Writes to the inference log that failed: 'answered' fails the requests it held "
    "(503), 'rejected' loses the log line of a request already answered with an error.",
    ("record",),
    registry=REGISTRY,
)
for _record in ("answered", "rejected"):  # both series exist from the start, at 0
    CAPTURE_WRITE_FAILURES.labels(_record)

PREDICTION_CACHE = Counter(
    "vigil_prediction_cache",
    "Prediction cache outcomes by model version: 'hit' and 'miss' count requests looked "
    "up, 'error' a lookup Redis could not answer in time (the request was predicted), "
    "'write_error' a failed write of new entries.",
    ("model", "version", "outcome"),
    registry=REGISTRY,
)
CACHE_OUTCOMES = ("hit", "miss", "error", "write_error")


@cache
def _cache_child(model: str, version: str, outcome: str) -> Any:
    return PREDICTION_CACHE.labels(model, version, outcome)


def record_cache(model: str, version: str, outcome: str) -> None:
    """Count one prediction cache outcome (see :data:`PREDICTION_CACHE`)."""
    _cache_child(model, version, outcome).inc()


_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


@cache
def _request_children(
    route: str, model: str, version: str, status: str, protocol: str
) -> tuple[Any, Any]:
    return (
        REQUESTS.labels(model, version, route, status, protocol),
        LATENCY.labels(model, version, route, protocol),
    )


@cache
def _error_child(route: str, kind: str, protocol: str) -> Any:
    return ERRORS.labels(route, kind, protocol)


@cache
def batch_children(model: str, version: str) -> tuple[Any, Any, Any, Any]:
    """The pre-bound (batch size, queue time, predict time, rows) children of one version."""
    return (
        BATCH_SIZE.labels(model, version),
        QUEUE_TIME.labels(model, version),
        PREDICT_TIME.labels(model, version),
        ROWS.labels(model, version),
    )


def record_request(
    route: str, model: str, version: str, status: int, seconds: float, protocol: str = "http"
) -> None:
    """Count one answered request and observe its latency."""
    count, latency = _request_children(
        route, model, version, _STATUS_CLASS[status // 100], protocol
    )
    count.inc()
    latency.observe(seconds)


class RequestTally:
    """The HTTP app's per-request metrics, added to Prometheus once per turn of the event
    loop instead of once per request: the in-flight gauge moves by the turn's net change
    and each request counter by the turn's count (one locked addition each, where every
    request paid three); latencies reach their histogram a turn at a time
    (:func:`observe_many`). :func:`flush` (the ``/metrics`` route calls it) adds what is
    pending at once.

    >>> import asyncio
    >>> async def main():
    ...     tally = RequestTally()
    ...     before = REQUESTS.labels("m", "1", "tallied", "2xx", "http")._value.get()
    ...     for _ in range(3):
    ...         tally.started()
    ...         tally.answered("tallied", "m", "1", 200, 0.001)
    ...     queued = REQUESTS.labels("m", "1", "tallied", "2xx", "http")._value.get() - before
    ...     await asyncio.sleep(0)  # the loop turns: the tally is added
    ...     return queued, REQUESTS.labels("m", "1", "tallied", "2xx", "http")._value.get() - before
    >>> asyncio.run(main())
    (0.0, 3.0)
    """

    __slots__ = ("__weakref__", "_answered", "_in_flight", "_loop")

    def __init__(self) -> None:
        self._in_flight = 0
        """Requests started less requests answered since the last flush."""
        self._answered: dict[tuple[str, str, str, int], list[float]] = {}
        """Latencies since the last flush by (route, model, version, status): a turn's
        requests are mostly of one key, so a flush looks up children per key, not per
        request."""
        self._loop: Any = None
        """The loop a flush is scheduled on (``None``: none is)."""
        _TALLIES.add(self)

    def started(self) -> None:
        """A request began (counted in flight)."""
        self._in_flight += 1
        if self._loop is None:
            self._schedule()

    def answered(self, route: str, model: str, version: str, status: int, seconds: float) -> None:
        """A request was answered (no longer in flight; counted, its latency observed)."""
        self._in_flight -= 1
        key = (route, model, version, status)
        latencies = self._answered.get(key)
        if latencies is None:
            self._answered[key] = [seconds]
        else:
            latencies.append(seconds)
        if self._loop is None:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): at once
            self.flush()
            return
        self._loop = loop
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Add what is pending to the Prometheus metrics."""
        self._loop = None
        moved, self._in_flight = self._in_flight, 0
        if moved:
            IN_FLIGHT.inc(moved)
        answered, self._answered = self._answered, {}
        if not answered:
            return
        counts: dict[Any, int] = {}
        latencies: dict[Any, list[float]] = {}
        for (route, model, version, status), seconds in answered.items():
            count, latency = _request_children(
                route, model, version, _STATUS_CLASS[status // 100], "http"
            )
            counts[count] = counts.get(count, 0) + len(seconds)
            latencies.setdefault(latency, []).extend(seconds)
        for count, n in counts.items():
            count.inc(n)
        for latency, amounts in latencies.items():
            observe_many(latency, amounts)


def observe_many(histogram: Any, amounts: list[float]) -> None:
    """``histogram.observe(a)`` for every amount, with one locked addition per bucket
    touched and one for the sum (``observe`` takes two per amount). Reaches into
    ``prometheus_client``'s histogram child (its bounds, buckets and sum, as its own
    ``observe`` fills them); on a version laid out otherwise, observes one by one.

    >>> h = Histogram("many_demo", "demo", buckets=(1.0, 2.0), registry=None)
    >>> observe_many(h, [0.5, 1.5, 1.5, 9.0])
    >>> [(s.name, s.labels.get("le"), s.value) for s in h.collect()[0].samples][:4]
    [('many_demo_bucket', '1.0', 1.0), ('many_demo_bucket', '2.0', 3.0), ('many_demo_bucket', '+Inf', 4.0), ('many_demo_count', None, 4.0)]
    """
    try:
        bounds, buckets, total = histogram._upper_bounds, histogram._buckets, histogram._sum
    except AttributeError:
        for amount in amounts:
            histogram.observe(amount)
        return
    if len(amounts) == 1:
        histogram.observe(amounts[0])
        return
    hits: dict[int, int] = {}
    for amount in amounts:
        i = bisect_left(bounds, amount)  # the first bound >= amount, as observe finds it
        hits[i] = hits.get(i, 0) + 1
    total.inc(sum(amounts))
    for i, n in hits.items():
        buckets[i].inc(n)


_TALLIES: weakref.WeakSet[RequestTally] = weakref.WeakSet()


def flush() -> None:
    """Add every :class:`RequestTally`'s pending requests (before metrics are read)."""
    for tally in list(_TALLIES):
        tally.flush()


def record_error(route: str, kind: str, protocol: str = "http") -> None:
    """Count one error answer; ``kind`` must be an error code, never client text."""
    _error_child(route, kind, protocol).inc()


def record_model_load(model: str, version: str, seconds: float) -> None:
    MODEL_LOAD.labels(model, version).set(seconds)


def resident_memory_bytes() -> int:
    """This process's resident set size in bytes (peak RSS where /proc is missing).

    >>> resident_memory_bytes() > 1_000_000
    True
    """
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # no /proc (not Linux): rare, so imported here
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


_cpu_counted = 0.0


def record_process_cpu() -> float:
    """Add this process's CPU time since the last call to :data:`CPU_SECONDS`; returns
    the process's total CPU seconds."""
    global _cpu_counted
    times = os.times()
    total = times.user + times.system
    if total > _cpu_counted:
        CPU_SECONDS.inc(total - _cpu_counted)
        _cpu_counted = total
    return total


def record_process_memory() -> int:
    """Set :data:`RESIDENT_MEMORY` for this process; returns the bytes."""
    rss = resident_memory_bytes()
    RESIDENT_MEMORY.set(rss)
    return rss
