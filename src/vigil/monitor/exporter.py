"""Prometheus gauges of the monitoring series, served on the server's ``/metrics``.

Three gauge families, on vigil's registry (:data:`vigil.monitor.prometheus.REGISTRY`):

* ``vigil_monitor_value{model, version, route, metric, feature}`` — the value of each
  metric in the latest complete window (``feature`` is empty for window-level metrics);
* ``vigil_monitor_window_end_timestamp_seconds{model, version, route}`` — when that
  window ended (alert on it to catch monitoring that stopped);
* ``vigil_alerts_firing{alertname, severity, model}`` — alerts firing now.

Labels are bounded: models and versions are registered ones, ``route`` a fixed operation
name, ``metric`` one of the fixed names of :mod:`vigil.monitor.points` (fairness series:
one per configured attribute and metric, and per group for at most ``max_groups`` groups
of each attribute), and ``feature`` only a feature of the version's signature.

With several workers (``PROMETHEUS_MULTIPROC_DIR``) the gauges use
``multiprocess_mode="mostrecent"``: every worker may refresh them from the same SQL
store, and the exposition shows the value written last. ``max`` or ``sum`` would be wrong
here: a metric that falls (accuracy, drift share) must fall in the exposition too, and
the same value written by two workers must not add up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Gauge

from vigil.bundle.signature import Signature
from vigil.durations import parse_duration
from vigil.errors import NotFoundError
from vigil.monitor.alerts import list_alerts
from vigil.monitor.prometheus import REGISTRY
from vigil.monitor.series import latest_points, read_series
from vigil.monitor.settings import MonitorSettings
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from vigil.services import Services

MONITOR_VALUE = Gauge(
    "vigil_monitor_value",
    "Value of a monitoring metric in the latest complete window, by model version, route, "
    "metric and feature (empty for window-level metrics).",
    ("model", "version", "route", "metric", "feature"),
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
WINDOW_END = Gauge(
    "vigil_monitor_window_end_timestamp_seconds",
    "End of the latest complete monitoring window, by model version and route.",
    ("model", "version", "route"),
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
ALERTS_FIRING = Gauge(
    "vigil_alerts_firing",
    "Alerts firing now, by rule, severity and model.",
    ("alertname", "severity", "model"),
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)


class MonitorExporter:
    """Sets the gauges from the SQL store; call :meth:`refresh` after each cycle."""

    def __init__(self, app: Services, settings: MonitorSettings) -> None:
        self.vigil = app
        self.settings = settings
        self._features: dict[tuple[str, int], frozenset[str]] = {}
        self._alerts: set[tuple[str, str, str]] = set()

    def _signature_features(self, model: str, version: int) -> frozenset[str]:
        key = (model, version)
        if key not in self._features:
            try:
                mv = self.vigil.registry.get_version(model, version)
                names = Signature.model_validate(mv.signature).feature_names
            except NotFoundError:
                names = []
            self._features[key] = frozenset(names)
        return self._features[key]

    def refresh(self) -> int:
        """Update every gauge from the latest stored windows; returns the series exported."""
        since = utcnow() - parse_duration(self.settings.lookback)
        points = read_series(
            self.vigil.database, window=self.settings.window_spec.text, since=since
        )
        ends: dict[tuple[str, int, str], float] = {}
        for p in points:
            ends[(p.model, p.version, p.route)] = p.window_end.timestamp()
        exported = 0
        for (model, version, route, metric, feature), value in latest_points(points).items():
            if feature and feature not in self._signature_features(model, version):
                continue  # keep label values bounded by what the signature declares
            MONITOR_VALUE.labels(model, str(version), route, metric, feature).set(value)
            exported += 1
        for (model, version, route), end in ends.items():
            WINDOW_END.labels(model, str(version), route).set(end)
        firing: dict[tuple[str, str, str], int] = {}
        for event in list_alerts(self.vigil.database):
            key = (event.rule, event.severity, event.labels.get("model", ""))
            firing[key] = firing.get(key, 0) + 1
        for key in self._alerts | set(firing):
            ALERTS_FIRING.labels(*key).set(firing.get(key, 0))
        self._alerts |= set(firing)
        return exported
