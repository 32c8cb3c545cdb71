"""The artifact store (S3) and Redis become unreachable under load, then come back.

Both sit behind a :class:`~tests.reliability._proxy.Partition` in front of the real server
(moto, redis-server), so they keep their data while vigil cannot reach them.

* S3: predictions keep flowing (the capture log is on local disk, the models in memory),
  feedback is still accepted; a compaction pass fails and keeps every segment; an alias
  moved meanwhile is served once its bundle can be fetched; after the store is back, the
  next pass compacts everything and every prediction answered 2xx is in the Parquet.
* Redis: predictions routed by an experiment endpoint keep flowing (its counters are
  buffered in the worker) and feedback too; once Redis is back, the buffered counters reach
  it, none lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests._waiting import wait_for
from tests.experiments._endpoints import (
    ConstantClassifier,
    create_endpoint,
    make_vigil,
    register,
    row,
)
from tests.reliability._proxy import Partition
from tests.reliability._traffic import Traffic
from tests.reliability.test_database_faults import PREDICT, register_churn
from tests.servers import RedisServer, S3Server
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import ROW

from vigil.app import Vigil
from vigil.capture.reader import read_capture
from vigil.experiments.state import RedisPolicyState
from vigil.serving.app import ServingApp
from vigil.serving.registry_provider import RegistryProvider
from vigil.settings import load_settings


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
def s3_partition(s3: S3Server) -> Iterator[Partition]:
    with Partition(("127.0.0.1", _port(s3.endpoint_url))) as partition:
        yield partition


@pytest.mark.slow
@pytest.mark.s3
def test_s3_unreachable_keeps_predictions_flowing_and_loses_nothing(
    s3_partition: Partition, s3_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    endpoint = f"http://{s3_partition.address}"
    register_churn(home, artifact_url=s3_url, s3_endpoint_url=endpoint)
    vigil = Vigil(load_settings(home=home, artifact_url=s3_url, s3_endpoint_url=endpoint))
    app = vigil.serving_app(RegistryProvider(vigil, poll_interval=0.2))
    runtime = app.dataplane.capture
    assert runtime is not None
    with ServerThread(app) as server:
        compactor = runtime.compactor
        assert compactor is not None
        # The worker's own start-up pass (in a child process) ended: this test's passes
        # below are the only ones until the next interval.
        wait_for(lambda: compactor.passes >= 1, what="the start-up compaction")
        with Traffic(server.url, PREDICT, {"inputs": ROW}) as traffic:
            traffic.wait(50, status=200)
            s3_partition.cut()
            vigil.registry.set_alias("churn", "production", 2)  # its bundle is on S3 only
            traffic.wait(100, status=200)  # unaffected
            known = next(iter(traffic.answered()))
            feedback = httpx.post(
                f"{server.url}/v1/feedback",
                json={
                    "feedback": [
                        {"request_id": known, "label": 1},
                        {"request_id": "old", "label": 0},
                    ]
                },
                timeout=120,
            )
            assert feedback.status_code == 200, feedback.text
            assert (feedback.json()["accepted"], feedback.json()["unknown"]) == (2, 1)
            feedback_store = runtime.feedback
            assert feedback_store is not None
            runtime.sink.log.rotate()
            feedback_store.log.rotate()
            during = compactor.run_once()
            assert during is not None
            assert "capture compaction" in during.failed and "feedback compaction" in during.failed
            assert runtime.sink.log.closed_segments()  # kept for the next pass
            assert feedback_store.log.closed_segments()
            s3_partition.restore()
            wait_for(lambda: _version(server.url) == 2, timeout=120, what="version 2 served")
            traffic.wait(50, status=200)
        assert set(traffic.statuses()) == {200}
        runtime.sink.log.rotate()
        after = compactor.run_once()
        assert after is not None and after.failed == []
        assert runtime.sink.log.all_segments() == []
    logged = set(read_capture(store=vigil.artifacts)["request_id"])
    missing = traffic.answered() - logged
    assert not missing, f"{len(missing)} acknowledged predictions lost"
    assert feedback_store.log.all_segments() == []
    assert known in set(feedback_store.read()["request_id"])


def _version(url: str) -> int:
    r = httpx.post(f"{url}{PREDICT}", json={"inputs": ROW}, timeout=30)
    assert r.status_code == 200, r.text
    version: int = r.json()["version"]
    return version


@pytest.fixture
def redis_partition(redis: RedisServer, redis_url: str) -> Iterator[Partition]:
    with Partition(("127.0.0.1", redis.port)) as partition:
        yield partition


def test_redis_unreachable_keeps_endpoints_routing_and_loses_no_count(
    redis_partition: Partition, redis_url: str, tmp_path: Path
) -> None:
    vigil = make_vigil(tmp_path / "home", redis_url=f"redis://{redis_partition.address}/0")
    register(vigil, "m", ConstantClassifier(0), alias="production")
    register(vigil, "m", ConstantClassifier(1))
    create_endpoint(
        vigil,
        {
            "name": "offers",
            "variants": [
                {"name": "a", "model": "models:/m/1"},
                {"name": "b", "model": "models:/m/2"},
            ],
            "policy": {"kind": "thompson", "refresh_s": 0.2},
        },
    )
    app: ServingApp = vigil.serving_app(RegistryProvider(vigil, poll_interval=0.2))
    endpoints = app.dataplane.endpoints
    assert endpoints is not None and isinstance(endpoints.state, RedisPolicyState)
    direct = RedisPolicyState(redis_url)  # what another replica reads, not through the cut

    def counted() -> int:
        return sum(s.requests for s in direct.stats("offers").values())

    with ServerThread(app) as server:
        path = "/v1/endpoints/offers/predict"
        with Traffic(server.url, path, {"instances": [row()]}) as traffic:
            traffic.wait(50, status=200)
            wait_for(lambda: counted() > 0, what="the first flush")
            redis_partition.cut()
            traffic.wait(100, status=200)
            rid = next(iter(traffic.answered()))
            reward = httpx.post(f"{server.url}/v1/feedback", json={"request_id": rid, "reward": 1})
            assert reward.status_code == 200 and reward.json()["accepted"] == 1
            redis_partition.restore()
            traffic.wait(50, status=200)
        assert set(traffic.statuses()) == {200}
        answered = len(traffic.answered())
        wait_for(lambda: counted() == answered, what="every buffered count to reach Redis")
        wait_for(
            lambda: sum(s.reward_count for s in direct.stats("offers").values()) == 1,
            what="the reward to reach Redis",
        )
