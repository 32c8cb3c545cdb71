"""The Redis prediction cache through a real server and a real Redis: a hit answers what the
model answered and is logged as cached and counted; versions never share entries; entries
expire and stay bounded; a Redis that stops leaves the server answering; canary and bandit
endpoints bypass it unless they ask."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis as redis_client
from prometheus_client.parser import text_string_to_metric_families
from tests._waiting import wait_for
from tests.experiments._endpoints import ConstantClassifier, create_endpoint, make_vigil
from tests.experiments._endpoints import register as register_model
from tests.experiments._endpoints import row as endpoint_row
from tests.servers import RedisServer, redis_server
from tests.serving.conftest import (
    CLF_FEATURES,
    Models,
    ServerThread,
    SklearnAdapter,
    clf_signature,
    records,
    shop_signature,
)

from vigil.bundle.model import LoadedBundle
from vigil.capture.log import SegmentLog
from vigil.capture.reader import read_capture
from vigil.capture.sink import CaptureSink
from vigil.experiments.state import SqlPolicyState
from vigil.monitor import prometheus
from vigil.serving.app import create_app
from vigil.serving.cache import Namespace, PredictionCache, row_hashes
from vigil.serving.config import CachePolicy, ServingSettings
from vigil.serving.endpoints import EndpointRouter
from vigil.serving.provider import ServedModel, StaticProvider

pytestmark = pytest.mark.redis

CACHE = {
    "clf": CachePolicy(ttl="60s", max_entries=1000),
    "shop": CachePolicy(ttl="60s", max_entries=1000),
    "short": CachePolicy(ttl=1.0, max_entries=1000),
    "small": CachePolicy(ttl="60s", max_entries=5),
}


def _cache_counts() -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["model"], s.labels["version"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(prometheus.exposition().decode())
        for s in family.samples
        if s.name == "vigil_prediction_cache_total"
    }


@dataclass
class Env:
    server: ServerThread
    client: httpx.Client
    models: dict[str, SklearnAdapter]
    log: SegmentLog
    redis: redis_client.Redis

    def predict(self, model: str, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        response = self.client.post(
            f"/v1/models/{model}/predict", json={"instances": rows, **extra}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def captured(self, request_id: str) -> list[Any]:
        frame = read_capture(log_dir=self.log.directory)
        return frame[frame["request_id"] == request_id]["cached"].tolist()


def _app(
    models: Models, url: str, log: SegmentLog, tracing: Any = None
) -> tuple[Any, dict[str, SklearnAdapter]]:
    settings = ServingSettings(max_wait_ms=1.0, cache=CACHE)
    adapters = {
        "clf1": SklearnAdapter(models.clf),
        "clf2": SklearnAdapter(models.clf2),
        "shop": SklearnAdapter(models.shop),
        "short": SklearnAdapter(models.clf),
        "small": SklearnAdapter(models.clf),
        "plain": SklearnAdapter(models.clf),
    }

    def served(key: str, name: str, version: int, digest: str, signature: Any) -> ServedModel:
        bundle = LoadedBundle(adapters[key], signature, name=name, version=version)
        return ServedModel(bundle, settings=settings, digest=digest)

    provider = StaticProvider(
        [
            served("clf1", "clf", 1, "a" * 64, clf_signature()),
            served("clf2", "clf", 2, "b" * 64, clf_signature()),
            served("shop", "shop", 3, "c" * 64, shop_signature()),
            served("short", "short", 1, "d" * 64, clf_signature()),
            served("small", "small", 1, "e" * 64, clf_signature()),
            served("plain", "plain", 1, "f" * 64, clf_signature()),
        ],
        aliases={"clf": {"production": 1}},
        settings=settings,
    )
    app = create_app(
        provider, settings, capture=CaptureSink(log), cache=PredictionCache(url), tracing=tracing
    )
    return app, adapters


@pytest.fixture
def env(models: Models, redis_url: str, tmp_path: Path) -> Iterator[Env]:
    log = SegmentLog(tmp_path / "capture")
    app, adapters = _app(models, redis_url, log)
    with (
        ServerThread(app) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
        redis_client.Redis.from_url(redis_url) as r,
    ):
        yield Env(server, client, adapters, log, r)


def _rows(models: Models, start: int, n: int) -> list[dict[str, float]]:
    return records(models.X_clf[start : start + n], CLF_FEATURES)


def _stored(env: Env) -> None:
    _idle(env.server.server.config.app.dataplane.cache)


def test_a_hit_answers_what_the_model_did_and_is_logged_and_counted(
    env: Env, models: Models
) -> None:
    rows = _rows(models, 0, 3)
    before = _cache_counts()
    first = env.predict("clf", rows, return_proba=True)
    _stored(env)
    calls = len(env.models["clf1"].calls)
    # The same rows written differently (keys reordered, integers as numbers) are one key.
    shuffled = [dict(reversed(list(r.items()))) for r in rows]
    second = env.predict("clf", shuffled, return_proba=True)
    assert len(env.models["clf1"].calls) == calls  # no model call
    for key in ("predictions", "probabilities", "classes", "model", "version"):
        assert second[key] == first[key]
    assert env.captured(first["request_id"]) == [False] * 3
    assert env.captured(second["request_id"]) == [True] * 3
    after = _cache_counts()
    assert after[("clf", "1", "hit")] - before.get(("clf", "1", "hit"), 0) == 1
    assert after[("clf", "1", "miss")] - before.get(("clf", "1", "miss"), 0) == 1
    # A hit that lacks the probabilities a request asks for is a miss, then completed.
    plain = env.predict("clf", _rows(models, 10, 1))
    _stored(env)
    with_proba = env.predict("clf", _rows(models, 10, 1), return_proba=True)
    assert env.captured(with_proba["request_id"]) == [False]
    assert with_proba["predictions"] == plain["predictions"]


def test_a_text_model_hits_with_identical_answers(env: Env, models: Models) -> None:
    rows = models.shop_frame.head(4).to_dict(orient="records")
    first = env.predict("shop", rows, return_proba=True)
    _stored(env)
    second = env.predict("shop", rows, return_proba=True)
    assert second["predictions"] == first["predictions"]
    assert second["probabilities"] == first["probabilities"]
    assert env.captured(second["request_id"]) == [True] * 4
    v2 = env.client.post(
        "/v2/models/shop/infer",
        json={
            "inputs": [
                {
                    "name": c,
                    "shape": [1],
                    "datatype": "FP64" if c != "city" else "BYTES",
                    "data": [rows[0][c]],
                }
                for c in ("age", "income", "city")
            ]
        },
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["datatype"] == "BYTES"


def test_versions_never_share_an_entry(env: Env, models: Models) -> None:
    rows = _rows(models, 20, 5)
    v1 = env.client.post("/v1/models/clf/versions/1/predict", json={"instances": rows})
    assert v1.status_code == 200, v1.text
    _stored(env)
    calls = len(env.models["clf2"].calls)
    v2 = env.client.post("/v1/models/clf/versions/2/predict", json={"instances": rows}).json()
    assert len(env.models["clf2"].calls) == calls + 1  # predicted by version 2
    assert v2["predictions"] == models.clf2.predict(models.X_clf[20:25]).tolist()
    # Same name and number but another artifact (a re-created model): another namespace.
    policy = CACHE["clf"]
    a = Namespace.of("clf", 1, "a" * 64, policy)
    b = Namespace.of("clf", 1, "9" * 64, policy)
    assert a.key("h") != b.key("h")
    keys = [k.decode() for k in env.redis.scan_iter(match="vigil:pc:*")]
    assert {k.split("}")[0] for k in keys} >= {"vigil:pc:{clf/1/aaaaaaaaaaaaaaaa"}
    assert not any(k.startswith("vigil:pc:{plain") for k in keys)  # not opted in


def test_entries_expire_and_stay_bounded(env: Env, models: Models) -> None:
    row = _rows(models, 30, 1)
    env.predict("short", row)
    _stored(env)
    assert env.captured(env.predict("short", row)["request_id"]) == [True]
    time.sleep(1.1)
    assert env.captured(env.predict("short", row)["request_id"]) == [False]

    for i in range(8):
        env.predict("small", _rows(models, i, 1))
        _stored(env)
    prefix = "vigil:pc:{small/1/eeeeeeeeeeeeeeee}:"
    entries = [k for k in env.redis.scan_iter(match=prefix + "*") if not k.endswith(b"index")]
    assert len(entries) == 5 and env.redis.zcard(prefix + "index") == 5
    # The oldest were dropped first: the newest five hit, the first three do not.
    hits = [env.captured(env.predict("small", _rows(models, i, 1))["request_id"]) for i in (7, 3)]
    assert hits == [[True], [True]]
    assert env.captured(env.predict("small", _rows(models, 0, 1))["request_id"]) == [False]


def test_a_stopped_redis_leaves_the_server_answering(models: Models, tmp_path: Path) -> None:
    own = redis_server(tmp_path)  # stopped mid-run, below
    url = own.__enter__().url()
    running = True
    try:
        app, _adapters = _app(models, url, SegmentLog(tmp_path / "capture"))
        cache = app.dataplane.cache
        assert cache is not None
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as c:
            rows = _rows(models, 0, 2)
            expected = c.post("/v1/models/clf/predict", json={"instances": rows}).json()
            wait_for(lambda: cache._writer is None, 10, what="the cache write")
            before = _cache_counts()
            assert c.post("/v1/models/clf/predict", json={"instances": rows}).status_code == 200
            assert _cache_counts()[("clf", "1", "hit")] == before[("clf", "1", "hit")] + 1
            own.__exit__(None, None, None)
            running = False
            for _ in range(5):
                started = time.perf_counter()
                response = c.post("/v1/models/clf/predict", json={"instances": rows})
                assert response.status_code == 200, response.text
                assert response.json()["predictions"] == expected["predictions"]
                assert time.perf_counter() - started < 2.0
            after = _cache_counts()
            assert after[("clf", "1", "error")] > before.get(("clf", "1", "error"), 0)
    finally:
        if running:
            own.__exit__(None, None, None)


def test_row_hashes_treat_every_nan_alike_and_keep_types_apart() -> None:
    nan_a = np.array([[1.0, np.nan]])
    nan_b = np.array([[1.0, -np.nan]])
    assert row_hashes(nan_a) == row_hashes(nan_b)
    assert row_hashes(np.array([[0.0]])) != row_hashes(np.array([[-0.0]]))
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, 1.0, 1.0], "c": ["1", 1, None]})
    assert len(set(row_hashes(frame))) == 3


@pytest.fixture(scope="module")
def endpoints_env(
    tmp_path_factory: pytest.TempPathFactory, redis: RedisServer
) -> Iterator[tuple[httpx.Client, Path, PredictionCache]]:
    home = tmp_path_factory.mktemp("cache-endpoints") / "home"
    vigil = make_vigil(home, redis_url=redis.url(1))
    register_model(vigil, "m", ConstantClassifier(0), alias="production")
    register_model(vigil, "m", ConstantClassifier(1))
    variants = [
        {"name": "a", "model": "models:/m@production"},
        {"name": "b", "model": "models:/m/2"},
    ]
    create_endpoint(
        vigil,
        {"name": "fixed", "variants": variants[:1], "policy": {"kind": "fixed", "variant": "a"}},
    )
    canary = {"kind": "canary", "stable": "a", "canary": "b", "promote_alias": None}
    create_endpoint(vigil, {"name": "canary", "variants": variants, "policy": canary})
    bandit = {"kind": "epsilon_greedy"}
    create_endpoint(vigil, {"name": "bandit", "variants": variants, "policy": bandit})
    create_endpoint(
        vigil, {"name": "bandit-cached", "variants": variants, "policy": bandit, "cache": True}
    )
    vigil.serving_settings = ServingSettings(cache={"m": CachePolicy()})
    provider = vigil.serving_provider(uris=["models:/m@production"], poll_interval=0.2)
    router = EndpointRouter(
        vigil, provider, SqlPolicyState(vigil.database), poll_interval=0.2, flush_interval=0.1
    )
    app = vigil.serving_app(provider, endpoints=router)
    assert app.dataplane.cache is not None
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, home, app.dataplane.cache
    with redis_client.Redis.from_url(redis.url(1)) as r:
        r.flushdb()


def test_canary_and_bandit_endpoints_bypass_the_cache_unless_asked(
    endpoints_env: tuple[httpx.Client, Path, PredictionCache],
) -> None:
    client, home, cache = endpoints_env
    ids: dict[str, list[str]] = {}
    for name in ("fixed", "canary", "bandit", "bandit-cached"):
        for _ in range(2):
            response = client.post(
                f"/v1/endpoints/{name}/predict",
                json={"instances": [endpoint_row(0.3)]},
                headers={"x-unit-id": "u1"},
            )
            assert response.status_code == 200, response.text
            ids.setdefault(name, []).append(response.json()["request_id"])
            _idle(cache)
    frame = read_capture(log_dir=home / "capture")
    cached = {
        name: [bool(frame[frame["request_id"] == rid]["cached"].iloc[0]) for rid in rids]
        for name, rids in ids.items()
    }
    assert cached["fixed"] == [False, True]
    assert cached["canary"] == [False, False]
    assert cached["bandit"] == [False, False]
    # The bandit that asked: its second request hits unless its arms differed (each
    # version has its own entries), so it is asked until it picks the same arm twice.
    assert True in cached["bandit-cached"] or _same_arm_hits(client, home, cache)


def _idle(cache: PredictionCache) -> None:
    """Entries are written off the request's path: wait until nothing is pending."""
    wait_for(lambda: cache._writer is None and not cache._writes, 10, what="the cache writes")


def _same_arm_hits(client: httpx.Client, home: Path, cache: PredictionCache) -> bool:
    seen: dict[str, str] = {}
    for _ in range(30):
        body = client.post(
            "/v1/endpoints/bandit-cached/predict", json={"instances": [endpoint_row(0.3)]}
        ).json()
        _idle(cache)
        if body["variant"] in seen:
            frame = read_capture(log_dir=home / "capture")
            return bool(frame[frame["request_id"] == body["request_id"]]["cached"].iloc[0])
        seen[body["variant"]] = body["request_id"]
    return False


def test_cache_settings_are_checked_and_need_redis(tmp_path: Path) -> None:
    from vigil.errors import ConfigurationError
    from vigil.serving.config import load_serving_settings

    settings = load_serving_settings(cache={"churn": {"ttl": "5m"}, "fraud": None})
    assert settings.cache["churn"].ttl_seconds == 300.0
    assert settings.cache["fraud"] == CachePolicy()
    for bad, said in (
        ({"../x": {}}, "invalid model name"),
        ({"churn": {"ttl": "soon"}}, "invalid cache ttl 'soon'"),
        ({"churn": {"size": 3}}, "cache.churn.size"),
    ):
        with pytest.raises(ConfigurationError, match=said):
            load_serving_settings(cache=bad)
    vigil = make_vigil(tmp_path / "home")
    with pytest.raises(ConfigurationError, match="VIGIL_REDIS_URL is not set"):
        vigil.prediction_cache(settings)


def test_concurrent_requests_share_lookups(env: Env, models: Models) -> None:
    import asyncio

    cache = env.server.server.config.app.dataplane.cache
    rows = [_rows(models, i, 1) for i in range(24)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=env.server.url, timeout=30) as client:
            return await asyncio.gather(
                *(client.post("/v1/models/clf/predict", json={"instances": r}) for r in rows)
            )

    before = cache.lookups
    assert all(r.status_code == 200 for r in asyncio.run(burst()))
    # One MGET serves every request that reached the cache in one turn of the event loop.
    assert cache.lookups - before < len(rows)


def test_a_traced_hit_shows_its_lookup_and_no_model_call(
    models: Models, redis_url: str, tmp_path: Path
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from vigil.serving.tracing import Tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app, _ = _app(models, redis_url, SegmentLog(tmp_path / "capture"), Tracing(provider))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        body = {"instances": _rows(models, 0, 1)}
        assert client.post("/v1/models/clf/predict", json=body).status_code == 200
        _idle(app.dataplane.cache)
        wait_for(lambda: any(s.name == "predict" for s in exporter.get_finished_spans()), 10)
        exporter.clear()
        assert client.post("/v1/models/clf/predict", json=body).status_code == 200
        wait_for(lambda: any(s.parent is None for s in exporter.get_finished_spans()), 10)
    names = {s.name for s in exporter.get_finished_spans() if s.parent is not None}
    assert {"decode", "validate", "cache lookup", "encode"} <= names
    assert not names & {"batch wait", "predict"}
