"""The alerts page: alerts firing now (with their silences and acknowledgements), recent
transitions, and the active silences. Acknowledging and silencing go through
:mod:`vigil.monitor.silences`, the functions the admin REST API and ``vigil alert`` call,
so they are audited the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vigil.monitor.alerts import list_alerts
from vigil.monitor.silences import list_silences, silenced_now

if TYPE_CHECKING:
    from vigil.monitor.alerts import AlertEvent
    from vigil.monitor.silences import Silence
    from vigil.storage.sql import Database

FIRING_SHOWN = 200
RECENT_SHOWN = 50


@dataclass(frozen=True)
class AlertsView:
    firing: list[AlertEvent]
    silenced_until: dict[int, str]
    recent: list[AlertEvent]
    silences: list[Silence]


def alerts_view(db: Database) -> AlertsView:
    """What the alerts page shows (bounded: :data:`FIRING_SHOWN`, :data:`RECENT_SHOWN`)."""
    firing = list_alerts(db, limit=FIRING_SHOWN)
    return AlertsView(
        firing=firing,
        silenced_until=silenced_now(db, firing),
        recent=list_alerts(db, include_resolved=True, limit=RECENT_SHOWN),
        silences=list_silences(db),
    )
