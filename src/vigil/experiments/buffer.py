"""A worker's buffer in front of the shared policy state: count in memory, flush in bulk.

Writing every request's counters to SQL or Redis would cost more than the prediction. The
router instead adds to an in-memory :class:`~vigil.experiments.state.VariantStats` per
variant (a few integer increments) and :meth:`BufferedPolicyState.flush` sends the sums
every ``interval`` seconds (0.5 by default) in one statement. Because the counters are
sums, flushing later changes nothing but *when* the shared totals include them: readers
lag by at most one interval plus the write. A failed flush keeps its counts for the next.

>>> from vigil.experiments.state import SqlPolicyState
>>> from vigil.storage.sql import Database
>>> store = SqlPolicyState(Database("sqlite://"))
>>> buffer = BufferedPolicyState(store)
>>> for ms in (2.0, 3.0, 80.0):
...     buffer.record("checkout", "b", ms, error=ms > 50)
>>> store.stats("checkout")
{}
>>> buffer.flush()
>>> store.stats("checkout")["b"].errors
1
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import Any

from vigil.experiments.state import LATENCY_BOUNDS_MS, PolicyStateStore, VariantStats

log = logging.getLogger("vigil.experiments")


class BufferedPolicyState:
    """Counters summed in memory and flushed to ``store``; reads go straight to ``store``.

    ``on_flushed(endpoint, deltas)`` is called with what each flush sent, once the store
    took it (the serving layer counts it for Prometheus there, off the request path).
    """

    def __init__(
        self,
        store: PolicyStateStore,
        *,
        interval: float = 0.5,
        on_flushed: Callable[[str, Mapping[str, VariantStats]], None] | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.on_flushed = on_flushed
        self._pending: dict[str, dict[str, VariantStats]] = {}
        # Requests are recorded on the event loop, feedback possibly from another thread.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BufferedPolicyState({self.store!r}, interval={self.interval})"

    def _delta(self, endpoint: str, variant: str) -> VariantStats:
        variants = self._pending.get(endpoint)
        if variants is None:
            variants = self._pending[endpoint] = {}
        delta = variants.get(variant)
        if delta is None:
            delta = variants[variant] = VariantStats()
        return delta

    def record(self, endpoint: str, variant: str, latency_ms: float, *, error: bool) -> None:
        """Count one routed request (the hot path: no I/O)."""
        with self._lock:
            variants = self._pending.get(endpoint)
            delta = variants.get(variant) if variants is not None else None
            if delta is None:
                delta = self._delta(endpoint, variant)
            delta.requests += 1
            if error:
                delta.errors += 1
            delta.latency_buckets[bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1

    def merge(self, endpoint: str, variant: str, delta: VariantStats) -> None:
        """Buffer counts summed elsewhere (the router's event-loop tallies)."""
        with self._lock:
            self._delta(endpoint, variant).merge(delta)

    def add(self, endpoint: str, variant: str, **counts: Any) -> None:
        """Buffer observations as :meth:`PolicyStateStore.add` takes them."""
        with self._lock:
            self._delta(endpoint, variant).add(**counts)

    def pending(self) -> bool:
        """Whether anything waits to be flushed."""
        return bool(self._pending)

    def flush(self) -> None:
        """Send everything buffered so far (blocking I/O: run it off the event loop)."""
        with self._lock:
            taken, self._pending = self._pending, {}
        for endpoint, deltas in taken.items():
            try:
                self.store.add_many(endpoint, deltas)
            except Exception:
                log.exception("flushing policy counters of %s failed; retrying later", endpoint)
                with self._lock:
                    for variant, delta in deltas.items():
                        self._delta(endpoint, variant).merge(delta)
                continue
            if self.on_flushed is not None:
                self.on_flushed(endpoint, deltas)
