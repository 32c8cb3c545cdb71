"""vigil's Prometheus registry and its exposition, shared by serving and monitoring.

Every metric vigil publishes (the serving core's in :mod:`vigil.serving.metrics`, the
monitoring gauges in :mod:`vigil.monitor.exporter`) is created once, on :data:`REGISTRY`,
so embedding vigil never collides with an application's own metrics.

With ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes), prometheus-client writes
values to files there and :func:`exposition` aggregates every worker's files, so totals
are correct across workers.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
"""vigil's own registry, so embedding vigil never collides with an application's metrics."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition() -> bytes:
    """The current metrics in Prometheus text format (all workers in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # only with several workers

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
