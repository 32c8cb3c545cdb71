"""The router resolves each variant's model once (per endpoint revision and per generation
of the provider) and counts on the event loop: the first request after an alias moves or an
endpoint changes uses the new model, and the shared counters still get every request."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
from tests.serving.conftest import ServerThread

from vigil.app import Vigil
from vigil.experiments.assign import UnitHasher, WeightedChoice
from vigil.experiments.config import parse_endpoint
from vigil.experiments.state import SqlPolicyState
from vigil.experiments.store import EndpointStore
from vigil.serving.endpoints import EndpointRouter
from vigil.serving.registry_provider import RegistryProvider


@dataclass
class Env:
    vigil: Vigil
    provider: RegistryProvider
    router: EndpointRouter
    state: SqlPolicyState
    client: httpx.Client

    def predict(self, endpoint: str, unit: str | None = None) -> dict[str, Any]:
        headers = {"x-unit-id": unit} if unit else {}
        response = self.client.post(
            f"/v1/endpoints/{endpoint}/predict", json={"instances": [row()]}, headers=headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


def _fixed(name: str, model: str) -> dict[str, Any]:
    return {
        "name": name,
        "variants": [{"name": "only", "model": model}],
        "policy": {"kind": "fixed", "variant": "only"},
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    vigil = make_vigil(tmp_path_factory.mktemp("routing-cache") / "home")
    register(vigil, "m", ConstantClassifier(0), alias="production")  # version 1 answers 0
    register(vigil, "m", ConstantClassifier(1))  # version 2 answers 1
    create_endpoint(vigil, _fixed("follows", "models:/m@production"))
    create_endpoint(vigil, _fixed("pinned", "models:/m/1"))
    provider = RegistryProvider(vigil, uris=["models:/m@production"], poll_interval=0.1)
    state = SqlPolicyState(vigil.database)
    router = EndpointRouter(vigil, provider, state, poll_interval=0.1, flush_interval=0.1)
    app = vigil.serving_app(provider, endpoints=router)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield Env(vigil, provider, router, state, client)


def test_the_first_request_after_an_alias_moves_uses_the_new_version(env: Env) -> None:
    assert {env.predict("follows")["version"] for _ in range(5)} == {1}  # resolved, cached
    moves = env.provider.moves
    env.vigil.registry.set_alias("m", "production", 2)
    wait_for(lambda: env.provider.moves > moves, what="the provider to follow the alias")
    body = env.predict("follows")
    assert (body["version"], body["predictions"]) == (2, [1])
    env.vigil.registry.set_alias("m", "production", 1)
    wait_for(lambda: env.provider.moves > moves + 1, what="the alias to move back")
    assert env.predict("follows")["version"] == 1


def test_the_first_request_after_an_endpoint_changes_uses_its_new_model(env: Env) -> None:
    store = EndpointStore(env.vigil)
    assert {env.predict("pinned")["version"] for _ in range(5)} == {1}
    revision = env.router.routed("pinned").revision  # type: ignore[union-attr]
    store.update("pinned", parse_endpoint(_fixed("pinned", "models:/m/2")), actor="tester")
    wait_for(
        lambda: env.router.routed("pinned").revision > revision,  # type: ignore[union-attr]
        what="the router to reload the endpoint",
    )
    body = env.predict("pinned")
    assert (body["variant"], body["version"], body["predictions"]) == ("only", 2, [1])


def test_every_request_reaches_the_shared_counters(env: Env) -> None:
    create_endpoint(
        env.vigil,
        {
            "name": "counted",
            "variants": [
                {"name": "a", "model": "models:/m@production"},
                {"name": "b", "model": "models:/m/2"},
            ],
            "policy": {"kind": "split", "weights": {"a": 1, "b": 1}},
        },
    )
    answered = [env.predict("counted", unit=f"u{i}")["variant"] for i in range(40)]
    # Counted on the event loop, moved to the buffer and flushed every 0.1 s.
    wait_for(
        lambda: sum(s.requests for s in env.state.stats("counted").values()) == 40,
        what="the 40 requests in the shared counters",
    )
    stats = env.state.stats("counted")
    assert {v: stats[v].requests for v in stats} == {v: answered.count(v) for v in set(answered)}
    assert all(sum(stats[v].latency_buckets) == stats[v].requests for v in stats)
    assert all(stats[v].errors == 0 for v in stats)


def test_remembered_unit_points_are_the_keyed_blake2b_points() -> None:
    salt = "salt-cache"
    hasher = UnitHasher(salt)
    units = [f"user-{i}" for i in range(10_000)] + ["x" * 500]
    for unit in [*units, *units[::-1]]:  # past the memory's size: forgotten, hashed again
        digest = hashlib.blake2b(unit.encode(), digest_size=8, key=salt.encode()).digest()
        assert hasher(unit) == int.from_bytes(digest, "big") / 2.0**64
    assert 0 < len(hasher.points) <= 4096 and "x" * 500 not in hasher.points


def test_the_weighted_pick_is_the_interval_holding_the_point() -> None:
    choice = WeightedChoice({"a": 1, "zero": 0, "b": 2, "c": 1})
    assert choice.bounds == [0.25, 0.75, 1.0]
    points = [0.0, 0.2499, 0.25, 0.5, 0.7499, 0.75, 0.99999, 1.0]
    assert [choice.pick(p) for p in points] == ["a", "a", "b", "b", "b", "c", "c", "c"]
