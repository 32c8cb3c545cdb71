"""Endpoint routing through a real server socket: the split follows the weights, units stay
on their variant, shadows never touch the primary's answer or latency, and the variant is in
the response, the capture log and the shared counters."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from scipy import stats
from tests._waiting import wait_for
from tests.experiments._endpoints import (
    ConstantClassifier,
    create_endpoint,
    make_vigil,
    register,
    row,
)
from tests.serving.conftest import ServerThread

from vigil.app import Vigil
from vigil.capture.reader import read_capture
from vigil.experiments.assign import WeightedChoice, unit_point
from vigil.experiments.state import RedisPolicyState, SqlPolicyState, VariantStats
from vigil.experiments.store import EndpointStore
from vigil.serving.app import ServingApp
from vigil.serving.endpoints import EndpointRouter
from vigil.serving.registry_provider import RegistryProvider

ALPHA = 1e-4
_NONE = VariantStats(requests=0, errors=0, latency_buckets=[])
SHADOW_DELAY = 0.4


@dataclass
class Env:
    vigil: Vigil
    home: Path
    app: ServingApp
    server: ServerThread
    client: httpx.Client

    @property
    def router(self) -> EndpointRouter:
        assert self.app.dataplane.endpoints is not None
        return self.app.dataplane.endpoints

    def predict(self, endpoint: str, unit: str | None = None, **body: Any) -> httpx.Response:
        headers = {"x-unit-id": unit} if unit else {}
        payload = body or {"instances": [row()]}
        return self.client.post(f"/v1/endpoints/{endpoint}/predict", json=payload, headers=headers)


def _split(name: str, weights: dict[str, float], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "salt": f"salt-{name}",
        "variants": [
            {"name": "a", "model": "models:/m@production"},
            {"name": "b", "model": "models:/m/2"},
        ],
        "policy": {"kind": "split", "weights": weights},
        **extra,
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("routing") / "home"
    vigil = make_vigil(home)
    register(vigil, "m", ConstantClassifier(0), alias="production")  # version 1 answers 0
    register(vigil, "m", ConstantClassifier(1))  # version 2 answers 1
    register(vigil, "slow", ConstantClassifier(1, delay=SHADOW_DELAY), alias="production")
    create_endpoint(vigil, _split("ab", {"a": 70, "b": 30}))
    create_endpoint(
        vigil,
        {
            "name": "shadowed",
            "variants": [
                {"name": "live", "model": "models:/m@production"},
                {"name": "challenger", "model": "models:/slow@production"},
            ],
            "policy": {"kind": "shadow", "primary": "live", "shadows": ["challenger"]},
        },
    )
    # Only m@production is asked for: the endpoints' other models must be loaded for them.
    provider = RegistryProvider(vigil, uris=["models:/m@production"], poll_interval=0.2)
    router = EndpointRouter(
        vigil,
        provider,
        SqlPolicyState(vigil.database),
        poll_interval=0.2,
        flush_interval=0.1,
        shadow_limit=4,
        seed=7,
    )
    app = vigil.serving_app(provider, endpoints=router)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield Env(vigil, home, app, server, client)


def test_endpoint_variants_models_are_served(env: Env) -> None:
    served = {(m["name"], m["version"]) for m in env.client.get("/v1/models").json()["models"]}
    assert served == {("m", 1), ("m", 2), ("slow", 1)}


def test_sticky_units_get_exactly_the_hashed_variant(env: Env) -> None:
    choice = WeightedChoice({"a": 70, "b": 30})
    got = {}
    for i in range(300):
        unit = f"user-{i}"
        body = env.predict("ab", unit).json()
        assert body["predictions"] == [0 if body["variant"] == "a" else 1]
        assert (body["endpoint"], body["model"]) == ("ab", "m")
        assert body["version"] == (1 if body["variant"] == "a" else 2)
        got[unit] = body["variant"]
        assert got[unit] == choice.pick(unit_point("salt-ab", unit))
    counts = Counter(got.values())
    assert stats.binomtest(counts["b"], 300, 0.3).pvalue > ALPHA
    # Asked again, in another order, every unit lands where it did.
    for unit in reversed(list(got)[:60]):
        assert env.predict("ab", unit).json()["variant"] == got[unit]


def test_known_units_get_the_variants_they_have_always_had(env: Env) -> None:
    # Golden, written down once (salt "salt-ab", 70/30): routing may get faster, but a unit
    # never moves to another variant.
    got = "".join(env.predict("ab", unit=f"user-{i}").json()["variant"] for i in range(40))
    assert got == "abaaaaabaaaaaaabbbaaabaaaaaaabaaaaaaaaaa"


def test_requests_without_unit_split_by_the_weights(env: Env) -> None:
    counts = Counter(env.predict("ab").json()["variant"] for _ in range(400))
    assert set(counts) == {"a", "b"}
    assert stats.binomtest(counts["b"], 400, 0.3).pvalue > ALPHA


def test_unit_from_a_body_field(env: Env) -> None:
    create_endpoint(env.vigil, _split("byfield", {"a": 1, "b": 1}, unit={"field": "user"}))
    choice = WeightedChoice({"a": 1, "b": 1})
    for i in range(20):
        response = env.predict("byfield", instances=[row()], user=f"u{i}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["variant"] == choice.pick(unit_point("salt-byfield", f"u{i}"))


def test_the_fast_lane_answers_an_endpoint_as_the_app_does(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane = env.app.lane
    assert lane is not None
    taken: list[bool] = []
    offer = lane.offer

    def spy(*args: Any) -> Any:
        result = offer(*args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(lane, "offer", spy)
    env.predict("ab", "warm-up")  # a Host value's first request goes through the app
    for i, unit in enumerate(["user-3", "user-4", "user-5", "user-6"]):
        del taken[:]
        answers = []
        for extra in ({}, {"origin": "http://x"}):  # an Origin header: the app's way
            headers = {"x-unit-id": unit, "x-request-id": f"lane-{i}", **extra}
            body = {"instances": [row()], "return_proba": True}
            answers.append(env.client.post("/v1/endpoints/ab/predict", json=body, headers=headers))
        assert taken == [True, False]
        lane_answer, app_answer = answers
        assert lane_answer.status_code == app_answer.status_code == 200
        assert lane_answer.content == app_answer.content
        drop = {"date", "content-length"}
        assert [(k, v) for k, v in lane_answer.headers.items() if k not in drop] == [
            (k, v) for k, v in app_answer.headers.items() if k not in drop
        ]
        assert lane_answer.headers["x-vigil-variant"] == lane_answer.json()["variant"]
    frame = read_capture(log_dir=env.home / "capture")
    logged = frame[frame["request_id"] == "lane-0"].drop(columns=["time", "latency_ms"])
    assert len(logged) == 2
    assert logged.iloc[0].to_json() == logged.iloc[1].to_json()
    assert (logged.iloc[0]["endpoint"], logged.iloc[0]["route"]) == ("ab", "endpoint_predict")
    # A shadow endpoint's request taken by the lane still sends its copy to the challenger
    # (an endpoint of its own: the shadow test counts the other one's copies).
    create_endpoint(
        env.vigil,
        {
            "name": "lane-shadow",
            "variants": [
                {"name": "live", "model": "models:/m@production"},
                {"name": "challenger", "model": "models:/slow@production"},
            ],
            "policy": {"kind": "shadow", "primary": "live", "shadows": ["challenger"]},
        },
    )
    del taken[:]
    assert env.predict("lane-shadow").status_code == 200  # unknown yet: the app loads it
    assert env.predict("lane-shadow").status_code == 200
    assert taken == [False, True]
    wait_for(
        lambda: (env.router.state.stats("lane-shadow").get("challenger") or _NONE).requests == 2,
        what="both shadow copies counted",
    )


def test_variant_in_capture_and_in_the_shared_counters(env: Env) -> None:
    create_endpoint(env.vigil, _split("counted", {"a": 1, "b": 1}))
    answers = {}
    for i in range(40):
        response = env.predict("counted", f"c{i}")
        assert response.headers["x-vigil-variant"] == response.json()["variant"]
        answers[response.json()["request_id"]] = response.json()["variant"]
    expected = Counter(answers.values())
    store = env.router.state

    def counted() -> bool:
        found = store.stats("counted")
        return {v: s.requests for v, s in found.items()} == dict(expected)

    wait_for(counted)
    assert all(s.errors == 0 for s in store.stats("counted").values())
    frame = read_capture(log_dir=env.home / "capture")
    frame = frame[frame["request_id"].isin(list(answers))]
    assert len(frame) == 40
    assert dict(zip(frame["request_id"], frame["variant"], strict=True)) == answers
    assert set(frame["endpoint"]) == {"counted"}


def test_v2_and_mlflow_twins(env: Env) -> None:
    create_endpoint(env.vigil, _split("twins", {"a": 1, "b": 1}))
    tensor = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [0.2, 0.5, 0.5]}
    for unit in ("u1", "u2", "u3", "u4"):
        expected = WeightedChoice({"a": 1, "b": 1}).pick(unit_point("salt-twins", unit))
        v2 = env.client.post(
            "/v2/endpoints/twins/infer", json={"inputs": [tensor]}, headers={"x-unit-id": unit}
        )
        assert v2.status_code == 200, v2.text
        body = v2.json()
        assert body["parameters"] == {"endpoint": "twins", "variant": expected}
        assert body["outputs"][0]["data"] == [0 if expected == "a" else 1]
        assert body["model_version"] == ("1" if expected == "a" else "2")
        mlflow = env.client.post(
            "/v1/endpoints/twins/invocations",
            json={"dataframe_records": [row()]},
            headers={"x-unit-id": unit},
        )
        assert mlflow.json() == {"predictions": [0 if expected == "a" else 1]}
        assert mlflow.headers["x-vigil-variant"] == expected


def test_shadow_never_changes_the_primary_answer_or_latency(env: Env) -> None:
    router = env.router
    before = (router.shadow.completed, router.shadow.dropped)
    direct = env.client.post("/v1/models/m@production/predict", json={"instances": [row()]})
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        response = env.predict("shadowed")
        latencies.append(time.perf_counter() - started)
        body = response.json()
        assert body["variant"] == "live"
        assert body["predictions"] == direct.json()["predictions"] == [0]
    # The shadow model takes SHADOW_DELAY per call: had the primary waited for it, every
    # answer would have taken at least that long.
    assert max(latencies) < SHADOW_DELAY, latencies
    wait_for(lambda: router.shadow.in_flight == 0)
    completed = router.shadow.completed - before[0]
    dropped = router.shadow.dropped - before[1]
    assert completed + dropped == 20
    assert completed >= 1 and dropped >= 1  # four at a time: the rest were dropped, counted
    wait_for(lambda: env.router.state.stats("shadowed").get("challenger") is not None)
    wait_for(lambda: env.router.state.stats("shadowed")["challenger"].requests == completed)
    shadow = env.router.state.stats("shadowed")["challenger"]
    assert shadow.p99_ms >= SHADOW_DELAY * 1000 * 0.5  # the counters saw the slow model
    frame = read_capture(log_dir=env.home / "capture")
    copies = frame[(frame["endpoint"] == "shadowed") & (frame["variant"] == "challenger")]
    assert len(copies) == completed
    assert copies["request_id"].str.contains(":shadow:challenger").all()


def test_a_new_endpoint_loads_its_model_before_its_first_answer(env: Env) -> None:
    version = register(env.vigil, "m", ConstantClassifier(1))
    create_endpoint(
        env.vigil,
        {
            "name": "fresh",
            "variants": [{"name": "only", "model": f"models:/m/{version}"}],
            "policy": {"kind": "fixed", "variant": "only"},
        },
    )
    body = env.predict("fresh").json()  # no wait: an unknown name reloads the endpoints
    assert (body["variant"], body["version"], body["predictions"]) == ("only", version, [1])


def test_a_changed_split_is_followed(env: Env) -> None:
    store = EndpointStore(env.vigil)
    create_endpoint(env.vigil, _split("moving", {"a": 1, "b": 0}))
    assert {env.predict("moving").json()["variant"] for _ in range(20)} == {"a"}
    config = store.get("moving")
    store.update(
        "moving",
        config.model_copy(
            update={"policy": config.policy.model_copy(update={"weights": {"a": 0, "b": 1}})}
        ),
        actor="tester",
    )
    wait_for(lambda: env.predict("moving").json()["variant"] == "b")
    assert {env.predict("moving").json()["variant"] for _ in range(20)} == {"b"}
    store.delete("moving", actor="tester")
    wait_for(lambda: env.predict("moving").status_code == 404)


def test_unknown_or_invalid_endpoints_say_why(env: Env) -> None:
    missing = env.predict("nope")
    assert missing.status_code == 404
    problem = missing.json()
    assert problem["error"] == "endpoint_not_found"
    assert "ab" in problem["detail"]["endpoints"] and "'nope'" in problem["message"]
    assert env.client.post("/v2/endpoints/nope/infer", json={}).status_code == 404
    # An endpoint picks the variant: explaining there would explain a model not named.
    explain = env.client.post(
        "/v2/endpoints/ab/infer",
        json={
            "inputs": [{"name": "f0", "shape": [1], "datatype": "FP64", "data": [0.0]}],
            "parameters": {"explain": True},
        },
    )
    assert explain.status_code == 400 and "experiment endpoint" in explain.json()["error"]
    invalid = env.predict("bad..name")
    assert invalid.status_code == 422 and invalid.json()["error"] == "invalid_name"
    bad_body = env.predict("ab", "u1", instances=[{"f0": "not a number", "f1": 0, "f2": 0}])
    assert bad_body.status_code == 422
    problem = bad_body.json()
    assert problem["error"] == "validation_error"
    expected = WeightedChoice({"a": 70, "b": 30}).pick(unit_point("salt-ab", "u1"))
    assert (problem["detail"]["endpoint"], problem["detail"]["variant"]) == ("ab", expected)
    frame = read_capture(log_dir=env.home / "capture")
    rejected = frame[frame["request_id"] == problem["request_id"]]
    assert rejected[["status", "endpoint", "variant"]].values.tolist() == [[422, "ab", expected]]


def test_with_redis_configured_the_counters_go_to_redis(tmp_path: Path, redis_url: str) -> None:
    vigil = make_vigil(tmp_path / "home", redis_url=redis_url)
    register(vigil, "m", ConstantClassifier(0), alias="production")
    register(vigil, "m", ConstantClassifier(1))
    create_endpoint(vigil, _split("shared", {"a": 1, "b": 1}))
    app = vigil.serving_app(RegistryProvider(vigil, poll_interval=0.2), capture=None)
    assert app.dataplane.endpoints is not None
    store = app.dataplane.endpoints.state
    assert isinstance(store, RedisPolicyState)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        seen = Counter(
            client.post(
                "/v1/endpoints/shared/predict",
                json={"instances": [row()]},
                headers={"x-unit-id": f"r{i}"},
            ).json()["variant"]
            for i in range(30)
        )
        wait_for(lambda: {v: s.requests for v, s in store.stats("shared").items()} == dict(seen))
    # What a replica elsewhere would read: the same totals, straight from Redis.
    assert sum(s.requests for s in RedisPolicyState(redis_url).stats("shared").values()) == 30
