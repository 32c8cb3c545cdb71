"""Prometheus series of experiment endpoints: traffic and rewards per variant, canary share.

Counted when a worker flushes its policy counters
(:meth:`~vigil.experiments.buffer.BufferedPolicyState.flush`, every half second), never
on the request path, and only once the shared store took them, so Prometheus's sum over
every worker and replica equals the shared totals ``vigil experiment status`` reads
(a failed flush is counted with the flush that finally sends it):

* ``vigil_endpoint_requests_total{endpoint, variant}`` — requests routed to the variant
  (shadow copies included, under the shadow's name);
* ``vigil_endpoint_errors_total{endpoint, variant}`` — those that failed on the server's
  side (what the canary's error guard counts);
* ``vigil_endpoint_rewards_total{endpoint, variant}`` — feedback rewards received;
* ``vigil_endpoint_reward_sum{endpoint, variant}`` — their running sum: a gauge, since a
  reward may be negative (the mean reward over a range is
  ``delta(vigil_endpoint_reward_sum[5m]) / increase(vigil_endpoint_rewards_total[5m])``;
  with several workers it is summed over every worker that ever ran, as the counters are);
* ``vigil_endpoint_canary_percent{endpoint}`` — the canary's share of traffic now (0 once
  rolled back, 100 once promoted), set when a worker reads the canary's control record.

Labels are bounded: endpoints and variants are the configured ones.

>>> from vigil.experiments.state import VariantStats
>>> child = REQUESTS.labels("checkout", "b")
>>> before = child._value.get()
>>> count_flushed("checkout", {"b": VariantStats().add(requests=3, errors=1)})
>>> child._value.get() - before
3.0
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from vigil.experiments.state import VariantStats
from vigil.monitor.prometheus import REGISTRY

REQUESTS = Counter(
    "vigil_endpoint_requests",
    "Requests routed by an experiment endpoint, by endpoint and variant.",
    ("endpoint", "variant"),
    registry=REGISTRY,
)
ERRORS = Counter(
    "vigil_endpoint_errors",
    "Routed requests that failed on the server's side, by endpoint and variant.",
    ("endpoint", "variant"),
    registry=REGISTRY,
)
REWARDS = Counter(
    "vigil_endpoint_rewards",
    "Feedback rewards received, by endpoint and variant.",
    ("endpoint", "variant"),
    registry=REGISTRY,
)
REWARD_SUM = Gauge(
    "vigil_endpoint_reward_sum",
    "Running sum of the feedback rewards received, by endpoint and variant.",
    ("endpoint", "variant"),
    multiprocess_mode="sum",
    registry=REGISTRY,
)
CANARY_PERCENT = Gauge(
    "vigil_endpoint_canary_percent",
    "Share of traffic (0-100) a canary endpoint gives its canary variant now.",
    ("endpoint",),
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)


def count_flushed(endpoint: str, deltas: Mapping[str, VariantStats]) -> None:
    """Add the counters one flush sent to the shared store for ``endpoint``."""
    for variant, delta in deltas.items():
        REQUESTS.labels(endpoint, variant).inc(delta.requests)
        ERRORS.labels(endpoint, variant).inc(delta.errors)
        if delta.reward_count:
            REWARDS.labels(endpoint, variant).inc(delta.reward_count)
            REWARD_SUM.labels(endpoint, variant).inc(delta.reward_sum)


def set_canary_percent(endpoint: str, percent: float) -> None:
    CANARY_PERCENT.labels(endpoint).set(percent)
