"""The loop end to end through a real server: a drift alert starts the policy's run, the
retrain command trains on the export and registers its candidate, the gate passes it, it
shadows, ramps as a canary and is promoted (or, when its users' rewards say it does worse,
rolled back by the canary's guards); every step audited, the outcome alerted to a webhook
receiver the test starts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests._waiting import wait_for
from tests.experiments._registry import WebhookReceiver, webhook_receiver
from tests.monitor._data import make_frame
from tests.policy._world import build, retrain_script
from tests.serving.conftest import ServerThread

from vigil.app import Vigil
from vigil.monitor.notify import fire_event
from vigil.policy.config import parse_policy
from vigil.policy.runs import RunStore
from vigil.policy.store import PolicyStore
from vigil.serving.registry_provider import RegistryProvider
from vigil.settings import load_settings

pytestmark = pytest.mark.slow


class Load:
    """Client threads posting rows to the policy's endpoint until stopped."""

    def __init__(
        self, url: str, endpoint: str, threads: int = 2, rewards: dict[str, float] | None = None
    ) -> None:
        self.url, self.endpoint = url, endpoint
        self.rewards = rewards or {}
        """Reward sent back for each answer of these variants (what users made of it)."""
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(threads)
        ]

    def _run(self, seed: int) -> None:
        frame = make_frame(500, seed=100 + seed)
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                row = frame.iloc[int(rng.integers(len(frame)))]
                response = client.post(
                    f"/v1/endpoints/{self.endpoint}/predict",
                    json={
                        "instances": [
                            {"age": row["age"], "income": row["income"], "plan": row["plan"]}
                        ]
                    },
                    headers={"x-unit-id": f"u{rng.integers(1_000_000)}"},
                )
                self.statuses.append(response.status_code)
                body = response.json()
                if body.get("variant") in self.rewards:
                    client.post(
                        "/v1/feedback",
                        json={
                            "request_id": body["request_id"],
                            "reward": self.rewards[body["variant"]],
                        },
                    )
                self._stop.wait(0.01)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as r:
        yield r


def _world(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    receiver: WebhookReceiver,
    **guards: Any,
) -> Vigil:
    """churn served, its labelled traffic logged, and a policy retraining it on a drift
    alert, with short stages (``guards``: more canary guards)."""
    monkeypatch.setenv("VIGIL_POLICY_INTERVAL_S", "0.3")
    monkeypatch.setenv("VIGIL_MONITOR_ENABLED", "false")
    monkeypatch.setenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS", "true")
    monkeypatch.setenv("VIGIL_MONITOR_WEBHOOKS", f'["{receiver.url}"]')
    monkeypatch.setenv("VIGIL_MONITOR_RETRIES", "0")
    app = Vigil(load_settings(home=home, actor="ada"))
    build(app)
    PolicyStore(app).set(
        parse_policy(
            {
                "model": "churn",
                "triggers": {"alerts": ["dataset_drift"]},
                "action": {"kind": "command", "argv": retrain_script(tmp_path), "timeout_s": 120},
                "gate": {"min_improvement": 0.02},
                "rollout": {
                    "shadow": {
                        "min_requests": 20,
                        "min_duration_s": 0.5,
                        "max_disagreement": 0.9,
                        "max_latency_ratio": 50,  # a loaded CI host delays the copies
                    },
                    "steps": [
                        {"percent": 50, "min_duration_s": 0.5, "min_requests": 10},
                        {"percent": 100, "min_duration_s": 0.5, "min_requests": 10},
                    ],
                    "guards": {"min_requests": 10, "max_latency_ratio": 50, **guards},
                },
            }
        ),
        actor="ada",
    )
    return app


def _drift_alert(app: Vigil) -> None:
    """What monitoring raises when the traffic drifts from the reference."""
    fire_event(
        app,
        name="dataset_drift",
        severity="warning",
        summary="churn: 2 of 3 features drifted",
        labels={"model": "churn"},
    )


def _ended(runs: RunStore, run_id: str) -> bool:
    return runs.get(run_id).state in ("promoted", "rejected", "failed", "rolled_back")


def _alerted(receiver: WebhookReceiver, name: str) -> bool:
    return any(
        a["labels"].get("alertname") == name
        for body in receiver.bodies
        for a in body.get("alerts", [])
    )


def _policy_actions(app: Vigil) -> list[str]:
    return [
        e.action
        for e in reversed(app.registry.audit("churn", limit=500))
        if e.action.startswith(("policy.", "canary."))
    ]


def test_a_drift_alert_retrains_gates_shadows_ramps_and_promotes(
    vigil_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver
) -> None:
    app = _world(vigil_home, tmp_path, monkeypatch, receiver)
    provider = RegistryProvider(app, poll_interval=0.2)
    server_app = app.serving_app(provider)
    runs = RunStore(app.database)
    with ServerThread(server_app) as server, Load(server.url, "churn-live") as load:
        wait_for(lambda: len(load.statuses) > 20, 30, what="traffic through the endpoint")
        _drift_alert(app)
        wait_for(lambda: runs.list("churn", limit=1), 15, what="the alert to start a run")
        run = runs.list("churn", limit=1)[0]
        # One run in flight per model: a manual start now is refused, naming it.
        again = httpx.post(f"{server.url}/v1/admin/policies/churn/runs", json={})
        assert again.status_code == 409 and run.run_id in again.json()["message"]
        wait_for(lambda: _ended(runs, run.run_id), 120, what="the run to end", interval=0.3)
        run = runs.get(run.run_id)
        assert run.state == "promoted", (run.error, run.data)
        listed = httpx.get(f"{server.url}/v1/admin/policies/churn/runs").json()["runs"]
        # The policy API sits above serving, and the server's description includes it.
        described = httpx.get(f"{server.url}/openapi.json").json()["paths"]
        assert {"/v1/admin/policies", "/v1/admin/policies/{model}/runs"} <= set(described)
        assert listed[0]["run_id"] == run.run_id and listed[0]["state"] == "promoted"
        # The admin API refuses a bad policy as the CLI does, and a second manual run
        # starts (the first ended).
        bad = httpx.put(
            f"{server.url}/v1/admin/policies/churn",
            json={"action": {"kind": "command", "argv": []}},
        )
        assert bad.status_code == 422
        assert bad.json()["message"].startswith("invalid update policy: action.command.argv")
        # A command runs on the server: the API may not set one (unless allowed).
        command = httpx.put(
            f"{server.url}/v1/admin/policies/churn",
            json={"action": {"kind": "command", "argv": ["sh", "-c", "id"]}},
        )
        assert command.status_code == 403 and "runs a program" in command.json()["message"]
        shown = httpx.get(f"{server.url}/v1/admin/policies/churn").json()
        assert shown["model"] == "churn" and shown["runs"][0]["run_id"] == run.run_id
    assert run.trigger["kind"] == "alert" and run.trigger["rule"] == "dataset_drift"
    # The export: the labelled traffic, less the share held out for the gate.
    export = run.data["export"]
    assert export["labelled_rows"] == 800 and export["answered_rows"] >= 800
    assert export["rows"] + export["held_out_rows"] == 800
    assert 100 < export["held_out_rows"] < 220  # 20 % of the requests, by a hash of their ids
    manifest = json.loads((Path(export["directory"]) / "manifest.json").read_text())
    assert manifest["reference"]["uri"] == "models:/churn/1"
    assert manifest["label"] == "label" and manifest["features"] == ["age", "income", "plan"]
    train = pd.read_parquet(Path(export["directory"]) / "train.parquet")
    assert len(train) == export["rows"]
    assert {"age", "income", "plan", "label", "request_id"} <= set(train.columns)
    held = pd.read_parquet(run.data["holdout"])
    assert not set(held["request_id"]) & set(train["request_id"])
    log = Path(run.data["job"]["log"]).read_text()
    assert "training on" in log and "for churn served 1" in log
    verdict = run.data["gate"]["replay"]
    assert verdict["passed"] and verdict["candidate"] > verdict["current"] + 0.02
    assert app.registry.resolve("models:/churn@production").version == run.candidate_version == 2
    assert set(load.statuses) == {200}
    shadow = run.data["shadow"]["evidence"]
    assert shadow["candidate_requests"] >= 20 and shadow["disagreement"] is not None
    actions = _policy_actions(app)
    assert actions[:7] == [
        "policy.set",
        "policy.triggered",
        "policy.exporting",
        "policy.training",
        "policy.gating",
        "policy.shadow",
        "policy.canary",
    ]
    assert "canary.promote" in actions and actions[-1] == "policy.promoted"
    wait_for(
        lambda: _alerted(receiver, "policy_promoted"), 15, what="the promotion alert at the webhook"
    )


def test_a_candidate_the_canary_guards_refuse_is_rolled_back(
    vigil_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver
) -> None:
    """The retrained candidate passes the gate and its shadow, but once it answers users
    their rewards say it does worse (the quality guard): the canary rolls back, the run
    ends rolled back, production stays on the served version, and the owners are told."""
    app = _world(vigil_home, tmp_path, monkeypatch, receiver, max_quality_drop=0.2, min_labels=10)
    server_app = app.serving_app(RegistryProvider(app, poll_interval=0.2))
    runs = RunStore(app.database)
    rewards = {"served": 1.0, "candidate": 0.0}
    with (
        ServerThread(server_app) as server,
        Load(server.url, "churn-live", rewards=rewards) as load,
    ):
        wait_for(lambda: len(load.statuses) > 20, 30, what="traffic through the endpoint")
        _drift_alert(app)
        wait_for(lambda: runs.list("churn", limit=1), 15, what="the alert to start a run")
        run_id = runs.list("churn", limit=1)[0].run_id
        wait_for(lambda: _ended(runs, run_id), 120, what="the run to end", interval=0.3)
    run = runs.get(run_id)
    assert run.state == "rolled_back", (run.error, run.data)
    assert run.data["gate"]["replay"]["passed"]
    assert app.registry.resolve("models:/churn@production").version == 1
    assert set(load.statuses) == {200}
    actions = _policy_actions(app)
    assert "policy.canary" in actions and "canary.rollback" in actions
    assert "canary.promote" not in actions and actions[-1] == "policy.rolled_back"
    # Rolled back by the quality guard, on the rewards: 1.0 served, 0.0 candidate.
    (rollback,) = [
        e for e in app.registry.audit("churn", limit=500) if e.action == "canary.rollback"
    ]
    assert rollback.after is not None
    evidence = rollback.after["evidence"]
    assert (evidence["stable_quality"], evidence["canary_quality"]) == (1.0, 0.0), rollback.after
    wait_for(lambda: _alerted(receiver, "policy_rolled_back"), 15, what="the rollback alert")
