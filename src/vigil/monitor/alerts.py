"""Alert state in the SQL store: rule evaluation over the series, events, claims.

An alert is identified by its *fingerprint*: a digest of the rule name and the series'
labels (model, version, route, feature). Its state is its latest event: ``firing`` or
``resolved``. Evaluating the rules and writing the resulting events happen in one write
transaction, serialised across processes (``BEGIN IMMEDIATE`` on SQLite, a transaction
advisory lock on PostgreSQL), and events are unique on ``(fingerprint, status,
occurrence)``: however many workers evaluate at once, each transition is written once.

Writing an event also *claims* its delivery for the writer (``claim``, ``claimed_at``).
A delivery that failed, or whose process died, is taken over by a later run once the
claim is older than :data:`CLAIM_TTL` (a conditional ``UPDATE`` that only one process can
win), up to :data:`MAX_DELIVERY_ROUNDS` rounds.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.audit import record_audit
from vigil.monitor.rules import AlertRule, transition
from vigil.monitor.series import SeriesPoint, read_series
from vigil.monitor.tables import AlertEventRow
from vigil.storage.sql import Database, utcnow

CLAIM_TTL = timedelta(minutes=2)
"""A delivery claim older than this is considered abandoned and may be taken over."""
MAX_DELIVERY_ROUNDS = 5
"""Runs that try to deliver one event before giving up (each with its own retries)."""
_PG_ALERT_LOCK = zlib.crc32(b"vigil-alerts")


@dataclass(frozen=True)
class AlertEvent:
    """One transition of one alert, as stored (detached from any session)."""

    id: int
    fingerprint: str
    rule: str
    status: str
    severity: str
    summary: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime
    occurrence: str
    value: float | None = None
    threshold: float | None = None
    metric: str | None = None
    delivered_at: datetime | None = None
    attempts: int = 0
    deliveries: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    silenced_by: int | None = None
    """The silence that kept it from the webhooks (see :mod:`vigil.monitor.silences`)."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    def annotations(self) -> dict[str, str]:
        """What a person reads about it: ``summary``, and ``description`` (the metric's
        value against its threshold) when it came from a rule."""
        annotations = {"summary": self.summary}
        if self.metric is not None:
            annotations["description"] = (
                f"{self.metric} = {self.value} (threshold {self.threshold})"
                if self.threshold is not None
                else f"{self.metric} = {self.value}"
            )
        return annotations

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "status": self.status,
            "severity": self.severity,
            "summary": self.summary,
            "labels": dict(self.labels),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "created_at": self.created_at.isoformat(),
            "value": self.value,
            "threshold": self.threshold,
            "metric": self.metric,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "attempts": self.attempts,
            "deliveries": dict(self.deliveries),
            "last_error": self.last_error,
            "silenced_by": self.silenced_by,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
            "acknowledged_by": self.acknowledged_by,
        }


def fingerprint(name: str, labels: Mapping[str, str]) -> str:
    """The identity of an alert: rule name and labels, order-independent.

    >>> fingerprint("drift", {"model": "m", "version": "1"}) == fingerprint(
    ...     "drift", {"version": "1", "model": "m"})
    True
    """
    data = json.dumps([name, sorted((str(k), str(v)) for k, v in labels.items())])
    return hashlib.sha256(data.encode()).hexdigest()[:32]


def _event(row: AlertEventRow) -> AlertEvent:
    return AlertEvent(
        id=row.id,
        fingerprint=row.fingerprint,
        rule=row.rule,
        status=row.status,
        severity=row.severity,
        summary=row.summary,
        labels={str(k): str(v) for k, v in (row.labels or {}).items()},
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        occurrence=row.occurrence,
        value=row.value,
        threshold=row.threshold,
        metric=row.metric,
        delivered_at=row.delivered_at,
        attempts=row.attempts,
        deliveries=dict(row.deliveries or {}),
        last_error=row.last_error,
        silenced_by=row.silenced_by,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
    )


def _serialise(session: Session, db: Database) -> None:
    # SQLite's write sessions already start with BEGIN IMMEDIATE (one writer at a time).
    if db.dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_ALERT_LOCK})


def _latest(
    session: Session, fingerprints: Iterable[str] | None = None
) -> dict[str, AlertEventRow]:
    query = select(AlertEventRow).order_by(AlertEventRow.id)
    if fingerprints is not None:
        query = query.where(AlertEventRow.fingerprint.in_(list(fingerprints)))
    latest: dict[str, AlertEventRow] = {}
    for row in session.scalars(query):
        latest[row.fingerprint] = row
    return latest


def latest_event(session: Session, fp: str) -> AlertEventRow:
    """The newest event of the alert with fingerprint ``fp`` (one exists)."""
    row = session.scalars(
        select(AlertEventRow)
        .where(AlertEventRow.fingerprint == fp)
        .order_by(AlertEventRow.id.desc())
        .limit(1)
    ).one()
    return row


def series_labels(p: SeriesPoint) -> dict[str, str]:
    """The labels of the series a point belongs to (``feature`` only when it has one)."""
    labels = {"model": p.model, "version": str(p.version), "route": p.route}
    if p.feature:
        labels["feature"] = p.feature
    return labels


def _group(
    points: Sequence[SeriesPoint],
) -> dict[tuple[str, str, int, str, str], list[SeriesPoint]]:
    series: dict[tuple[str, str, int, str, str], list[SeriesPoint]] = {}
    for p in points:
        series.setdefault((p.metric, p.model, p.version, p.route, p.feature or ""), []).append(p)
    for values in series.values():
        values.sort(key=lambda p: p.window_end)
    return series


def new_claim() -> str:
    return uuid.uuid4().hex


ALERT_ACTOR = "alert-rules"
"""Who the audit names for an alert's transition: vigil itself, not a person."""


def _audit_transition(session: Session, row: AlertEventRow) -> None:
    """An alert's transition is a decision vigil makes on its own: it enters the audit
    trail (hash-chained, :mod:`vigil.audit`) with the numbers behind it, in the
    transaction that writes it."""
    value = row.value if row.value is None or math.isfinite(row.value) else str(row.value)
    record_audit(
        session,
        actor=ALERT_ACTOR,
        action=f"alert.{row.status}",
        entity_type="alert",
        entity_name=row.rule,
        model_name=row.model,
        after={
            "fingerprint": row.fingerprint,
            "severity": row.severity,
            "metric": row.metric,
            "value": value,
            "threshold": row.threshold,
            "summary": row.summary,
            "labels": row.labels,
        },
    )


def evaluate_rules(
    db: Database,
    rules: Sequence[AlertRule],
    *,
    since: datetime,
    window: str,
    model: str | None = None,
    claim: str | None = None,
) -> list[AlertEvent]:
    """Apply ``rules`` to the stored series cut with ``window`` (complete windows ending
    at/after ``since``) and write one event per transition; returns the events written,
    claimed by ``claim``."""
    if not rules:
        return []
    points = read_series(
        db,
        metrics={r.metric for r in rules if not r.is_pattern},
        metric_patterns={r.metric for r in rules if r.is_pattern},
        window=window,
        model=model,
        since=since,
    )
    series = _group(points)
    now = utcnow()
    try:
        with db.session(write=True) as session:
            _serialise(session, db)
            rows: list[AlertEventRow] = []
            candidates = []
            for rule in rules:
                for (metric, *_), values in series.items():
                    if not rule.watches(metric):
                        continue
                    labels = series_labels(values[-1])
                    if rule.is_pattern:  # one alert per series the pattern names
                        labels["metric"] = metric
                    if rule.matches(labels):
                        candidates.append((rule, labels, values, fingerprint(rule.name, labels)))
            state = _latest(session, {c[3] for c in candidates})
            for rule, labels, values, fp in candidates:
                previous = state.get(fp)
                firing = previous is not None and previous.status == "firing"
                change = transition(rule, [p.value for p in values], firing=firing)
                if change is None:
                    continue
                last = values[-1]
                if change == "firing":
                    starts_at, ends_at = values[-rule.for_windows].window_start, None
                else:
                    assert previous is not None
                    starts_at, ends_at = previous.starts_at, last.window_end
                row = AlertEventRow(
                    fingerprint=fp,
                    rule=rule.name,
                    status=change,
                    occurrence=last.window_end.isoformat(),
                    severity=rule.severity,
                    model=last.model,
                    version=last.version,
                    route=last.route,
                    feature=last.feature,
                    metric=last.metric,
                    value=last.value,
                    threshold=rule.threshold,
                    summary=rule.describe(labels, last.value),
                    labels={"alertname": rule.name, "severity": rule.severity, **labels},
                    starts_at=starts_at,
                    ends_at=ends_at,
                    created_at=now,
                    claim=claim,
                    claimed_at=now if claim else None,
                    attempts=0,
                    deliveries={},
                )
                session.add(row)
                _audit_transition(session, row)
                rows.append(row)
            session.flush()
            return [_event(r) for r in rows]
    except IntegrityError:
        return []  # another process wrote these transitions first; it notifies


def record_event(
    db: Database,
    *,
    rule: str,
    status: str,
    severity: str,
    summary: str,
    labels: Mapping[str, str],
    value: float | None = None,
    metric: str | None = None,
    threshold: float | None = None,
    occurrence: str | None = None,
    starts_at: datetime | None = None,
    claim: str | None = None,
) -> AlertEvent | None:
    """Write one event outside the rules (e.g. a canary rollback); ``None`` if an event
    with the same fingerprint, status and ``occurrence`` exists (de-duplicated)."""
    now = utcnow()
    labels = {str(k): str(v) for k, v in labels.items()}
    fp = fingerprint(rule, labels)
    try:
        with db.session(write=True) as session:
            _serialise(session, db)
            previous = _latest(session, [fp]).get(fp)
            started = starts_at or now
            ends_at = None
            if status == "resolved":
                ends_at = now
                if previous is not None and previous.status == "firing":
                    started = previous.starts_at
            row = AlertEventRow(
                fingerprint=fp,
                rule=rule,
                status=status,
                occurrence=occurrence or now.isoformat(),
                severity=severity,
                model=labels.get("model"),
                version=int(labels["version"]) if labels.get("version", "").isdigit() else None,
                route=labels.get("route"),
                feature=labels.get("feature"),
                metric=metric,
                value=value,
                threshold=threshold,
                summary=summary,
                labels={"alertname": rule, "severity": severity, **labels},
                starts_at=started,
                ends_at=ends_at,
                created_at=now,
                claim=claim,
                claimed_at=now if claim else None,
                attempts=0,
                deliveries={},
            )
            session.add(row)
            _audit_transition(session, row)
            session.flush()
            return _event(row)
    except IntegrityError:
        return None


def claim_undelivered(db: Database, claim: str, *, now: datetime | None = None) -> list[AlertEvent]:
    """Take over deliveries that failed or were abandoned (one process wins each)."""
    now = now or utcnow()
    stale = now - CLAIM_TTL
    with db.session() as session:
        ids = session.scalars(
            select(AlertEventRow.id).where(
                AlertEventRow.delivered_at.is_(None),
                AlertEventRow.silenced_by.is_(None),
                AlertEventRow.attempts < MAX_DELIVERY_ROUNDS,
                or_(AlertEventRow.claimed_at.is_(None), AlertEventRow.claimed_at < stale),
            )
        ).all()
    won: list[AlertEvent] = []
    for event_id in ids:
        with db.session(write=True) as session:
            result = session.execute(
                update(AlertEventRow)
                .where(
                    AlertEventRow.id == event_id,
                    AlertEventRow.delivered_at.is_(None),
                    or_(AlertEventRow.claimed_at.is_(None), AlertEventRow.claimed_at < stale),
                )
                .values(claim=claim, claimed_at=now)
            )
            if getattr(result, "rowcount", 0) == 1:
                row = session.get(AlertEventRow, event_id)
                assert row is not None
                won.append(_event(row))
    return won


def record_delivery(
    db: Database,
    event_id: int,
    claim: str,
    deliveries: Mapping[str, Any],
    *,
    delivered: bool,
    error: str | None,
) -> None:
    """Store the outcome of one delivery round (only by the process holding the claim)."""
    now = utcnow()
    with db.session(write=True) as session:
        row = session.get(AlertEventRow, event_id)
        if row is None or row.claim != claim:
            return
        row.deliveries = {**(row.deliveries or {}), **deliveries}
        row.attempts = row.attempts + 1
        row.last_error = error
        if delivered:
            row.delivered_at = now
        else:
            # Leave the claim to expire, so a later run retries after CLAIM_TTL.
            row.claimed_at = now


def list_alerts(
    db: Database, *, include_resolved: bool = False, model: str | None = None, limit: int = 200
) -> list[AlertEvent]:
    """Firing alerts (the latest event of each is ``firing``), newest first; with
    ``include_resolved`` every event, newest first."""
    with db.session() as session:
        if include_resolved:
            query = select(AlertEventRow).order_by(AlertEventRow.id.desc()).limit(limit)
            if model is not None:
                query = query.where(AlertEventRow.model == model)
            return [_event(r) for r in session.scalars(query)]
        latest = _latest(session)
    firing = [
        _event(r)
        for r in latest.values()
        if r.status == "firing" and (model is None or r.model == model)
    ]
    firing.sort(key=lambda e: e.id, reverse=True)
    return firing[:limit]
