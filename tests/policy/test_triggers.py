"""Triggers (alerts, schedule, threshold, cooldown) and the rollout's decisions, without a
server: alert events and monitored points written to the store as monitoring writes them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigil.app import Vigil
from vigil.experiments.canary import policy_fingerprint
from vigil.experiments.state import VariantStats
from vigil.monitor.notify import fire_event
from vigil.monitor.tables import MonitorPointRow, MonitorWindowRow
from vigil.policy import rollout
from vigil.policy.config import ShadowStage, parse_policy
from vigil.policy.engine import PolicyEngine
from vigil.policy.store import PolicyStore
from vigil.policy.triggers import due_triggers
from vigil.settings import load_settings

NOW = datetime(2026, 12, 7, 2, 59, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path, make_bundle: Callable[..., Path]) -> Vigil:
    v = Vigil(load_settings(home=tmp_path / "home", actor="ada"))
    for name in ("churn", "fraud"):
        v.registry.register_version(name, make_bundle(name), alias="production")
    return v


def _set(app: Vigil, **triggers: object) -> None:
    doc = {
        "model": "churn",
        "triggers": triggers,
        "action": {"kind": "command", "argv": ["true"]},
    }
    PolicyStore(app).set(parse_policy(doc), actor="ada")


def _due(app: Vigil, now: datetime = NOW) -> list[dict[str, object]]:
    store = PolicyStore(app)
    fired, cursors = due_triggers(app.database, store.get("churn"), now)
    store.update_trigger_state("churn", cursors)
    return fired


def _alert(app: Vigil, rule: str, model: str) -> None:
    fire_event(app, name=rule, severity="warning", summary="s", labels={"model": model})


def test_alerts_fire_once_for_the_model_and_only_after_the_policy_was_set(app: Vigil) -> None:
    _alert(app, "dataset_drift", "churn")  # before the policy: does not count
    _set(app, alerts=["dataset_drift"])
    assert _due(app) == []
    _alert(app, "dataset_drift", "fraud")  # another model's
    _alert(app, "latency_high", "churn")  # another rule
    assert _due(app) == []
    _alert(app, "dataset_drift", "churn")
    fired = _due(app)
    assert [(f["kind"], f["rule"]) for f in fired] == [("alert", "dataset_drift")]
    assert _due(app) == []  # seen


def test_a_schedule_fires_when_due_and_then_waits_for_the_next(app: Vigil) -> None:
    _set(app, schedule="0 3 * * *")
    assert _due(app) == []  # first look: the next firing is 03:00
    assert (
        PolicyStore(app).get("churn").trigger_state["schedule_next"].startswith("2026-12-07T03:00")
    )
    assert _due(app, NOW + timedelta(seconds=30)) == []
    fired = _due(app, NOW + timedelta(minutes=2))
    assert fired == [
        {"kind": "schedule", "schedule": "0 3 * * *", "due": "2026-12-07T03:00:00+00:00"}
    ]
    assert _due(app, NOW + timedelta(minutes=3)) == []
    assert (
        PolicyStore(app).get("churn").trigger_state["schedule_next"].startswith("2026-12-08T03:00")
    )


def _point(app: Vigil, end: datetime, value: float) -> None:
    with app.database.session(write=True) as session:
        window = MonitorWindowRow(
            model="churn", version=1, route="native", window="1h",
            window_start=end - timedelta(hours=1), window_end=end, partial=False,
            n_rows=100, n_requests=100, n_labelled=100, summary={},
        )  # fmt: skip
        session.add(window)
        session.flush()
        session.add(
            MonitorPointRow(
                window_id=window.id,
                model="churn",
                version=1,
                route="native",
                window="1h",
                window_start=window.window_start,
                window_end=end,
                partial=False,
                metric="accuracy",
                feature=None,
                value=value,
            )
        )


def test_a_threshold_fires_once_per_window_that_crosses_it(app: Vigil) -> None:
    _set(app, thresholds=[{"metric": "accuracy", "comparison": "<", "value": 0.8}])
    _point(app, NOW - timedelta(hours=2), 0.9)
    assert _due(app) == []
    _point(app, NOW - timedelta(hours=1), 0.7)
    fired = _due(app)
    assert [(f["kind"], f["value"]) for f in fired] == [("threshold", 0.7)]
    assert _due(app) == []  # the same window is not judged twice


def test_automatic_runs_respect_the_cooldown_and_enabled(app: Vigil) -> None:
    _set(app, alerts=["dataset_drift"])
    engine = PolicyEngine(app)
    first = engine.start("churn", {"kind": "alert"}, actor="t", automatic=True)
    assert first is not None
    # In flight: an automatic start is quietly skipped (a manual one would be a 409).
    assert engine.start("churn", {"kind": "alert"}, actor="t", automatic=True) is None
    engine.runs.transition(first, "failed", actor="t", error="stop")
    # Ended, but within the cooldown (1h by default).
    assert engine.start("churn", {"kind": "alert"}, actor="t", automatic=True) is None
    assert engine.start("churn", {"kind": "manual"}, actor="t") is not None


def test_the_shadow_is_judged_on_its_own_requests_once_long_enough() -> None:
    stage = ShadowStage(min_requests=50, min_duration_s=10, max_disagreement=0.2)
    base = {"candidate": VariantStats().add(requests=1000, latency_ms=[90.0] * 1000).counters()}

    def stats(requests: int, errors: int = 0, latency: float = 4.0) -> dict[str, VariantStats]:
        candidate = VariantStats().add(requests=1000, latency_ms=[90.0] * 1000)
        candidate.add(requests=requests, errors=errors, latency_ms=[latency] * requests)
        served = VariantStats().add(requests=requests, latency_ms=[4.0] * requests)
        return {"served": served, "candidate": candidate}

    early = rollout.judge_shadow(stage, stats(40), base, 60.0, 0.1)
    assert not early.done and early.evidence["candidate_requests"] == 40.0
    assert not rollout.judge_shadow(stage, stats(60), base, 5.0, 0.1).done
    good = rollout.judge_shadow(stage, stats(60), base, 60.0, 0.1)
    assert good.done and good.passed
    failing = rollout.judge_shadow(stage, stats(60, errors=6), base, 60.0, 0.1)
    assert failing.done and not failing.passed and "error rate 10.0%" in failing.reason
    slow = rollout.judge_shadow(stage, stats(60, latency=40.0), base, 60.0, 0.1)
    assert not slow.passed and "median latency" in slow.reason
    differs = rollout.judge_shadow(stage, stats(60), base, 60.0, 0.5)
    assert not differs.passed and "disagrees" in differs.reason


def test_the_canary_outcome_counts_only_this_canary() -> None:
    config = parse_policy({"model": "churn", "action": {"kind": "command", "argv": ["x"]}})
    canary = rollout.canary_config(config, 1, 2)
    mine = policy_fingerprint(canary)
    assert rollout.canary_outcome(canary, {}) is None
    assert rollout.canary_outcome(canary, {"fingerprint": mine, "status": "ramping"}) is None
    # Ended, but the controller has not moved the alias and audited yet: not over, unless
    # it died at it (the grace period has passed).
    ended = {"fingerprint": mine, "status": "promoted", "ended_at": 1000.0}
    assert rollout.canary_outcome(canary, ended, now=1001.0) is None
    late = 1000.0 + rollout.SETTLE_GRACE_S + 1
    assert rollout.canary_outcome(canary, ended, now=late) == "promoted"
    settled = {**ended, "applied_at": 1000.5}
    assert rollout.canary_outcome(canary, settled, now=1001.0) == "promoted"
    # An earlier canary of the same endpoint (other versions) rolled back: not this one.
    other = policy_fingerprint(rollout.canary_config(config, 1, 3))
    assert rollout.canary_outcome(canary, {"fingerprint": other, "status": "rolled_back"}) is None


def test_the_server_loop_syncs_vigil_yaml_and_starts_runs_on_alerts(app: Vigil) -> None:
    from sqlalchemy import select

    from vigil.monitor.tables import MonitorLeaseRow
    from vigil.policy.runs import RunStore
    from vigil.policy.scheduler import PolicyScheduler
    from vigil.policy.settings import PolicySettings

    idle = PolicyScheduler(app, PolicySettings())
    idle.tick()
    with app.database.session() as session:  # no policy: not even the lease was written
        assert session.scalars(select(MonitorLeaseRow)).all() == []
    declared = parse_policy(
        {
            "model": "churn",
            "triggers": {"alerts": ["dataset_drift"]},
            "action": {"kind": "command", "argv": ["true"]},
        }
    )
    loop = PolicyScheduler(app, PolicySettings(policies=[declared]))
    loop.tick()
    stored = PolicyStore(app).get("churn")
    assert stored.updated_by == "vigil.yaml" and loop.ticks == 1
    _alert(app, "dataset_drift", "churn")
    loop.tick()
    (run,) = RunStore(app.database).list("churn")
    assert run.trigger["kind"] == "alert" and run.trigger["rule"] == "dataset_drift"
    # Advanced in the same tick: nothing was captured, so there is nothing to train on.
    assert run.state == "failed" and "only 0 labelled rows" in (run.error or "")
