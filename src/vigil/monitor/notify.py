"""Notifications: alert events posted to webhooks, as Alertmanager-like JSON or for Slack,
and to Alertmanagers' API v2 (:mod:`vigil.monitor.alertmanager`).

Each event is one POST per webhook. The JSON body follows Alertmanager's webhook format
(``version``, ``status``, ``alerts[]`` with ``labels``, ``annotations``, ``startsAt``,
``endsAt``, ``fingerprint``) plus the alert's ``value``, so receivers written for
Alertmanager work unchanged. The Slack body is ``{"text", "blocks"}`` for an incoming
webhook.

Delivery never raises into the caller: each call has a timeout, failures (connection
errors, 5xx, 429) are retried a few times with exponential backoff, and the outcome is
stored with the event. A webhook that points at a non-public address when called is
refused, not retried (:mod:`vigil.monitor.webhooks`). Webhook URLs may hold tokens: only
their scheme and host appear in logs, errors and the stored outcome.

An Alertmanager gets each transition as a webhook does (same timeout, retries, address
checks and stored outcome; its credentials in an ``authorization`` header, never logged),
and, from :func:`resend_firing` on every cycle, the rules' alerts still firing, so it
keeps them until vigil resolves them.

:func:`fire_event` lets other subsystems (e.g. an experiment's canary rollback) raise an
alert that is stored and delivered like the rules' alerts.

>>> from datetime import datetime, UTC
>>> from vigil.monitor.alerts import AlertEvent
>>> e = AlertEvent(1, "f1", "dataset_drift", "firing", "warning", "churn v2 drifted",
...     {"alertname": "dataset_drift", "severity": "warning", "model": "churn"},
...     datetime(2025, 1, 1, tzinfo=UTC), None, datetime(2025, 1, 1, tzinfo=UTC), "o", 1.0)
>>> body = alert_payload(e)
>>> body["status"], body["alerts"][0]["labels"]["model"], body["alerts"][0]["endsAt"]
('firing', 'churn', '0001-01-01T00:00:00Z')
>>> slack_payload(e)["text"]
'[FIRING] dataset_drift (warning): churn v2 drifted'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from vigil.errors import UnsafeWebhookError, VigilError
from vigil.monitor.alertmanager import postable_alert
from vigil.monitor.alerts import (
    AlertEvent,
    claim_undelivered,
    list_alerts,
    new_claim,
    record_delivery,
    record_event,
)
from vigil.monitor.settings import Alertmanager, MonitorSettings, Webhook
from vigil.monitor.silences import list_silences, mark_silenced, silencing
from vigil.monitor.webhooks import post_json
from vigil.names import check_name
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    import httpx

    from vigil.monitor.services import MonitorServices
    from vigil.storage.sql import Database

log = logging.getLogger("vigil.monitor")

_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not ended yet"
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_RESEND_LIMIT = 10_000
"""Firing alerts sent again per cycle, at most (a bound on one request's size)."""


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else _ZERO_TIME


def alert_payload(event: AlertEvent) -> dict[str, Any]:
    """The Alertmanager-style webhook body of one event."""
    annotations = event.annotations()
    alert = {
        "status": event.status,
        "labels": dict(event.labels),
        "annotations": annotations,
        "startsAt": _iso(event.starts_at),
        "endsAt": _iso(event.ends_at),
        "generatorURL": "",
        "fingerprint": event.fingerprint,
        "value": event.value,
    }
    return {
        "version": "4",
        "receiver": "vigil",
        "status": event.status,
        "groupKey": event.fingerprint,
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": event.rule},
        "commonLabels": dict(event.labels),
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [alert],
    }


def slack_payload(event: AlertEvent) -> dict[str, Any]:
    """A Slack incoming-webhook body (``text`` for notifications, ``blocks`` for display)."""
    head = f"[{event.status.upper()}] {event.rule} ({event.severity})"
    details = ", ".join(
        f"{k}={v}" for k, v in event.labels.items() if k not in ("alertname", "severity")
    )
    facts = [f"*since* {_iso(event.starts_at)}"]
    if event.ends_at is not None:
        facts.append(f"*until* {_iso(event.ends_at)}")
    if event.value is not None:
        facts.append(f"*value* {event.value:.4g}")
    return {
        "text": f"{head}: {event.summary}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": event.summary[:3000]}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": " · ".join([details, *facts])[:3000]}],
            },
        ],
    }


def _post(
    client: httpx.Client,
    url: str,
    label: str,
    body: Any,
    *,
    retries: int,
    backoff_s: float,
    allow_private: bool,
    headers: Mapping[str, str] | None = None,
    alertmanager: bool = False,
) -> dict[str, Any]:
    """POST ``body`` to ``url`` (shown as ``label``), retrying what may pass later."""
    import httpx  # only to deliver: `vigil alert list` and the rules stay without it

    outcome: dict[str, Any] = {"ok": False, "attempts": 0, "status": None, "error": None}
    for attempt in range(retries + 1):
        outcome["attempts"] = attempt + 1
        try:
            response = post_json(client, url, body, allow_private=allow_private, headers=headers)
        except UnsafeWebhookError as exc:
            outcome["error"] = f"refused: {exc.message}"
            return outcome  # where it points will not change by retrying
        except httpx.HTTPError as exc:
            # The exception text may quote the URL; keep only its type and the host.
            outcome["error"] = f"{type(exc).__name__} calling {label}"
        else:
            outcome["status"] = response.status_code
            if response.is_success:
                outcome.update(ok=True, error=None)
                return outcome
            outcome["error"] = f"HTTP {response.status_code} from {label}"
            if alertmanager:
                outcome["error"] += _alertmanager_says(response)
            if response.status_code not in _RETRY_STATUS:
                return outcome  # the receiver refuses this body: retrying will not help
        if attempt < retries:
            time.sleep(backoff_s * 2**attempt)
    return outcome


def _alertmanager_says(response: httpx.Response) -> str:
    """Why an Alertmanager refused alerts: its own words (a 400 names the bad field), or
    what a 404 or 405 most likely means."""
    if response.status_code in (404, 405):
        return (
            ": no Alertmanager API v2 there; give its base URL (http://alertmanager:9093, "
            "plus its --web.route-prefix if it has one)"
        )
    if response.status_code in (401, 403):
        return ": check the Alertmanager's basic_auth or bearer token setting"
    text = response.text.strip().strip('"')[:200]
    return f": {text}" if text else ""


def _send_to_alertmanager(
    client: httpx.Client,
    target: Alertmanager,
    alerts: list[dict[str, Any]],
    *,
    retries: int,
    backoff_s: float,
    allow_private: bool,
) -> dict[str, Any]:
    try:
        headers = target.headers()
    except VigilError as exc:  # a secret file gone: say so, retrying will not bring it
        return {"ok": False, "attempts": 1, "status": None, "error": exc.message}
    return _post(
        client,
        target.api_url,
        target.label,
        alerts,
        retries=retries,
        backoff_s=backoff_s,
        allow_private=allow_private,
        headers=headers,
        alertmanager=True,
    )


def deliver(
    event: AlertEvent,
    webhooks: Sequence[Webhook],
    *,
    timeout_s: float = 5.0,
    retries: int = 3,
    backoff_s: float = 0.5,
    skip: Sequence[str] = (),
    allow_private: bool = False,
    alertmanagers: Sequence[Alertmanager] = (),
    hold_s: float = 1200.0,
    external_url: str | None = None,
) -> dict[str, dict[str, Any]]:
    """POST ``event`` to every webhook and Alertmanager (except those labelled in
    ``skip``); returns the outcome per label. Never raises. ``allow_private`` lets them
    point at non-public addresses (``VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS``); ``hold_s``
    and ``external_url`` shape the Alertmanager alert
    (:func:`~vigil.monitor.alertmanager.postable_alert`)."""
    import httpx  # only to deliver: `vigil alert list` and the rules stay without it

    outcomes: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for webhook in webhooks:
            if webhook.label in skip:
                continue
            body = slack_payload(event) if webhook.format == "slack" else alert_payload(event)
            try:
                outcome = _post(
                    client,
                    webhook.url.get_secret_value(),
                    webhook.label,
                    body,
                    retries=retries,
                    backoff_s=backoff_s,
                    allow_private=allow_private,
                )
            except Exception as exc:  # a notifier must never take the engine down
                outcome = {"ok": False, "attempts": 1, "status": None, "error": type(exc).__name__}
            outcomes[webhook.label] = outcome
        if alertmanagers:
            alert = postable_alert(
                event, now=utcnow(), hold=timedelta(seconds=hold_s), external_url=external_url
            )
        for target in alertmanagers:
            if target.label in skip:
                continue
            try:
                outcome = _send_to_alertmanager(
                    client,
                    target,
                    [alert],
                    retries=retries,
                    backoff_s=backoff_s,
                    allow_private=allow_private,
                )
            except Exception as exc:  # as above
                outcome = {"ok": False, "attempts": 1, "status": None, "error": type(exc).__name__}
            outcomes[target.label] = outcome
    for label, outcome in outcomes.items():
        if not outcome["ok"]:
            log.warning(
                "alert %s (%s) not delivered to %s: %s",
                event.rule,
                event.status,
                label,
                outcome["error"],
            )
    return outcomes


def deliver_events(
    db: Database, events: Sequence[AlertEvent], claim: str, settings: MonitorSettings
) -> list[AlertEvent]:
    """Deliver claimed events to the configured webhooks and store the outcomes; returns
    the events now fully delivered. An event an active silence matches is recorded as
    silenced and not sent (:mod:`vigil.monitor.silences`)."""
    webhooks = settings.targets()
    delivered = []
    silences = list_silences(db) if events else []
    now = utcnow()
    for event in events:
        silence = silencing(silences, event.labels, now)
        if silence is not None:
            mark_silenced(db, event.id, claim, silence)
            log.info(
                "alert %s (%s) silenced until %s by silence %d",
                event.rule,
                event.status,
                silence.ends_at.isoformat(),
                silence.id,
            )
            continue
        done = [label for label, o in event.deliveries.items() if o.get("ok")]
        outcomes = deliver(
            event,
            webhooks,
            timeout_s=settings.timeout_s,
            retries=settings.retries,
            backoff_s=settings.backoff_s,
            skip=done,
            allow_private=settings.allow_private_webhooks,
            alertmanagers=settings.alertmanagers,
            hold_s=settings.hold_s,
            external_url=settings.external_url,
        )
        ok = all(o["ok"] for o in outcomes.values())
        errors = [str(o["error"]) for o in outcomes.values() if not o["ok"]]
        record_delivery(
            db, event.id, claim, outcomes, delivered=ok, error="; ".join(errors) or None
        )
        if ok:
            delivered.append(event)
    return delivered


def retry_undelivered(db: Database, settings: MonitorSettings) -> list[AlertEvent]:
    """Deliver events whose earlier delivery failed or was abandoned."""
    claim = new_claim()
    return deliver_events(db, claim_undelivered(db, claim), claim, settings)


def resend_firing(
    db: Database, settings: MonitorSettings, *, skip: Collection[int] = ()
) -> dict[str, dict[str, Any]]:
    """Send every alert of the configured rules that is still firing to the Alertmanagers
    again, with ``endsAt`` pushed ``hold_s`` ahead, so they keep it until vigil resolves
    it (events in ``skip``, sent a moment ago, are left out). Returns the outcome per
    Alertmanager; never raises.

    Only the rules' alerts are held: an event raised once (a canary's rollback) has no
    resolution to wait for, so Alertmanager lets it go ``hold_s`` after it was sent. An
    alert an active silence matches is not sent: Alertmanager lets it go too.
    """
    if not settings.alertmanagers:
        return {}
    import httpx  # only to deliver, as above

    rules = {rule.name for rule in settings.rules}
    now = utcnow()
    silences = list_silences(db)
    firing = [
        e
        for e in list_alerts(db, limit=_RESEND_LIMIT)
        if e.rule in rules and e.id not in skip and silencing(silences, e.labels, now) is None
    ]
    if not firing:
        return {}
    hold = timedelta(seconds=settings.hold_s)
    alerts = [
        postable_alert(e, now=now, hold=hold, external_url=settings.external_url) for e in firing
    ]
    outcomes: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=settings.timeout_s, follow_redirects=False) as client:
        for target in settings.alertmanagers:
            try:
                outcome = _send_to_alertmanager(
                    client,
                    target,
                    alerts,
                    retries=settings.retries,
                    backoff_s=settings.backoff_s,
                    allow_private=settings.allow_private_webhooks,
                )
            except Exception as exc:  # a notifier must never take the engine down
                outcome = {"ok": False, "attempts": 1, "status": None, "error": type(exc).__name__}
            if not outcome["ok"]:
                log.warning(
                    "%d firing alert(s) not sent again to %s: %s",
                    len(alerts),
                    target.label,
                    outcome["error"],
                )
            outcomes[target.label] = outcome
    return outcomes


def fire_event(
    app: MonitorServices,
    *,
    name: str,
    severity: str,
    summary: str,
    labels: Mapping[str, str],
    value: float | None = None,
    status: str = "firing",
    occurrence: str | None = None,
    settings: MonitorSettings | None = None,
) -> AlertEvent | None:
    """Record an alert event raised outside the rules and deliver it to the webhooks.

    ``occurrence`` de-duplicates: a second call with the same name, labels, status and
    occurrence records and sends nothing (default: the current time, i.e. every call is
    new). Returns the stored event, or ``None`` when it was a duplicate.
    """
    check_name("alert name", name)
    if severity not in ("info", "warning", "critical"):
        severity = "warning"
    settings = settings or app.monitor_settings
    claim = new_claim()
    event = record_event(
        app.database,
        rule=name,
        status=status,
        severity=severity,
        summary=summary,
        labels=labels,
        value=value,
        occurrence=occurrence,
        claim=claim,
    )
    if event is not None:
        deliver_events(app.database, [event], claim, settings)
    return event
