"""vigil's alerts in a real Alertmanager (API v2): fired, held while firing, resolved,
routed and inhibited as deploy/monitoring/alertmanager/alertmanager.yml says; bad
addresses and credentials fail clearly; secrets stay out of logs."""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from tests._waiting import wait_for
from tests.monitor._receiver import Receiver
from tests.monitor._series import T0, store_window
from tests.servers import AlertmanagerServer, free_port

from vigil.app import Vigil
from vigil.errors import ConfigurationError
from vigil.monitor.alertmanager import postable_alert
from vigil.monitor.alerts import list_alerts
from vigil.monitor.cycle import monitor_once
from vigil.monitor.notify import fire_event, resend_firing
from vigil.monitor.rules import AlertRule
from vigil.monitor.settings import MonitorSettings, load_monitor_settings
from vigil.monitor.silences import create_silence

SECRET = "am-T0KEN-s3cret"

# ``postableAlerts`` of Alertmanager's OpenAPI specification (api/v2/openapi.yaml, the
# definitions postableAlerts, postableAlert, alert and labelSet), written as JSON Schema;
# stricter than the specification in one way: no property it does not define.
LABEL_SET = {"type": "object", "additionalProperties": {"type": "string"}}
POSTABLE_ALERTS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "labels": LABEL_SET,
            "annotations": LABEL_SET,
            "startsAt": {"type": "string", "format": "date-time"},
            "endsAt": {"type": "string", "format": "date-time"},
            "generatorURL": {"type": "string", "format": "uri"},
        },
        "required": ["labels"],
        "additionalProperties": False,
    },
}


def settings_for(am_url: str, rule: AlertRule, **extra: Any) -> MonitorSettings:
    return MonitorSettings(
        window="1h",
        rules=[rule],
        alertmanagers=[am_url],
        allow_private_webhooks=True,  # Alertmanager listens on loopback
        backoff_s=0.01,
        **extra,
    )


def _rule() -> AlertRule:
    # A name of its own per test: the session's Alertmanager keeps every test's alerts.
    return AlertRule(
        name=f"missing_{uuid.uuid4().hex[:8]}",
        metric="quality.missing_rate",
        threshold=0.1,
        severity="critical",
    )


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_alert_fires_is_held_and_resolves_in_alertmanager(
    empty_vigil: Vigil, alertmanager: AlertmanagerServer
) -> None:
    db = empty_vigil.database
    rule = _rule()
    settings = settings_for(
        alertmanager.url, rule, alertmanager_hold_s=600, external_url="https://vigil.example"
    )
    store_window(db, 0, {("quality.missing_rate", "age"): 0.4})

    sent = datetime.now(UTC)
    result = monitor_once(empty_vigil, settings=settings, now=T0 + timedelta(hours=2))
    assert [(e.rule, e.status) for e in result.events] == [(rule.name, "firing")]
    assert result.delivered == 1
    (seen,) = wait_for(lambda: alertmanager.alerts(vigil_alert=rule.name), 10, what="the alert")
    assert seen["labels"] == {
        "alertname": rule.name,
        "severity": "critical",
        "model": "churn",
        "version": "1",
        "route": "native_predict",
        "feature": "age",
        "source": "vigil-monitor",
        "vigil_alert": rule.name,
    }
    assert seen["annotations"] == {
        "summary": "churn v1 (native_predict) feature age: quality.missing_rate = 0.4 > 0.1",
        "description": "quality.missing_rate = 0.4 (threshold 0.1)",
    }
    assert _time(seen["startsAt"]) == T0
    held = _time(seen["endsAt"]) - sent
    assert timedelta(minutes=10) <= held < timedelta(minutes=11)
    assert seen["generatorURL"] == "https://vigil.example/v1/admin/alerts"
    assert seen["status"]["state"] == "active"
    # The example configuration's routes send vigil's monitoring alerts to the model owners.
    assert [r["name"] for r in seen["receivers"]] == ["model-owners"]
    (event,) = list_alerts(db)
    (label,) = event.deliveries
    assert label.startswith(f"http://127.0.0.1:{alertmanager.port}/…#")

    # Still firing: every cycle sends it again, its end pushed further ahead.
    longer = settings.model_copy(update={"alertmanager_hold_s": 3600.0})
    again = monitor_once(empty_vigil, settings=longer, now=T0 + timedelta(hours=2))
    assert again.events == []

    def held_longer() -> bool:
        (alert,) = alertmanager.alerts(vigil_alert=rule.name)
        return _time(alert["endsAt"]) - sent >= timedelta(minutes=60)

    wait_for(held_longer, 10, what="the alert to be held an hour")

    # vigil resolves it: Alertmanager takes the end vigil gives, and lists it no more.
    store_window(db, 1, {("quality.missing_rate", "age"): 0.0})
    done = monitor_once(empty_vigil, settings=settings, now=T0 + timedelta(hours=3))
    assert [(e.rule, e.status) for e in done.events] == [(rule.name, "resolved")]
    assert done.delivered == 1
    wait_for(lambda: alertmanager.alerts(vigil_alert=rule.name) == [], 10, what="resolution")


def test_vigils_own_alert_inhibits_the_copy_prometheus_derives(
    empty_vigil: Vigil, alertmanager: AlertmanagerServer
) -> None:
    rule = _rule()
    # What Prometheus sends for VigilMonitoringAlert (deploy/monitoring/prometheus/rules.yml).
    copy = {
        "labels": {
            "alertname": "VigilMonitoringAlert",
            "vigil_alert": rule.name,
            "model": "churn",
            "severity": "critical",
            "job": "vigil",
            "source": "vigil-monitor",
        },
        "annotations": {"summary": "vigil monitoring alert is firing"},
    }
    httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[copy], timeout=10).raise_for_status()
    store_window(empty_vigil.database, 0, {("quality.missing_rate", "age"): 0.4})
    monitor_once(
        empty_vigil, settings=settings_for(alertmanager.url, rule), now=T0 + timedelta(hours=2)
    )

    def inhibited() -> list[str]:
        found = alertmanager.alerts(vigil_alert=rule.name, alertname="VigilMonitoringAlert")
        return [i for a in found for i in a["status"]["inhibitedBy"]]

    wait_for(inhibited, 10, what="Prometheus's copy to be inhibited")
    (own,) = alertmanager.alerts(vigil_alert=rule.name, alertname=rule.name)
    assert own["status"]["state"] == "active"


def test_the_payload_follows_alertmanagers_openapi_schema(empty_vigil: Vigil) -> None:
    store_window(empty_vigil.database, 0, {("quality.missing_rate", "age"): 0.4})
    rule = _rule()
    events = monitor_once(
        empty_vigil,
        settings=MonitorSettings(window="1h", rules=[rule]),
        now=T0 + timedelta(hours=2),
    ).events
    hold = timedelta(minutes=20)
    body = [
        postable_alert(e, now=T0, hold=hold, external_url="https://vigil.example/x") for e in events
    ]
    jsonschema.validate(body, POSTABLE_ALERTS, format_checker=jsonschema.FormatChecker())
    assert body[0]["endsAt"] == "2025-05-01T00:20:00Z"


def test_a_wrong_address_fails_clearly(
    empty_vigil: Vigil, alertmanager: AlertmanagerServer, caplog: pytest.LogCaptureFixture
) -> None:
    store_window(empty_vigil.database, 0, {("quality.missing_rate", "age"): 0.4})
    no_prefix = f"http://127.0.0.1:{alertmanager.port}"  # it serves under /alertmanager
    nobody = f"http://127.0.0.1:{free_port()}"
    settings = MonitorSettings(
        window="1h",
        rules=[_rule()],
        alertmanagers=[no_prefix, nobody],
        allow_private_webhooks=True,
        retries=0,
    )
    with caplog.at_level(logging.WARNING, logger="vigil.monitor"):
        result = monitor_once(empty_vigil, settings=settings, now=T0 + timedelta(hours=2))
    assert result.delivered == 0
    (event,) = list_alerts(empty_vigil.database)
    outcomes = {label.split("/…")[0]: o for label, o in event.deliveries.items()}
    assert outcomes[no_prefix]["status"] == 404
    assert "no Alertmanager API v2 there; give its base URL" in outcomes[no_prefix]["error"]
    assert outcomes[nobody]["error"].startswith(f"ConnectError calling {nobody}/…#")
    assert "not delivered to" in caplog.text

    # Addresses vigil will not use are refused when the settings are read.
    for url, says in [
        ("http://user:pw@am.example.com", "holds no credentials"),
        ("http://am.example.com/api/v2/alerts", "vigil adds /api/v2/alerts"),
        ("am.example.com:9093", "must start with http:// or https://"),
        ("http://10.0.0.5:9093", "10.0.0.5 (private address)"),
    ]:
        with pytest.raises(ConfigurationError, match="VIGIL_MONITOR_ALERTMANAGERS") as caught:
            load_monitor_settings(alertmanagers=[url])
        assert says in caught.value.message
        assert "pw" not in caught.value.message


def test_credentials_come_from_settings_and_stay_secret(
    empty_vigil: Vigil, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{SECRET}\n")
    store_window(empty_vigil.database, 0, {("quality.missing_rate", "age"): 0.4})
    with Receiver() as receiver, caplog.at_level(logging.DEBUG):
        settings = MonitorSettings(
            window="1h",
            rules=[_rule()],
            allow_private_webhooks=True,
            retries=0,
            alertmanagers=[
                {"url": f"{receiver.url}/bearer", "bearer_token_file": str(token_file)},
                {
                    "url": f"{receiver.url}/basic",
                    "basic_auth": {"username": "vigil", "password": SECRET},
                },
            ],
        )
        assert SECRET not in repr(settings)
        monitor_once(empty_vigil, settings=settings, now=T0 + timedelta(hours=2))
        calls = {c.path: c for c in receiver.wait_calls(2)}
        token_file.write_text("rotated")  # read at every call: no restart needed
        resend_firing(empty_vigil.database, settings)
        rotated = receiver.wait_calls(4)[-2:]
    assert calls["/bearer/api/v2/alerts"].authorization == f"Bearer {SECRET}"
    basic = calls["/basic/api/v2/alerts"].authorization.removeprefix("Basic ")
    assert base64.b64decode(basic).decode() == f"vigil:{SECRET}"
    assert {c.authorization for c in rotated if c.path.startswith("/bearer")} == {"Bearer rotated"}
    assert isinstance(calls["/bearer/api/v2/alerts"].body, list)
    (event,) = list_alerts(empty_vigil.database)
    assert SECRET not in repr(event.to_dict())
    assert SECRET not in caplog.text

    token_file.unlink()
    outcome = resend_firing(empty_vigil.database, settings)[settings.alertmanagers[0].label]
    assert outcome["error"].startswith(
        f"cannot read the Alertmanager bearer token file {token_file}: No such file"
    )


def test_only_the_rules_alerts_still_firing_and_not_silenced_are_sent_again(
    empty_vigil: Vigil,
) -> None:
    db = empty_vigil.database
    rule = _rule()
    store_window(db, 0, {("quality.missing_rate", "age"): 0.4})
    with Receiver() as receiver:
        settings = MonitorSettings(
            window="1h", rules=[rule], allow_private_webhooks=True, alertmanagers=[receiver.url]
        )
        monitor_once(empty_vigil, settings=settings, now=T0 + timedelta(hours=2))
        # Raised once, outside the rules (as a canary's rollback is): nothing to resolve it.
        fire_event(empty_vigil, name="canary_rollback", severity="critical", summary="s",
                   labels={"endpoint": "checkout"}, settings=settings)  # fmt: skip
        receiver.wait_calls(2)
        (outcome,) = resend_firing(db, settings).values()
        assert outcome["ok"]
        (again,) = receiver.wait_calls(3)[2:]
        assert [a["labels"]["alertname"] for a in again.body] == [rule.name]

        create_silence(db, {"alertname": rule.name}, timedelta(hours=1), actor="tester")
        assert resend_firing(db, settings) == {}
    assert len(receiver.received) == 3
