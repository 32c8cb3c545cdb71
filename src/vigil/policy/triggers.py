"""When a policy starts a run on its own: alerts, a schedule, a threshold.

:func:`due_triggers` looks at one policy and says which of its triggers fired since it last
looked, and the cursors to keep for next time (``update_policies.trigger_state``):

* **alerts**: a ``firing`` event of one of the named rules about the model (its ``model``
  column or label), recorded after the last one seen (``alert_event_id``); events before
  the policy was set do not count;
* **schedule**: the cron expression's next firing time (``schedule_next``) has passed;
* **thresholds**: the newest stored window of the model's series (``monitor_points``)
  crosses the limit, and it is a window not judged yet (``threshold_window_end``).

The scheduler starts a run for the first trigger found, subject to the policy's cooldown
and the one-run-in-flight rule (:meth:`~vigil.policy.engine.PolicyEngine.start`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from vigil.monitor.tables import AlertEventRow, MonitorPointRow

if TYPE_CHECKING:
    from vigil.policy.store import StoredPolicy
    from vigil.storage.sql import Database

__all__ = ["due_triggers"]


def _alerts(
    db: Database, stored: StoredPolicy, state: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    config = stored.config
    names = config.triggers.alerts
    if not names:
        return [], {}
    cursor = state.get("alert_event_id")
    with db.session() as session:
        if cursor is None:
            # First look: only alerts recorded after the policy was set count.
            query = select(func.max(AlertEventRow.id)).where(
                AlertEventRow.created_at < stored.updated_at
            )
            cursor = session.scalar(query) or 0
        rows = session.scalars(
            select(AlertEventRow)
            .where(
                AlertEventRow.id > cursor,
                AlertEventRow.rule.in_(names),
                AlertEventRow.status == "firing",
            )
            .order_by(AlertEventRow.id)
            .limit(1000)
        ).all()
        newest = session.scalar(select(func.max(AlertEventRow.id))) or cursor
    fired = [
        {"kind": "alert", "rule": r.rule, "event": r.id, "summary": r.summary[:300]}
        for r in rows
        if r.model == config.model or (r.labels or {}).get("model") == config.model
    ]
    return fired, {"alert_event_id": max(int(newest), int(cursor))}


def _schedule(
    stored: StoredPolicy, state: dict[str, Any], now: datetime
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    schedule = stored.config.triggers.schedule
    if schedule is None:
        return [], {}
    from vigil.policy.cron import next_fire

    due = state.get("schedule_next")
    if due is None or state.get("schedule") != schedule:
        return [], {"schedule": schedule, "schedule_next": next_fire(schedule, now).isoformat()}
    if now < datetime.fromisoformat(due):
        return [], {}
    fired = [{"kind": "schedule", "schedule": schedule, "due": due}]
    return fired, {"schedule_next": next_fire(schedule, now).isoformat()}


def _thresholds(
    db: Database, stored: StoredPolicy, state: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    config = stored.config
    if not config.triggers.thresholds:
        return [], {}
    seen: dict[str, str] = dict(state.get("threshold_window_end") or {})
    fired = []
    with db.session() as session:
        for i, threshold in enumerate(config.triggers.thresholds):
            query = (
                select(MonitorPointRow)
                .where(
                    MonitorPointRow.model == config.model,
                    MonitorPointRow.metric == threshold.metric,
                    MonitorPointRow.feature.is_(None)
                    if threshold.feature is None
                    else MonitorPointRow.feature == threshold.feature,
                )
                .order_by(MonitorPointRow.window_end.desc(), MonitorPointRow.id.desc())
                .limit(1)
            )
            point = session.scalars(query).first()
            if point is None:
                continue
            end = point.window_end.isoformat()
            if seen.get(str(i)) == end:
                continue
            seen[str(i)] = end
            if threshold.crossed(point.value):
                fired.append(
                    {
                        "kind": "threshold",
                        "metric": threshold.metric,
                        "value": point.value,
                        "limit": f"{threshold.comparison} {threshold.value:g}",
                        "window_end": end,
                    }
                )
    return fired, {"threshold_window_end": seen}


def due_triggers(
    db: Database, stored: StoredPolicy, now: datetime
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The triggers of ``stored`` that fired since it last looked, and the cursors to keep."""
    state = stored.trigger_state
    fired: list[dict[str, Any]] = []
    cursors: dict[str, Any] = {}
    for found, moved in (
        _alerts(db, stored, state),
        _schedule(stored, state, now),
        _thresholds(db, stored, state),
    ):
        fired += found
        cursors.update(moved)
    return fired, cursors
