"""Live counters for the overview: requests per second, p99 latency and error rate per
model, and requests per second and error rate per experiment endpoint, read from the
server's own Prometheus metrics (all workers' in multiprocess mode, as ``/metrics``
answers) and turned into rates between two looks.

An endpoint's counters are its variants' (``vigil_endpoint_requests_total`` and
``vigil_endpoint_errors_total``, which a worker adds every half second); the overview
sums them over the variants that answer callers (not shadows). There is no latency
histogram per endpoint: the variants' models may also be served directly, so an
endpoint's row shows no p99.

The first look has nothing to compare with: rates then cover the time since the server
started counting (the counters' creation), which the page says by showing them as such.

>>> p99([(0.005, 0.0), (0.01, 50.0), (0.025, 100.0), (float("inf"), 100.0)], 100.0)
0.0247
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from vigil.monitor.prometheus import collecting_registry

K = TypeVar("K")


@dataclass
class Counts:
    """One model's cumulative counters at one moment."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative request-duration histogram: upper bound (seconds) → count."""


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """What the overview shows of one model's traffic (``None``: nothing to show yet)."""

    requests_per_s: float | None
    p99_ms: float | None
    error_rate: float | None


_Counts = tuple[dict[str, Counts], dict[tuple[str, str], Counts]]


def read_counts() -> _Counts:
    """Every served model's cumulative counters now (prediction routes and the rest), and
    every experiment endpoint's by ``(endpoint, variant)``."""
    registry = collecting_registry()
    counts: dict[str, Counts] = {}
    variants: dict[tuple[str, str], Counts] = {}
    for family in registry.collect():
        if family.name == "vigil_requests":
            for s in family.samples:
                model = s.labels.get("model", "")
                if model and s.name.endswith("_total"):
                    c = counts.setdefault(model, Counts())
                    c.requests += s.value
                    if s.labels.get("status") in ("4xx", "5xx"):
                        c.errors += s.value
        elif family.name == "vigil_request_duration_seconds":
            for s in family.samples:
                model = s.labels.get("model", "")
                if model and s.name.endswith("_bucket"):
                    bound = float(s.labels["le"])
                    b = counts.setdefault(model, Counts()).buckets
                    b[bound] = b.get(bound, 0.0) + s.value
        elif family.name in ("vigil_endpoint_requests", "vigil_endpoint_errors"):
            for s in family.samples:
                key = (s.labels.get("endpoint", ""), s.labels.get("variant", ""))
                if all(key) and s.name.endswith("_total"):
                    c = variants.setdefault(key, Counts())
                    if family.name == "vigil_endpoint_requests":
                        c.requests += s.value
                    else:
                        c.errors += s.value
    return counts, variants


def p99(buckets: list[tuple[float, float]], total: float) -> float | None:
    """The 0.99 quantile of a cumulative histogram, interpolated linearly within its
    bucket as Prometheus' ``histogram_quantile`` does (seconds; ``None`` when empty)."""
    if total <= 0:
        return None
    rank = 0.99 * total
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower  # past the last finite bound: its bound is all we know
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, cumulative
    return lower


@dataclass(frozen=True)
class Live:
    """One look's figures: each model's, and each endpoint variant's (no p99)."""

    models: dict[str, LiveFigures] = field(default_factory=dict)
    variants: dict[tuple[str, str], LiveFigures] = field(default_factory=dict)

    def endpoint(self, name: str, variants: Iterable[str]) -> LiveFigures | None:
        """Endpoint ``name``'s figures over ``variants`` (those that answer callers)."""
        found = [f for v in variants if (f := self.variants.get((name, v))) is not None]
        if not found:
            return None
        rate = sum(f.requests_per_s or 0.0 for f in found)
        errors = sum((f.error_rate or 0.0) * (f.requests_per_s or 0.0) for f in found)
        return LiveFigures(rate, None, errors / rate if rate > 0 else None)


def _rates(
    current: Mapping[K, Counts], before: Mapping[K, Counts], seconds: float
) -> dict[K, LiveFigures]:
    out: dict[K, LiveFigures] = {}
    for key, c in current.items():
        b = before.get(key, Counts())
        requests = c.requests - b.requests
        buckets = sorted((k, v - b.buckets.get(k, 0.0)) for k, v in c.buckets.items())
        total = buckets[-1][1] if buckets else 0.0
        latency = p99(buckets, total)
        out[key] = LiveFigures(
            requests_per_s=requests / seconds,
            p99_ms=None if latency is None else latency * 1000.0,
            error_rate=(c.errors - b.errors) / requests if requests > 0 else None,
        )
    return out


class LiveRates:
    """Rates between the last look and this one (a console's own state: one per app)."""

    def __init__(self, clock: float | None = None) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic() if clock is None else clock
        self._last: tuple[float, _Counts] | None = None

    def figures(self, now: float | None = None) -> Live:
        """Each model's and endpoint variant's figures since the previous call (or since
        start on the first)."""
        current = read_counts()
        now = time.monotonic() if now is None else now
        with self._lock:
            then, before = self._last if self._last is not None else (self._started, ({}, {}))
            if self._last is None or now - self._last[0] >= 1.0:
                self._last = (now, current)
        seconds = max(now - then, 1e-9)
        return Live(_rates(current[0], before[0], seconds), _rates(current[1], before[1], seconds))
