"""vigil's alerts as Alertmanager's own: the body of ``POST /api/v2/alerts``.

An Alertmanager (``monitor.alertmanagers``) receives each alert as Prometheus would send
it, so its routes, grouping, inhibitions, silences and receivers apply to vigil's alerts
as to any other (:mod:`vigil.monitor.notify` posts them):

* ``labels``: the rule's name as ``alertname``, ``severity``, the series (``model``,
  ``version``, ``route``, ``feature``), plus ``source="vigil-monitor"`` and
  ``vigil_alert`` (the rule's name again, which Prometheus's ``VigilMonitoringAlert``
  also carries, so one can inhibit the other: see deploy/monitoring/alertmanager);
* ``annotations``: ``summary`` and ``description``;
* ``startsAt``; ``endsAt``: when vigil resolved it, or, while it fires, a moment a little
  ahead (``hold``) that each cycle pushes further by sending it again. Were vigil to stop,
  Alertmanager resolves the alert then, rather than keeping it for ever or after its own
  ``resolve_timeout``;
* ``generatorURL``: vigil's alert list, when ``monitor.external_url`` says where it is.

The body follows ``postableAlerts`` of Alertmanager's OpenAPI specification
(``api/v2/openapi.yaml``). Alertmanager tells alerts apart by their labels alone, so every
send of one alert carries the same labels.

>>> from datetime import datetime, UTC
>>> from vigil.monitor.alerts import AlertEvent
>>> t = datetime(2025, 1, 1, tzinfo=UTC)
>>> e = AlertEvent(1, "f1", "dataset_drift", "firing", "warning", "churn v2 drifted",
...     {"alertname": "dataset_drift", "severity": "warning", "model": "churn"},
...     t, None, t, "o", 1.0)
>>> a = postable_alert(e, now=t, hold=timedelta(minutes=20), external_url="https://vigil.example")
>>> a["labels"]["vigil_alert"], a["startsAt"], a["endsAt"]
('dataset_drift', '2025-01-01T00:00:00Z', '2025-01-01T00:20:00Z')
>>> a["generatorURL"]
'https://vigil.example/v1/admin/alerts'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.monitor.alerts import AlertEvent

SOURCE = "vigil-monitor"
"""The ``source`` label of every alert vigil sends (the one the example routes match)."""

_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _label_name(name: str) -> str:
    """A Prometheus label name (Alertmanager refuses others): ``a-b`` becomes ``a_b``."""
    if _LABEL_NAME.fullmatch(name):
        return name
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return name if _LABEL_NAME.fullmatch(name) else f"_{name}"


def alert_labels(labels: Mapping[str, str], rule: str) -> dict[str, str]:
    """The labels of ``rule``'s alert for Alertmanager: empty values left out (as
    Prometheus does), names made valid, ``source`` and ``vigil_alert`` added.

    >>> alert_labels({"alertname": "x", "route": "", "my-label": "1"}, "x")
    {'alertname': 'x', 'my_label': '1', 'source': 'vigil-monitor', 'vigil_alert': 'x'}
    """
    out = {_label_name(str(k)): str(v) for k, v in labels.items() if str(v) != ""}
    out.setdefault("alertname", rule)
    out["source"] = SOURCE
    out["vigil_alert"] = rule
    return out


def postable_alert(
    event: AlertEvent, *, now: datetime, hold: timedelta, external_url: str | None = None
) -> dict[str, Any]:
    """One ``postableAlert``: ``event`` firing until ``now + hold``, or resolved."""
    ends_at = (event.ends_at or now) if event.status == "resolved" else now + hold
    alert: dict[str, Any] = {
        "labels": alert_labels(event.labels, event.rule),
        "annotations": event.annotations(),
        "startsAt": _timestamp(event.starts_at),
        "endsAt": _timestamp(ends_at),
    }
    if external_url:
        alert["generatorURL"] = f"{external_url}/v1/admin/alerts"
    return alert
