"""Canaries end to end, under load through a real server: a bad version is rolled back on its
own (alert delivered, rollback audited, no failure outside the canary's share) and a good one
ramps to 100 % and is promoted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests._waiting import wait_for
from tests.experiments._endpoints import ConstantClassifier, create_endpoint, make_vigil, register
from tests.serving.conftest import ServerThread

from vigil.app import Vigil
from vigil.experiments.assign import canary_side, unit_point
from vigil.experiments.state import SqlPolicyState
from vigil.serving.endpoints import EndpointRouter
from vigil.serving.registry_provider import RegistryProvider

pytestmark = pytest.mark.slow

FIRST_STEP = 20.0
STEPS = [
    {"percent": FIRST_STEP, "min_duration_s": 1.0, "min_requests": 15},
    {"percent": 100, "min_duration_s": 1.0, "min_requests": 15},
]


class Receiver:
    """A webhook receiver on a loopback port that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                outer.received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Outcome:
    unit: str
    status: int
    variant: str | None
    prediction: int | None
    sent: float


@dataclass
class Load:
    """Client threads posting to an endpoint with random units and inputs until stopped."""

    url: str
    endpoint: str
    threads: int = 4
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                unit = f"u{rng.integers(1_000_000)}"
                f0 = float(rng.uniform(0, 2))
                sent = time.monotonic()
                response = client.post(
                    f"/v1/endpoints/{self.endpoint}/predict",
                    json={"instances": [{"f0": f0, "f1": 0.5, "f2": 0.5}]},
                    headers={"x-unit-id": unit},
                )
                body = response.json()
                variant = body.get("variant") or body.get("detail", {}).get("variant")
                prediction = body["predictions"][0] if response.status_code == 200 else None
                self.outcomes.append(Outcome(unit, response.status_code, variant, prediction, sent))

    def sent_after(self, moment: float) -> list[Outcome]:
        """The answers to the requests sent after ``moment``."""
        return [o for o in list(self.outcomes) if o.sent > moment]

    def __enter__(self) -> Load:
        self._workers = [
            threading.Thread(target=self._run, args=(seed,), daemon=True)
            for seed in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)


@dataclass
class Env:
    vigil: Vigil
    server: ServerThread
    router: EndpointRouter
    receiver: Receiver


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home: Path = tmp_path_factory.mktemp("canary") / "home"
    vigil = make_vigil(home)
    register(vigil, "bad", ConstantClassifier(0), alias="production")
    # Fails for f0 > 1: never on the reference data (f0 in [0, 1]), on half of the load.
    register(vigil, "bad", ConstantClassifier(0, fail_above=1.0))
    register(vigil, "good", ConstantClassifier(0), alias="production")
    register(vigil, "good", ConstantClassifier(1))
    provider = RegistryProvider(vigil, poll_interval=0.2)
    router = EndpointRouter(
        vigil, provider, SqlPolicyState(vigil.database), poll_interval=0.2, flush_interval=0.1
    )
    with pytest.MonkeyPatch.context() as patch:
        # The receiver listens on loopback, which a webhook may only point at if allowed
        # (a monitoring setting, read once by the composition root).
        patch.setenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS", "true")
        app = vigil.serving_app(provider, endpoints=router)
        with Receiver() as receiver, ServerThread(app) as server:
            yield Env(vigil, server, router, receiver)


def _canary(name: str, model: str, receiver: Receiver, **guards: Any) -> dict[str, Any]:
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
        "alert_webhooks": [receiver.url],
    }


def routed_percent(env: Env, endpoint: str) -> float | None:
    """The canary's share of traffic the router uses now (None before it routes it)."""
    live = env.router.routed(endpoint)
    return None if live is None else live.percent


def test_a_failing_canary_is_rolled_back_automatically(env: Env) -> None:
    create_endpoint(env.vigil, _canary("risky", "bad", env.receiver, max_error_rate_increase=0.05))
    state = env.router.state
    with Load(env.server.url, "risky") as load:
        wait_for(
            lambda: state.control("risky").data.get("status") == "rolled_back",
            what="the rollback",
        )
        wait_for(lambda: routed_percent(env, "risky") == 0.0, what="the router to read it")
        rolled_back_at = time.monotonic()
        # Load goes on until plenty of requests were sent after the router saw the rollback.
        wait_for(lambda: len(load.sent_after(rolled_back_at)) >= 40, what="answers after it")
    outcomes = load.outcomes
    assert len(outcomes) > 50
    failed = [o for o in outcomes if o.status != 200]
    assert failed, "the bad canary never failed: the test did not exercise it"
    # No failure outside the canary's share: only canary requests failed, all with a 422
    # naming the canary (the model refused inputs it should take: model_rejected_input,
    # which the guard counts against the canary), and only units inside the first step's
    # share ever reached it.
    assert {o.status for o in failed} == {422}
    assert {o.variant for o in failed} == {"canary"}
    for o in outcomes:
        if o.variant == "canary":
            assert canary_side(unit_point("salt-risky", o.unit), FIRST_STEP)
    assert all(o.status == 200 for o in outcomes if o.variant == "stable")
    # Once the router has read the rollback, everything goes to the stable variant.
    late = load.sent_after(rolled_back_at)
    assert late and {(o.status, o.variant) for o in late} == {(200, "stable")}
    # The alert reached the webhook, and the rollback is in the audit trail.
    wait_for(lambda: env.receiver.received, what="the rollback alert")
    alerts = [
        alert
        for body in env.receiver.received
        for alert in (body if isinstance(body, list) else body.get("alerts", [body]))
    ]
    rollback = [a for a in alerts if a["labels"].get("endpoint") == "risky"]
    assert rollback and rollback[0]["labels"]["alertname"] == "canary_rollback"
    assert "error rate" in rollback[0]["annotations"]["summary"]
    audit = [e for e in env.vigil.registry.audit(limit=200) if e.entity_name == "risky"]
    assert "canary.rollback" in {e.action for e in audit}
    # Rolling back never moves the alias.
    assert env.vigil.registry.resolve("models:/bad@production").version == 1


def test_a_good_canary_ramps_to_100_percent_and_is_promoted(env: Env) -> None:
    create_endpoint(env.vigil, _canary("safe", "good", env.receiver))
    state = env.router.state
    with Load(env.server.url, "safe") as load:
        wait_for(
            lambda: state.control("safe").data.get("status") == "promoted", what="the promotion"
        )
        wait_for(lambda: routed_percent(env, "safe") == 100.0, what="the router to read it")
        promoted_at = time.monotonic()
        wait_for(lambda: len(load.sent_after(promoted_at)) >= 40, what="answers after it")
    outcomes = load.outcomes
    assert all(o.status == 200 for o in outcomes)
    assert env.vigil.registry.resolve("models:/good@production").version == 2
    late = load.sent_after(promoted_at)
    assert late and {o.prediction for o in late} == {1}  # every answer is the new version's
    audit = [e.action for e in env.vigil.registry.audit(limit=200) if e.entity_name == "safe"]
    assert {"canary.advance", "canary.promote"} <= set(audit)
