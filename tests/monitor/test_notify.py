"""Webhooks delivered to a real HTTP receiver: JSON and Slack, retries, failures, secrets."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from tests.monitor._receiver import Receiver
from tests.monitor._series import T0, store_window

from vigil.app import Vigil
from vigil.monitor import alerts as alerts_module
from vigil.monitor.alerts import list_alerts
from vigil.monitor.cycle import monitor_once
from vigil.monitor.notify import fire_event, retry_undelivered
from vigil.monitor.rules import AlertRule
from vigil.monitor.settings import MonitorSettings
from vigil.serving.server import free_port

SECRET = "T0KEN-s3cret"


def settings_for(*webhooks: object, **extra: object) -> MonitorSettings:
    # The receivers listen on loopback, which webhooks may only point at when allowed; the
    # series are stored on 1h windows (tests.monitor._series).
    extra = {"window": "1h", **extra}
    return MonitorSettings(
        webhooks=list(webhooks),
        backoff_s=0.01,
        timeout_s=5,
        allow_private_webhooks=True,
        **extra,
    )


def test_rule_alert_reaches_json_and_slack_receivers(empty_vigil: Vigil) -> None:
    store_window(empty_vigil.database, 0, {"traffic.error_rate": 0.2})
    rule = AlertRule(
        name="errors", metric="traffic.error_rate", threshold=0.05, severity="critical"
    )
    with Receiver() as hook:
        settings = settings_for(
            f"{hook.url}/alertmanager?token={SECRET}",
            {"url": f"{hook.url}/services/{SECRET}", "format": "slack"},
            rules=[rule],
        )
        result = monitor_once(empty_vigil, settings=settings, now=T0 + timedelta(hours=2))
        assert [(e.rule, e.status) for e in result.events] == [("errors", "firing")]
        assert result.delivered == 1
        calls = hook.wait_calls(2)
    by_path = {c.path.split("?")[0].split("/")[1]: c for c in calls}
    body = by_path["alertmanager"].body
    assert by_path["alertmanager"].content_type == "application/json"
    assert body["version"] == "4" and body["status"] == "firing"
    (alert,) = body["alerts"]
    assert alert["labels"] == {
        "alertname": "errors",
        "severity": "critical",
        "model": "churn",
        "version": "1",
        "route": "native_predict",
    }
    assert alert["startsAt"] == "2025-05-01T00:00:00Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["value"] == 0.2
    assert alert["annotations"]["description"] == "traffic.error_rate = 0.2 (threshold 0.05)"
    slack = by_path["services"].body
    assert slack["text"] == (
        "[FIRING] errors (critical): churn v1 (native_predict): traffic.error_rate = 0.2 > 0.05"
    )
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "context"]

    (stored,) = list_alerts(empty_vigil.database)
    assert stored.delivered_at is not None
    assert len(stored.deliveries) == 2
    assert all(label.startswith(f"{hook.url}/…#") for label in stored.deliveries)
    assert SECRET not in repr(stored.to_dict())


def test_failed_calls_are_retried_with_backoff(empty_vigil: Vigil) -> None:
    with Receiver(fail_first=2, fail_status=503) as hook:
        event = fire_event(
            empty_vigil,
            name="canary_rollback",
            severity="critical",
            summary="checkout rolled back to v1",
            labels={"endpoint": "checkout", "model": "churn"},
            value=0.12,
            settings=settings_for(hook.url, retries=3),
        )
        assert event is not None
        (call,) = hook.wait_calls(1)
    assert hook.calls == 3
    assert call.body["alerts"][0]["labels"]["endpoint"] == "checkout"
    (stored,) = list_alerts(empty_vigil.database)
    (outcome,) = stored.deliveries.values()
    assert outcome == {"ok": True, "attempts": 3, "status": 200, "error": None}


def test_undeliverable_event_is_recorded_without_secrets_then_retried(
    empty_vigil: Vigil, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="vigil.monitor")
    with Receiver(fail_first=100, fail_status=500) as hook:
        url = f"{hook.url}/hook/{SECRET}"
        settings = settings_for(url, retries=1)
        event = fire_event(
            empty_vigil,
            name="drift",
            severity="warning",
            summary="x",
            labels={"model": "churn"},
            settings=settings,
        )
        assert event is not None and hook.calls == 2
        (stored,) = list_alerts(empty_vigil.database)
        assert stored.delivered_at is None
        assert re.fullmatch(rf"HTTP 500 from {hook.url}/…#[0-9a-f]{{8}}", str(stored.last_error))
        assert SECRET not in caplog.text and f"{hook.url}/…#" in caplog.text
        # Nobody retries a fresh claim; once it expires the next run takes it over.
        assert retry_undelivered(empty_vigil.database, settings) == []
        hook.fail_first = 0
        monkeypatch.setattr(alerts_module, "CLAIM_TTL", timedelta(0))
        (retried,) = retry_undelivered(empty_vigil.database, settings)
        assert retried.id == stored.id
        hook.wait_calls(1)
    (done,) = list_alerts(empty_vigil.database)
    assert done.delivered_at is not None and done.attempts == 2


def test_unreachable_webhook_never_raises(empty_vigil: Vigil) -> None:
    port = free_port()
    event = fire_event(
        empty_vigil,
        name="drift",
        severity="warning",
        summary="x",
        labels={},
        settings=settings_for(f"http://127.0.0.1:{port}/x?key={SECRET}", retries=0),
    )
    assert event is not None
    (stored,) = list_alerts(empty_vigil.database)
    assert re.fullmatch(
        rf"ConnectError calling http://127.0.0.1:{port}/…#[0-9a-f]{{8}}", str(stored.last_error)
    )


def test_fire_event_deduplicates_on_occurrence(empty_vigil: Vigil) -> None:
    with Receiver() as hook:
        settings = settings_for(hook.url)

        def fire() -> object:
            return fire_event(
                empty_vigil,
                name="canary_rollback",
                severity="critical",
                summary="s",
                labels={"endpoint": "checkout"},
                occurrence="step-3",
                settings=settings,
            )

        first, second = fire(), fire()
        assert first is not None and second is None
        hook.wait_calls(1)
    assert hook.calls == 1
