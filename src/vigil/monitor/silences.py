"""Acknowledging and silencing alerts.

A *silence* is a set of label matchers and a period, as in Alertmanager: while it is
active, an alert event whose labels hold every matcher (``alertname`` is the rule,
``severity``, ``model``, ``version``, ``route``, ``feature``) is recorded but not delivered
to any webhook, and is marked with the silence that held it (it is never sent later:
the next transition after the silence ends notifies as usual). ``vigil alert list`` shows
a firing alert that an active silence matches as silenced, with the silence's end.

*Acknowledging* a firing alert records who took it on and when; it changes no delivery
(the resolution is still sent) and shows in ``vigil alert list``.

Silences, their expiry and acknowledgements are audited (:mod:`vigil.audit`).

>>> matchers_from("dataset_drift")
{'alertname': 'dataset_drift'}
>>> matchers_from("model=churn,severity=critical")
{'model': 'churn', 'severity': 'critical'}
>>> matches({"alertname": "drift", "model": "churn"}, {"model": "churn", "version": "2"})
False
>>> matches({"model": "churn"}, {"alertname": "drift", "model": "churn"})
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from vigil.audit import record_audit
from vigil.errors import ConflictError, NotFoundError, ValidationError
from vigil.monitor.alerts import AlertEvent, latest_event
from vigil.monitor.tables import AlertEventRow, AlertSilenceRow
from vigil.names import check_name
from vigil.storage.sql import Database, utcnow

LABELS = ("alertname", "severity", "model", "version", "route", "feature")
"""The labels a silence may match on."""
MAX_SILENCE = timedelta(days=90)
_MAX_COMMENT = 1000


class SilenceNotFoundError(NotFoundError):
    code = "silence_not_found"


class AlertNotFoundError(NotFoundError):
    code = "alert_not_found"


@dataclass(frozen=True)
class Silence:
    """One silence: what it matches and for how long."""

    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str | None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": dict(self.matchers),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "created_by": self.created_by,
            "comment": self.comment,
        }


def _silence(row: AlertSilenceRow) -> Silence:
    return Silence(
        id=row.id,
        matchers={str(k): str(v) for k, v in row.matchers.items()},
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
    )


def matchers_from(text: str) -> dict[str, str]:
    """The matchers a command line names: a rule name, or ``label=value`` pairs separated by
    commas (labels among :data:`LABELS`)."""
    text = text.strip()
    if "=" not in text:
        return check_matchers({"alertname": text})
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationError(
                f"{item!r} is not label=value; give a rule name (dataset_drift) or "
                "label=value pairs separated by commas (model=churn,severity=critical)",
                detail={"field": "matchers", "got": item[:80]},
            )
        pairs[key.strip()] = value.strip()
    return check_matchers(pairs)


def check_matchers(matchers: Mapping[str, Any]) -> dict[str, str]:
    """``matchers`` if every label is known and every value a non-empty string."""
    if not matchers:
        raise ValidationError(
            "a silence needs at least one matcher, e.g. alertname=dataset_drift",
            detail={"field": "matchers"},
        )
    checked: dict[str, str] = {}
    for key, value in matchers.items():
        if key not in LABELS:
            raise ValidationError(
                f"a silence matches on {', '.join(LABELS)}; got {str(key)[:40]!r}",
                detail={"field": "matchers", "expected": list(LABELS), "got": str(key)[:40]},
            )
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
            raise ValidationError(
                f"matcher {key!r} needs a non-empty text value",
                detail={"field": f"matchers.{key}", "expected": "string"},
            )
        checked[key] = str(value)[:256]
    if "alertname" in checked:
        check_name("alert name", checked["alertname"])
    return checked


def matches(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` hold every matcher."""
    return all(labels.get(k) == v for k, v in matchers.items())


def _check_comment(comment: str | None) -> None:
    if comment is not None and len(comment) > _MAX_COMMENT:
        raise ValidationError(
            f"a comment has at most {_MAX_COMMENT} characters", detail={"field": "comment"}
        )


def create_silence(
    db: Database,
    matchers: Mapping[str, Any],
    duration: timedelta,
    *,
    actor: str,
    comment: str | None = None,
    now: datetime | None = None,
) -> Silence:
    """Silence alerts matching ``matchers`` from now for ``duration`` (audited)."""
    checked = check_matchers(matchers)
    if not timedelta(0) < duration <= MAX_SILENCE:
        raise ValidationError(
            f"a silence lasts more than 0 and at most {MAX_SILENCE.days} days; got {duration}",
            detail={"field": "duration", "expected": f"<= {MAX_SILENCE.days}d"},
        )
    _check_comment(comment)
    now = now or utcnow()
    with db.session(write=True) as session:
        row = AlertSilenceRow(
            matchers=checked,
            starts_at=now,
            ends_at=now + duration,
            created_by=actor,
            created_at=now,
            comment=comment,
        )
        session.add(row)
        session.flush()
        record_audit(
            session,
            actor=actor,
            action="create_silence",
            entity_type="alert_silence",
            entity_name=str(row.id),
            model_name=checked.get("model"),
            after={**_silence(row).to_dict()},
        )
        return _silence(row)


def expire_silence(db: Database, silence_id: int, *, actor: str) -> Silence:
    """End a silence now (audited); ending an ended silence changes nothing."""
    now = utcnow()
    with db.session(write=True) as session:
        row = session.get(AlertSilenceRow, silence_id)
        if row is None:
            raise SilenceNotFoundError(
                f"no silence {silence_id}; `vigil alert silences` lists them",
                detail={"silence": silence_id},
            )
        if row.ends_at > now:
            before = row.ends_at.isoformat()
            row.ends_at = max(now, row.starts_at)
            record_audit(
                session,
                actor=actor,
                action="expire_silence",
                entity_type="alert_silence",
                entity_name=str(row.id),
                model_name=row.matchers.get("model"),
                before={"ends_at": before},
                after={"ends_at": row.ends_at.isoformat()},
            )
        return _silence(row)


def list_silences(
    db: Database, *, include_expired: bool = False, now: datetime | None = None
) -> list[Silence]:
    """Active silences (with ``include_expired``, every one), newest first."""
    now = now or utcnow()
    with db.session() as session:
        query = select(AlertSilenceRow).order_by(AlertSilenceRow.id.desc())
        if not include_expired:
            query = query.where(AlertSilenceRow.ends_at > now)
        return [_silence(r) for r in session.scalars(query.limit(1000))]


def silencing(silences: list[Silence], labels: Mapping[str, str], now: datetime) -> Silence | None:
    """The active silence (the one ending last) that matches ``labels``, if any."""
    found = [s for s in silences if s.active(now) and matches(s.matchers, labels)]
    return max(found, key=lambda s: s.ends_at) if found else None


def silenced_now(db: Database, events: list[AlertEvent]) -> dict[int, str]:
    """``{event id: end of the silence}`` for the firing events an active silence matches
    now (what ``vigil alert list`` shows as silenced)."""
    firing = [e for e in events if e.status == "firing"]
    if not firing:
        return {}
    now = utcnow()
    active = list_silences(db, now=now)
    found = {}
    for event in firing:
        silence = silencing(active, event.labels, now)
        if silence is not None:
            found[event.id] = silence.ends_at.isoformat()
    return found


def mark_silenced(db: Database, event_id: int, claim: str, silence: Silence) -> None:
    """Record that ``silence`` held the claimed event: it is never delivered."""
    with db.session(write=True) as session:
        row = session.get(AlertEventRow, event_id)
        if row is None or row.claim != claim:
            return
        row.silenced_by = silence.id
        row.deliveries = {
            **(row.deliveries or {}),
            "silenced": {"silence": silence.id, "until": silence.ends_at.isoformat()},
        }


def acknowledge(
    db: Database, event_id: int, *, actor: str, comment: str | None = None
) -> dict[str, Any]:
    """Acknowledge a firing alert by the id ``vigil alert list`` shows (audited); returns
    ``{"id", "acknowledged_at", "acknowledged_by"}``. Acknowledging twice keeps the first."""
    _check_comment(comment)
    with db.session(write=True) as session:
        row = session.get(AlertEventRow, event_id)
        if row is None:
            raise AlertNotFoundError(
                f"no alert {event_id}; `vigil alert list` shows the ids of firing alerts",
                detail={"alert": event_id},
            )
        latest = latest_event(session, row.fingerprint)
        if row.status != "firing" or latest.id != row.id:
            raise ConflictError(
                f"alert {event_id} ({row.rule}) is not firing now"
                + (f" (alert {latest.id} is its latest event)" if latest.id != row.id else "")
                + "; only a firing alert is acknowledged",
                detail={"alert": event_id, "latest": latest.id, "status": latest.status},
            )
        if row.acknowledged_at is None:
            row.acknowledged_at = utcnow()
            row.acknowledged_by = actor
            record_audit(
                session,
                actor=actor,
                action="acknowledge_alert",
                entity_type="alert",
                entity_name=f"{row.rule}/{row.id}",
                model_name=row.model,
                after={"alert": row.id, **({"comment": comment} if comment else {})},
            )
        return {
            "id": row.id,
            "acknowledged_at": row.acknowledged_at.isoformat(),
            "acknowledged_by": row.acknowledged_by,
        }
