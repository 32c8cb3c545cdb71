"""The canary controller on the real SQL policy state: transitions by compare-and-set, audit
rows, alerts to a real webhook receiver, the alias moved on promotion."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.experiments._registry import vigil_with_models, webhook_receiver
from tests.servers import free_port

from vigil.app import Vigil
from vigil.experiments._alerts import post_webhook
from vigil.experiments.canary import CanaryController, CanaryDecision
from vigil.experiments.config import EndpointConfig, parse_endpoint
from vigil.experiments.state import SqlPolicyState
from vigil.monitor.alerts import list_alerts

T0 = 1_700_000_000.0
STEP = {"min_duration_s": 10, "min_requests": 20}


@pytest.fixture
def vigil(
    tmp_path: Path, make_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Vigil:
    # The webhook receivers listen on loopback, which a webhook may only point at if allowed.
    monkeypatch.setenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS", "true")
    return vigil_with_models(tmp_path / "home", make_bundle)


def canary_endpoint(webhook: str) -> EndpointConfig:
    return parse_endpoint(
        {
            "name": "checkout",
            "variants": [
                {"name": "stable", "model": "models:/churn@production"},
                {"name": "canary", "model": "models:/churn/3"},
            ],
            "policy": {
                "kind": "canary",
                "stable": "stable",
                "canary": "canary",
                "steps": [{"percent": 20, **STEP}, {"percent": 100, **STEP}],
                "guards": {"min_requests": 30, "max_error_rate_increase": 0.02},
                "promote_alias": "production",
            },
            "alert_webhooks": [webhook],
        }
    )


def audit_actions(vigil: Vigil) -> list[tuple[str, str]]:
    events = reversed(vigil.registry.audit(limit=100))
    return [(e.action, e.actor) for e in events if e.action.startswith("canary.")]


def tick(controller: CanaryController, cfg: EndpointConfig, now: float) -> CanaryDecision:
    decision = controller.tick(cfg, now)
    assert decision is not None
    return decision


def test_a_good_canary_ramps_and_is_promoted(vigil: Vigil) -> None:
    state = SqlPolicyState(vigil.database)
    controller = CanaryController(vigil, state)
    with webhook_receiver() as hook:
        cfg = canary_endpoint(hook.url)
        assert tick(controller, cfg, T0).action == "start"
        assert controller.tick(cfg, T0 + 1) is None  # nothing to do yet
        state.add("checkout", "stable", requests=400, latency_ms=[5.0] * 400)
        state.add("checkout", "canary", requests=25, latency_ms=[5.0] * 25)
        first = tick(controller, cfg, T0 + 11)
        assert (first.action, first.step, first.percent) == ("advance", 1, 100.0)
        assert state.control("checkout").data["step"] == 1
        state.add("checkout", "canary", requests=25, latency_ms=[5.0] * 25)
        before = time.time()
        done = tick(controller, cfg, T0 + 22)
        assert done.action == "promote"
        assert controller.tick(cfg, T0 + 99) is None  # settled
        assert hook.bodies and hook.bodies[-1]["labels"]["alertname"] == "canary_promote"
    control = state.control("checkout")
    # Started, advanced, promoted, then marked settled once the alias moved and the audit
    # and alert were done (what the update policy waits for).
    assert control.data["status"] == "promoted" and control.revision == 4
    assert before <= control.data["applied_at"] <= time.time()
    assert vigil.registry.resolve("models:/churn@production").version == 3
    moved = vigil.registry.alias_history("churn", "production")[0]
    assert (moved.from_version, moved.to_version, moved.actor) == (1, 3, "canary-controller")
    assert audit_actions(vigil) == [
        ("canary.start", "canary-controller"),
        ("canary.advance", "canary-controller"),
        ("canary.promote", "canary-controller"),
    ]
    promote = vigil.registry.audit(limit=100)
    row = next(e for e in promote if e.action == "canary.promote")
    assert row.entity_name == "checkout" and row.model_name == "churn"
    assert row.before == {"step": 1, "percent": 100.0, "status": "ramping"}
    assert row.after is not None
    assert row.after["alias"] == {"model": "churn", "alias": "production", "version": 3}


def test_a_failing_canary_is_rolled_back_with_an_alert(vigil: Vigil) -> None:
    state = SqlPolicyState(vigil.database)
    controller = CanaryController(vigil, state)
    with webhook_receiver() as hook:
        cfg = canary_endpoint(hook.url)
        tick(controller, cfg, T0)
        state.add("checkout", "stable", requests=400, errors=2)
        state.add("checkout", "canary", requests=40, errors=8)
        rolled = tick(controller, cfg, T0 + 2)
        assert (rolled.action, rolled.percent) == ("rollback", 0.0)
        assert controller.tick(cfg, T0 + 3) is None
    assert len(hook.bodies) == 1
    alert = hook.bodies[0]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "canary_rollback",
        "severity": "critical",
        "endpoint": "checkout",
        "variant": "canary",
        "model": "churn",
        "action": "rollback",
    }
    assert "canary error rate 20.0% exceeds stable 0.5%" in alert["annotations"]["summary"]
    assert alert["value"] == pytest.approx(0.2)
    assert state.control("checkout").data["status"] == "rolled_back"
    assert vigil.registry.resolve("models:/churn@production").version == 1  # not moved
    assert [a for a, _ in audit_actions(vigil)] == ["canary.start", "canary.rollback"]
    row = next(e for e in vigil.registry.audit() if e.action == "canary.rollback")
    assert row.after is not None and row.after["status"] == "rolled_back"
    assert row.after["evidence"]["canary_requests"] == 40
    # The monitoring alert log has it too.
    fired = [a for a in list_alerts(vigil.database) if a.rule == "canary_rollback"]
    assert len(fired) == 1 and fired[0].labels["endpoint"] == "checkout"


def test_of_many_workers_ticking_at_once_exactly_one_applies_the_transition(
    vigil: Vigil,
) -> None:
    state = SqlPolicyState(vigil.database)
    cfg = canary_endpoint("http://127.0.0.1:9/unused")
    tick(CanaryController(vigil, state), cfg, T0)
    state.add("checkout", "stable", requests=400)
    state.add("checkout", "canary", requests=25)
    controllers = [CanaryController(vigil, SqlPolicyState(vigil.database)) for _ in range(6)]
    barrier = threading.Barrier(len(controllers))
    results: list[CanaryDecision | None] = []

    def run(controller: CanaryController) -> None:
        barrier.wait()
        results.append(controller.tick(cfg, T0 + 11))

    threads = [threading.Thread(target=run, args=(c,)) for c in controllers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    applied = [r for r in results if r is not None]
    assert len(results) == 6 and len(applied) == 1 and applied[0].action == "advance"
    assert [a for a, _ in audit_actions(vigil)] == ["canary.start", "canary.advance"]
    assert state.control("checkout").data["step"] == 1


def test_a_changed_canary_restarts_the_ramp(vigil: Vigil) -> None:
    state = SqlPolicyState(vigil.database)
    controller = CanaryController(vigil, state)
    cfg = canary_endpoint("http://127.0.0.1:9/unused").model_copy(update={"alert_webhooks": []})
    tick(controller, cfg, T0)
    state.add("checkout", "stable", requests=400)
    state.add("checkout", "canary", requests=40, errors=40)
    assert tick(controller, cfg, T0 + 1).action == "rollback"
    data = cfg.model_dump()
    data["variants"][1]["model"] = "models:/churn/2"
    fixed = parse_endpoint(data)
    again = tick(controller, fixed, T0 + 2)
    assert (again.action, again.percent) == ("restart", 20.0)
    # The old canary's failures are in the snapshot: the new run starts clean.
    state.add("checkout", "canary", requests=30)
    assert controller.tick(fixed, T0 + 3) is None
    assert [a for a, _ in audit_actions(vigil)][-1] == "canary.restart"


def test_a_failed_webhook_is_logged_without_its_secret(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/T000/secret-token?key=hunter2"
    with caplog.at_level(logging.WARNING, logger="vigil.experiments"):
        assert post_webhook(url, {"status": "firing"}, allow_private=True) is False
    text = caplog.text
    assert "alert webhook http://127.0.0.1" in text
    assert "secret-token" not in text and "hunter2" not in text


def test_a_webhook_inside_the_network_is_not_called_unless_allowed(
    vigil: Vigil, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS")
    state = SqlPolicyState(vigil.database)
    with webhook_receiver() as hook, caplog.at_level(logging.WARNING, "vigil.experiments"):
        # Accepted when it was configured (allowed then, or its name pointed elsewhere).
        cfg = canary_endpoint(hook.url)
        controller = CanaryController(vigil, state)
        tick(controller, cfg, T0)
        state.add("checkout", "stable", requests=400)
        state.add("checkout", "canary", requests=40, errors=40)
        assert tick(controller, cfg, T0 + 1).action == "rollback"
    assert hook.bodies == []
    assert "(loopback address)" in caplog.text and "secret" not in caplog.text
