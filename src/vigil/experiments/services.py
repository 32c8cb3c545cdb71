"""What experiments use of the composition root: monitoring's services (alerts, webhooks
and the capture log read by :mod:`vigil.experiments.status`) and the shared policy state.

:class:`vigil.app.Vigil` satisfies :class:`ExperimentServices`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from vigil.monitor.services import MonitorServices

if TYPE_CHECKING:
    from vigil.experiments.state import PolicyStateStore

__all__ = ["ExperimentServices"]


class ExperimentServices(MonitorServices, Protocol):
    """:class:`~vigil.monitor.services.MonitorServices` plus the policy state."""

    def policy_state(self) -> PolicyStateStore:
        """A new handle on the shared policy state: Redis when ``VIGIL_REDIS_URL`` is set,
        else the SQL database. The caller owns it (a Redis one holds a connection pool)."""
        ...
