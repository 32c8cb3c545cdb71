"""Telling people about a canary's rollback or promotion: monitoring alerts and webhooks.

Two routes, both best effort (a failed delivery is logged, never raised into the
controller, which must keep routing):

* :func:`vigil.monitor.notify.fire_event`: the event is recorded with the other alerts and
  sent to the monitoring webhooks;
* the endpoint's own ``alert_webhooks``: an Alertmanager-like JSON body posted with httpx,
  a few attempts with a short backoff.

Webhook URLs may carry tokens, so only their scheme and host are ever logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vigil._redact import redact_url
from vigil.errors import UnsafeWebhookError
from vigil.monitor.webhooks import post_json

if TYPE_CHECKING:
    from vigil.monitor.services import MonitorServices

log = logging.getLogger("vigil.experiments")

_ATTEMPTS = 3
_TIMEOUT_S = 5.0


def alert_payload(
    *, name: str, severity: str, summary: str, labels: Mapping[str, str], value: float | None
) -> dict[str, Any]:
    """One Alertmanager-style alert (``status``, ``labels``, ``annotations``, ``startsAt``).

    >>> p = alert_payload(name="canary_rollback", severity="critical", summary="s",
    ...                   labels={"endpoint": "checkout"}, value=0.2)
    >>> p["status"], p["labels"]["alertname"], p["labels"]["endpoint"], p["value"]
    ('firing', 'canary_rollback', 'checkout', 0.2)
    """
    return {
        "status": "firing",
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"summary": summary},
        "startsAt": datetime.now(UTC).isoformat(),
        "value": value,
    }


def post_webhook(url: str, payload: Mapping[str, Any], *, allow_private: bool = False) -> bool:
    """POST ``payload`` as JSON; ``True`` once a 2xx comes back, ``False`` after the last
    failed attempt or at once for a target vigil must not call (logged without the URL's
    path or query, which may hold a token). ``allow_private``: the target may be a
    non-public address (see :mod:`vigil.monitor.webhooks`)."""
    import httpx  # only to post: a worker that never promotes never loads it

    with httpx.Client(timeout=_TIMEOUT_S, follow_redirects=False) as client:
        for attempt in range(_ATTEMPTS):
            try:
                response = post_json(client, url, payload, allow_private=allow_private)
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
            except UnsafeWebhookError as exc:
                log.warning("alert webhook refused: %s", exc.message)
                return False
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt + 1 < _ATTEMPTS:
                time.sleep(0.2 * 2**attempt)
    log.warning(
        "alert webhook %s failed after %d attempts: %s",
        redact_url(url, path=False),
        _ATTEMPTS,
        problem,
    )
    return False


def send_alert(
    app: MonitorServices,
    *,
    name: str,
    severity: str,
    summary: str,
    labels: Mapping[str, str],
    value: float | None,
    webhooks: Sequence[str],
    occurrence: str | None = None,
) -> int:
    """Raise the alert through monitoring and post it to ``webhooks``; returns how many of
    ``webhooks`` accepted it. ``occurrence`` de-duplicates the monitoring event."""
    # Monitoring's alert store pulls in pandas: loaded by the first alert, not the worker.
    from vigil.monitor.notify import fire_event

    try:
        fire_event(
            app,
            name=name,
            severity=severity,
            summary=summary,
            labels=dict(labels),
            value=value,
            occurrence=occurrence,
        )
    except Exception:  # alerting must never stop the controller
        log.exception("could not raise the monitoring alert %s", name)
    payload = alert_payload(
        name=name, severity=severity, summary=summary, labels=labels, value=value
    )
    try:
        allow_private = app.monitor_settings.allow_private_webhooks
    except Exception:  # a broken monitoring setting must not stop the controller either
        log.exception("could not read the monitoring settings; webhooks must be public")
        allow_private = False
    return sum(post_webhook(url, payload, allow_private=allow_private) for url in webhooks)
