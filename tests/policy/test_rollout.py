"""The engine's rollout and webhook paths without a server: a canary the guards roll back
ends the run rolled back (endpoint restored, alert raised), and an Airflow webhook action
receives the ``dagRuns`` body."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.experiments._registry import webhook_receiver

from vigil.app import Vigil
from vigil.experiments.canary import policy_fingerprint
from vigil.experiments.state import SqlPolicyState
from vigil.experiments.store import EndpointStore
from vigil.monitor.alerts import list_alerts
from vigil.policy import rollout
from vigil.policy.config import parse_policy
from vigil.policy.engine import PolicyEngine
from vigil.policy.store import PolicyStore
from vigil.settings import load_settings


@pytest.fixture
def app(tmp_path: Path, make_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Vigil:
    monkeypatch.setenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS", "true")
    v = Vigil(load_settings(home=tmp_path / "home", actor="ada"))
    v.registry.register_version("churn", make_bundle("c1"), alias="production")
    v.registry.register_version("churn", make_bundle("c2"))
    return v


def test_a_canary_rolled_back_by_its_guards_rolls_the_run_back(app: Vigil) -> None:
    config = parse_policy(
        {
            "model": "churn",
            "action": {"kind": "command", "argv": ["true"]},
            "rollout": {"shadow": None},
        }
    )
    PolicyStore(app).set(config, actor="ada")
    engine = PolicyEngine(app)
    run = engine.start("churn", {"kind": "manual"}, actor="ada")
    assert run is not None
    # As if the job had run and the gate passed: the run enters its canary.
    run = engine.runs.transition(run, "gating", actor="t", served_version=1, candidate_version=2)
    assert run is not None
    run = engine._start_stage(run, config, "canary", {"gate": {"replay": {"passed": True}}})
    assert run is not None and run.state == "canary"
    live = EndpointStore(app).get("churn-live")
    assert live.policy.kind == "canary" and [v.model for v in live.variants] == [
        "models:/churn/1",
        "models:/churn/2",
    ]
    assert engine.advance(run) == run  # ramping: nothing to do
    # The canary controller (in the server) breached a guard and rolled back.
    state = SqlPolicyState(app.database)
    control = {
        "fingerprint": policy_fingerprint(rollout.canary_config(config, 1, 2)),
        "status": "rolled_back",
        "reason": "canary error rate 12.0% exceeds stable 0.0% by more than 1.0 points",
    }
    assert state.set_control("churn-live", control, expected_revision=0)
    ended = engine.advance(run)
    assert ended is not None and ended.state == "rolled_back"
    assert ended.error is not None and "canary error rate 12.0%" in ended.error
    assert app.registry.resolve("models:/churn@production").version == 1
    idle = EndpointStore(app).get("churn-live")
    assert idle.policy.kind == "fixed" and idle.variants[0].model == "models:/churn@production"
    alerts = list_alerts(app.database, include_resolved=True)
    assert any(a.rule == "policy_rolled_back" and a.labels["run"] == run.run_id for a in alerts)


def test_an_airflow_webhook_gets_the_dag_run_body(app: Vigil) -> None:
    with webhook_receiver() as receiver:
        PolicyStore(app).set(
            parse_policy(
                {
                    "model": "churn",
                    "action": {
                        "kind": "webhook",
                        "url": receiver.url,
                        "format": "airflow",
                        "timeout_s": 1,
                        "headers": {"Authorization": "Basic c2VjcmV0"},
                    },
                    "export": {"min_rows": 0},
                }
            ),
            actor="ada",
        )
        engine = PolicyEngine(app)
        run = engine.start("churn", {"kind": "manual"}, actor="ada")
        assert run is not None
        run = engine.advance(run)
        assert run is not None and run.state == "training", run.error
        assert run.data["job"]["webhook"]["status"] == 200
    (body,) = receiver.bodies
    assert body["dag_run_id"] == f"vigil-{run.run_id}"
    conf = body["conf"]
    assert conf["model"] == "churn" and conf["served_version"] == 1
    assert conf["run_id"] == run.run_id and conf["train_file"] is None  # nothing labelled
    assert Path(conf["manifest"]).is_file()
    # No candidate within the action's timeout: the run fails.
    import time

    time.sleep(1.1)
    failed = engine.advance(engine.runs.get(run.run_id))
    assert failed is not None and failed.state == "failed"
    assert failed.error == "no candidate was registered within 1 s"
