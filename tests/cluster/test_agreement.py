"""Replicas that agree on what they decide together (the cluster of ``conftest.py``: three
replicas of two workers each behind HAProxy, one PostgreSQL, Redis and S3):

* a bandit's reward counters equal the feedback sent, whichever replica received the
  prediction and whichever the feedback;
* a canary's ramp, its rollback and its promotion happen exactly once (one audit row, one
  alert delivered per webhook, one alias move), however many workers tick it;
* the monitor lease computes each window once, from every replica's predictions, and each
  alert is delivered once;
* the inference logs of all replicas are compacted into the one store, every request id
  answered exactly once, none lost.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from tests._waiting import wait_for
from tests.cluster._load import Load
from tests.cluster.conftest import GRACE_S, MONITOR_HOOK, WINDOW_S, Cluster
from tests.experiments._endpoints import ConstantClassifier, create_endpoint, register, row

from vigil.experiments.state import RedisPolicyState
from vigil.monitor.tables import AlertEventRow, MonitorPointRow, MonitorWindowRow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CANARY_HOOK = "/canary"


def policy_state(cluster: Cluster) -> RedisPolicyState:
    url = cluster.servers.settings["redis_url"]
    assert isinstance(url, str)
    return RedisPolicyState(url)


BANDIT_ROUNDS = 30


def test_bandit_counters_equal_the_feedback_sent_to_any_replica(cluster: Cluster) -> None:
    vigil = cluster.vigil
    register(vigil, "arm", ConstantClassifier(0))
    register(vigil, "arm", ConstantClassifier(1))
    create_endpoint(
        vigil,
        {
            "name": "offers",
            "variants": [
                {"name": "a", "model": "models:/arm/1"},
                {"name": "b", "model": "models:/arm/2"},
            ],
            "policy": {"kind": "thompson", "refresh_s": 0.3},
        },
    )
    rates = {"a": 0.2, "b": 0.7}
    rng = np.random.default_rng(5)
    sent: Counter[str] = Counter()
    reward_sum: Counter[str] = Counter()
    unknown = 0
    feedback_s: list[float] = []
    # One keep-alive client: HAProxy balances each request on its own, round robin, so
    # every feedback lands on another replica than the prediction it is about.
    with httpx.Client(base_url=cluster.url, timeout=60) as client:
        for _ in range(BANDIT_ROUNDS):
            answer = client.post("/v1/endpoints/offers/predict", json={"instances": [row()]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            reward = float(rng.random() < rates[body["variant"]])
            began = time.perf_counter()
            feedback = client.post(
                "/v1/feedback", json={"request_id": body["request_id"], "reward": reward}
            )
            feedback_s.append(time.perf_counter() - began)
            assert feedback.status_code == 200, feedback.text
            assert feedback.json()["accepted"] == 1, feedback.json()
            unknown += feedback.json()["unknown"]
            sent[body["variant"]] += 1
            reward_sum[body["variant"]] += reward
    print(
        f"feedback: {unknown} of {BANDIT_ROUNDS} unknown to the replica receiving it; "
        f"median {statistics.median(feedback_s) * 1e3:.0f} ms, max {max(feedback_s) * 1e3:.0f} ms"
    )
    # Each feedback reached another replica than its prediction: it was unknown there, and
    # is credited once the predicting replica compacted its segment (FeedbackStore.rematch).
    assert unknown > 0
    state = policy_state(cluster)

    def rewarded() -> int:
        return sum(s.reward_count for s in state.stats("offers").values())

    wait_for(lambda: rewarded() >= BANDIT_ROUNDS, 60, what=lambda: f"every reward ({rewarded()})")
    time.sleep(1.5)  # every worker flushes its buffer each 0.5 s: nothing more may come
    stats = state.stats("offers")
    assert {v: s.requests for v, s in stats.items()} == dict(sent)
    assert {v: s.reward_count for v, s in stats.items()} == dict(sent)
    assert {v: s.reward_sum for v, s in stats.items()} == pytest.approx(dict(reward_sum))


STEPS = [
    {"percent": 20, "min_duration_s": 1.0, "min_requests": 15},
    {"percent": 100, "min_duration_s": 1.0, "min_requests": 15},
]


def _canary(name: str, model: str, cluster: Cluster, **guards: Any) -> dict[str, Any]:
    return {
        "name": name,
        "salt": f"salt-{name}",
        "variants": [
            {"name": "stable", "model": f"models:/{model}@production"},
            {"name": "canary", "model": f"models:/{model}/2"},
        ],
        "policy": {
            "kind": "canary",
            "stable": "stable",
            "canary": "canary",
            "steps": STEPS,
            "guards": {"min_requests": 15, **guards},
            "promote_alias": "production",
        },
        "alert_webhooks": [cluster.receiver.url(CANARY_HOOK)],
    }


class EndpointLoad:
    """Threads posting to an endpoint through the load balancer, with random units and
    ``f0`` in [0, 2) (a model failing above 1 fails half of them)."""

    def __init__(self, url: str, endpoint: str, threads: int = 3) -> None:
        self.url, self.endpoint = url, endpoint
        self.statuses: Counter[int] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(s,)) for s in range(threads)]

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                response = client.post(
                    f"/v1/endpoints/{self.endpoint}/predict",
                    json={"instances": [row(float(rng.uniform(0, 2)))]},
                    headers={"x-unit-id": f"u{rng.integers(1_000_000)}"},
                )
                self.statuses[response.status_code] += 1

    def __enter__(self) -> EndpointLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _audited(cluster: Cluster, endpoint: str) -> Counter[str]:
    events = cluster.vigil.registry.audit(limit=1000)
    return Counter(e.action for e in events if e.entity_name == endpoint)


def _alerts(cluster: Cluster, path: str, endpoint: str) -> list[str]:
    found = cluster.receiver.deliveries.alerts(path)
    return [a["labels"]["alertname"] for a in found if a["labels"].get("endpoint") == endpoint]


def test_a_canary_rolls_back_exactly_once_across_replicas(cluster: Cluster) -> None:
    vigil = cluster.vigil
    register(vigil, "bad", ConstantClassifier(0), alias="production")
    register(vigil, "bad", ConstantClassifier(0, fail_above=1.0))  # fails half the load
    create_endpoint(vigil, _canary("risky", "bad", cluster, max_error_rate_increase=0.05))
    state = policy_state(cluster)
    with EndpointLoad(cluster.url, "risky") as load:
        wait_for(
            lambda: state.control("risky").data.get("status") == "rolled_back",
            60,
            what="the rollback",
        )
        # Every worker ticks the canary every second: give them several ticks to disagree.
        time.sleep(3)
    assert load.statuses[422] > 0, "the bad canary never failed: the test did not exercise it"
    audited = _audited(cluster, "risky")
    assert (audited["canary.start"], audited["canary.rollback"]) == (1, 1), audited
    assert "canary.promote" not in audited
    wait_for(lambda: _alerts(cluster, CANARY_HOOK, "risky"), 30, what="the rollback alert")
    time.sleep(1)
    assert _alerts(cluster, CANARY_HOOK, "risky") == ["canary_rollback"]
    assert _alerts(cluster, MONITOR_HOOK, "risky") == ["canary_rollback"]
    assert vigil.registry.resolve("models:/bad@production").version == 1


def test_a_canary_is_promoted_exactly_once_across_replicas(cluster: Cluster) -> None:
    vigil = cluster.vigil
    register(vigil, "good", ConstantClassifier(0), alias="production")
    register(vigil, "good", ConstantClassifier(1))
    create_endpoint(vigil, _canary("safe", "good", cluster))
    state = policy_state(cluster)
    with EndpointLoad(cluster.url, "safe") as load:
        wait_for(
            lambda: state.control("safe").data.get("status") == "promoted",
            90,
            what="the promotion",
        )
        time.sleep(3)
    assert set(load.statuses) == {200}, load.statuses
    audited = _audited(cluster, "safe")
    assert (audited["canary.start"], audited["canary.advance"]) == (1, 1), audited
    assert audited["canary.promote"] == 1 and "canary.rollback" not in audited
    moves = [
        e
        for e in vigil.registry.audit("good", limit=1000)
        if e.action == "set_alias" and e.actor == "canary-controller"
    ]
    assert len(moves) == 1 and moves[0].after is not None
    assert vigil.registry.resolve("models:/good@production").version == 2
    wait_for(lambda: _alerts(cluster, CANARY_HOOK, "safe"), 30, what="the promotion alert")
    time.sleep(1)
    assert _alerts(cluster, CANARY_HOOK, "safe") == ["canary_promote"]
    assert _alerts(cluster, MONITOR_HOOK, "safe") == ["canary_promote"]


def test_the_monitor_lease_computes_each_window_once_from_every_replica(
    cluster: Cluster,
) -> None:
    sent = 0
    started = datetime.now(UTC)
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        # Two windows' worth of predictions, spread over the replicas by HAProxy.
        deadline = time.monotonic() + 2 * WINDOW_S
        while time.monotonic() < deadline:
            r = client.post("/v1/models/watched/predict", json={"inputs": row()})
            assert r.status_code == 200, r.text
            sent += 1
    ended = datetime.now(UTC)
    db = cluster.vigil.database

    def windows() -> list[MonitorWindowRow]:
        with db.session() as session:
            query = select(MonitorWindowRow).where(
                MonitorWindowRow.model == "watched",
                MonitorWindowRow.window_end > started,
            )
            return list(session.scalars(query))

    def covered() -> bool:
        done = [w for w in windows() if not w.partial]
        return bool(done) and max(w.window_end for w in done).replace(tzinfo=UTC) > ended

    wait_for(covered, 60 + 2 * (WINDOW_S + GRACE_S), what="complete windows past the traffic")
    computed = windows()
    assert sum(w.n_requests for w in computed) == sent, [
        (w.window_start, w.n_requests, w.partial) for w in computed
    ]
    ids = [w.id for w in computed]
    with db.session() as session:
        points = session.scalars(
            select(MonitorPointRow).where(
                MonitorPointRow.window_id.in_(ids), MonitorPointRow.metric == "traffic.requests"
            )
        ).all()
    assert Counter(p.window_id for p in points) == dict.fromkeys(ids, 1)

    def delivered() -> list[dict[str, Any]]:
        alerts = cluster.receiver.deliveries.alerts(MONITOR_HOOK)
        return [a for a in alerts if a["labels"]["alertname"] == "cluster_traffic"]

    wait_for(delivered, 60, what="the alert delivered")
    time.sleep(2 * WINDOW_S)  # more cycles while it fires: no second event, no second delivery
    assert len(delivered()) == 1 and delivered()[0]["labels"]["model"] == "watched"
    with db.session() as session:
        events = session.scalars(
            select(AlertEventRow).where(AlertEventRow.rule == "cluster_traffic")
        ).all()
    assert [e.status for e in events] == ["firing"]


def test_every_replicas_inference_log_is_compacted_into_one_store(cluster: Cluster) -> None:
    with Load(cluster.url, "/v1/models/churn/predict", {"inputs": row()}, prefix="log") as load:
        load.wait(300)
    assert not load.failed()
    answered = load.answered()
    wait_for(
        lambda: set(cluster.compacted_ids("churn", "log")) == set(answered),
        120,
        what="every prediction compacted",
    )
    counts = cluster.compacted_ids("churn", "log")
    assert sorted(counts.elements()) == sorted(answered)  # none lost, none twice
    # capture-<host>-<pid>-...: the rows came from several workers of several replicas.
    writers = {
        segment.split("-")[2]
        for segment, ids in cluster.compacted("churn").items()
        if any(rid.startswith("log") for rid in ids)
    }
    assert len(writers) >= 3, writers
