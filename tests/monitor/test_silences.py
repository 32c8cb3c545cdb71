"""Silences keep matching alerts from a real webhook receiver while they last; acks record
who took an alert on; both show in `vigil alert list` and are audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from tests.monitor._receiver import Receiver
from tests.monitor._series import T0, store_window
from tests.monitor.test_notify import settings_for
from typer.testing import CliRunner

from vigil.app import Vigil
from vigil.cli import app
from vigil.errors import ConflictError, ValidationError
from vigil.monitor import alerts as alerts_module
from vigil.monitor.alerts import list_alerts
from vigil.monitor.cycle import monitor_once
from vigil.monitor.notify import fire_event, retry_undelivered
from vigil.monitor.rules import AlertRule
from vigil.monitor.silences import (
    AlertNotFoundError,
    acknowledge,
    create_silence,
    expire_silence,
    list_silences,
)

runner = CliRunner()
ERRORS = AlertRule(name="errors", metric="traffic.error_rate", threshold=0.05, severity="critical")


def _fire(vigil: Vigil, settings: object, name: str, model: str) -> None:
    fire_event(
        vigil,
        name=name,
        severity="warning",
        summary=f"{name} on {model}",
        labels={"model": model},
        settings=settings,  # type: ignore[arg-type]
    )


def test_a_silenced_alert_is_recorded_but_not_delivered(
    empty_vigil: Vigil, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = empty_vigil.database
    silence = create_silence(
        db, {"alertname": "drift", "model": "churn"}, timedelta(hours=2), actor="ada"
    )
    with Receiver() as hook:
        settings = settings_for(hook.url)
        _fire(empty_vigil, settings, "drift", "churn")  # silenced
        _fire(empty_vigil, settings, "drift", "fraud")  # another model: delivered
        _fire(empty_vigil, settings, "errors", "churn")  # another rule: delivered
        calls = hook.wait_calls(2)
        # Not retried later either: a silenced event is never sent.
        monkeypatch.setattr(alerts_module, "CLAIM_TTL", timedelta(0))
        assert retry_undelivered(db, settings) == []
    sent = sorted(
        (c.body["alerts"][0]["labels"]["alertname"], c.body["alerts"][0]["labels"]["model"])
        for c in calls
    )
    assert sent == [("drift", "fraud"), ("errors", "churn")]
    assert len(hook.received) == 2
    by_key = {(e.rule, e.labels["model"]): e for e in list_alerts(db)}
    held = by_key[("drift", "churn")]
    assert held.silenced_by == silence.id and held.delivered_at is None
    assert held.deliveries == {
        "silenced": {"silence": silence.id, "until": silence.ends_at.isoformat()}
    }
    assert by_key[("drift", "fraud")].silenced_by is None

    # Listed as silenced (text and JSON), until the silence ends.
    listed = runner.invoke(app, ["alert", "list", "--json"])
    until = {
        (a["rule"], a["labels"]["model"]): a["silenced_until"] for a in json.loads(listed.stdout)
    }
    assert until == {
        ("drift", "churn"): silence.ends_at.isoformat(),
        ("drift", "fraud"): None,
        ("errors", "churn"): None,
    }
    table = runner.invoke(app, ["alert", "list"], env={"COLUMNS": "250"})
    assert "firing · silenced until" in table.stdout
    expire_silence(db, silence.id, actor="ada")
    assert list_silences(db) == []
    listed = json.loads(runner.invoke(app, ["alert", "list", "--json"]).stdout)
    assert all(a["silenced_until"] is None for a in listed)
    audited = empty_vigil.registry.audit(None, limit=20)
    events = [(e.action, e.actor) for e in audited if e.entity_type != "alert"][:2]
    assert events == [("expire_silence", "ada"), ("create_silence", "ada")]
    # The alerts' own transitions are audited too, as vigil's decisions.
    assert {(e.action, e.actor) for e in audited if e.entity_type == "alert"} == {
        ("alert.firing", "alert-rules")
    }


def test_rule_alerts_are_silenced_by_rule_name_from_the_cli(empty_vigil: Vigil) -> None:
    store_window(empty_vigil.database, 0, {"traffic.error_rate": 0.2})
    made = runner.invoke(app, ["alert", "silence", "errors", "--for", "2h", "--json"])
    assert made.exit_code == 0, made.output
    silence = json.loads(made.stdout)
    assert silence["matchers"] == {"alertname": "errors"}
    with Receiver() as hook:
        settings = settings_for(hook.url, rules=[ERRORS])
        result = monitor_once(empty_vigil, settings=settings, now=T0 + timedelta(hours=2))
    assert [(e.rule, e.status) for e in result.events] == [("errors", "firing")]
    assert result.delivered == 0 and hook.calls == 0
    shown = runner.invoke(app, ["alert", "silences"], env={"COLUMNS": "200"})
    assert "alertname=errors" in shown.stdout
    ended = runner.invoke(app, ["alert", "unsilence", str(silence["id"])])
    assert ended.exit_code == 0 and "ended silence" in ended.stdout
    assert "no silence is active" in runner.invoke(app, ["alert", "silences"]).stdout


def test_acknowledge_a_firing_alert(empty_vigil: Vigil) -> None:
    db = empty_vigil.database
    with Receiver() as hook:
        settings = settings_for(hook.url)
        _fire(empty_vigil, settings, "drift", "churn")
        hook.wait_calls(1)
    (alert,) = list_alerts(db)
    done = runner.invoke(app, ["alert", "ack", str(alert.id), "--comment", "on it", "--json"])
    assert done.exit_code == 0, done.output
    acked = json.loads(done.stdout)
    assert acked["id"] == alert.id and acked["acknowledged_by"]
    again = acknowledge(db, alert.id, actor="someone-else")  # the first ack stays
    assert again["acknowledged_by"] == acked["acknowledged_by"]
    table = runner.invoke(app, ["alert", "list"], env={"COLUMNS": "250"})
    assert f"acked by {acked['acknowledged_by']}" in table.stdout
    (event,) = empty_vigil.registry.audit(None, limit=1)
    assert (event.action, event.after) == (
        "acknowledge_alert",
        {"alert": alert.id, "comment": "on it"},
    )
    with pytest.raises(AlertNotFoundError):
        acknowledge(db, alert.id + 100, actor="x")
    fire_event(
        empty_vigil, name="drift", severity="warning", summary="ok again",
        labels={"model": "churn"}, status="resolved", settings=settings_for(),
    )  # fmt: skip
    with pytest.raises(ConflictError, match="not firing now"):
        acknowledge(db, alert.id, actor="x")


@pytest.mark.parametrize(
    ("matchers", "duration", "needle"),
    [
        ({}, timedelta(hours=1), "at least one matcher"),
        ({"team": "risk"}, timedelta(hours=1), "matches on alertname"),
        ({"model": ""}, timedelta(hours=1), "non-empty"),
        ({"model": "churn"}, timedelta(days=91), "at most 90 days"),
        ({"model": "churn"}, timedelta(0), "more than 0"),
    ],
)
def test_bad_silences_are_refused(
    empty_vigil: Vigil, matchers: dict[str, str], duration: timedelta, needle: str
) -> None:
    with pytest.raises(ValidationError, match=needle):
        create_silence(empty_vigil.database, matchers, duration, actor="x")


def test_a_malformed_matcher_says_how_to_write_one(empty_vigil: Vigil) -> None:
    # `vigil` (main) prints a VigilError as one line; CliRunner hands us the error itself.
    bad = runner.invoke(app, ["alert", "silence", "model=churn,oops", "--for", "1h"])
    assert isinstance(bad.exception, ValidationError)
    assert "'oops' is not label=value" in bad.exception.message
    assert list_silences(empty_vigil.database) == []
