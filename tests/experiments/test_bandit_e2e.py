"""A bandit end to end through HTTP with two worker processes: simulated Bernoulli rewards
sent as ``POST /v1/feedback`` move most traffic to the best arm, and the reward totals in the
shared state equal the feedback sent, whichever worker received it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests._waiting import wait_for
from tests.experiments._endpoints import (
    ConstantClassifier,
    create_endpoint,
    make_vigil,
    register,
    row,
)
from tests.serving.test_workers import WorkerServer, answering_pids

from vigil.experiments.state import SqlPolicyState
from vigil.storage.sql import Database

pytestmark = pytest.mark.slow

RATES = {"a": 0.2, "b": 0.6, "c": 0.3}
ROUNDS = 400
LATE = 120


def test_thompson_moves_traffic_to_the_best_arm_across_two_workers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    vigil = make_vigil(home)
    for value in (0, 1, 0):
        register(vigil, "arm", ConstantClassifier(value), alias="production")
    create_endpoint(
        vigil,
        {
            "name": "offers",
            "variants": [{"name": v, "model": f"models:/arm/{i}"} for i, v in enumerate(RATES, 1)],
            "policy": {"kind": "thompson", "refresh_s": 0.3},
        },
    )
    vigil.database.dispose()
    rng = np.random.default_rng(3)
    chosen: list[str] = []
    sent: Counter[str] = Counter()
    reward_sum: Counter[str] = Counter()
    env = {"VIGIL_HOME": str(home), "VIGIL_WORKER_POLL_INTERVAL": "0.5"}
    with WorkerServer(2, "vigil.app:serving_app_from_environment", env=env) as server:
        assert len(server.wait_ready()) == 2
        assert len(answering_pids(server.url)) == 2  # fresh connections reach both workers
        # No keep-alive: a new connection each time, which the kernel spreads over both workers.
        client = httpx.Client(
            base_url=server.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        )
        for _ in range(ROUNDS):
            answer = client.post("/v1/endpoints/offers/predict", json={"instances": [row()]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            variant = body["variant"]
            chosen.append(variant)
            reward = float(rng.random() < RATES[variant])
            feedback = client.post(
                "/v1/feedback", json={"request_id": body["request_id"], "reward": reward}
            )
            assert feedback.status_code == 200, feedback.text
            assert feedback.json()["accepted"] == 1
            sent[variant] += 1
            reward_sum[variant] += reward
        client.close()
        store = SqlPolicyState(Database(f"sqlite:///{home / 'vigil.db'}"))
        # Each worker flushes its buffered counters about every half second.
        wait_for(
            lambda: sum(s.reward_count for s in store.stats("offers").values()) == ROUNDS,
            what="every reward to be counted",
        )
        stats = store.stats("offers")
    assert {v: s.reward_count for v, s in stats.items()} == dict(sent)
    assert {v: s.reward_sum for v, s in stats.items()} == pytest.approx(dict(reward_sum))
    assert {v: s.requests for v, s in stats.items()} == dict(sent)
    late = Counter(chosen[-LATE:])
    assert late.most_common(1)[0][0] == "b", late
    assert late["b"] > 0.5 * LATE, late
