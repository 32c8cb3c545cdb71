"""What monitoring uses of the composition root: :class:`~vigil.services.Services` and
its own settings.

:class:`vigil.app.Vigil` satisfies :class:`MonitorServices`; every monitoring entry point
(:func:`~vigil.monitor.cycle.monitor_once`, the scheduler, the exporter) takes one, so the
monitoring settings, the capture directory and the feedback store are the ones the root
built from ``VIGIL_MONITOR_*`` / ``VIGIL_CAPTURE_*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from vigil.services import Services

if TYPE_CHECKING:
    from vigil.monitor.settings import MonitorSettings

__all__ = ["MonitorServices"]


class MonitorServices(Services, Protocol):
    """:class:`~vigil.services.Services` plus the monitoring settings."""

    @property
    def monitor_settings(self) -> MonitorSettings:
        """Windows, schedule, rules and webhooks (``VIGIL_MONITOR_*``, ``monitor:``)."""
        ...
