"""The overview: every model and endpoint with its health at a glance, the ones that need
attention first.

A model's row: what its aliases serve, live traffic (requests per second, p99 latency and
error rate from the server's counters, :mod:`vigil.ui.live`), and from its latest
monitoring window the drift verdict and accuracy (measured on labels when there are any,
else estimated before labels arrive) with the window's own request rate when the server
has no live traffic for it; and the alerts firing about it. An endpoint's row: its
policy, its variants, its live requests per second and error rate over the variants that
answer callers (not shadows), and the alerts firing about it.

The reads are bounded whatever the history's length: one query for the models, one for
the latest point of each of five metrics per model (the series index), one for the
firing alerts (at most :data:`ALERTS_READ`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from vigil.monitor.alerts import list_alerts
from vigil.monitor.tables import MonitorPointRow, MonitorWindowRow
from vigil.registry.tables import RegisteredModelRow

if TYPE_CHECKING:
    from vigil.experiments.config import EndpointConfig
    from vigil.monitor.alerts import AlertEvent
    from vigil.monitor.services import MonitorServices
    from vigil.storage.sql import Database
    from vigil.ui.live import Live, LiveFigures

ALERTS_READ = 500
RECENT_WINDOWS = 5
"""A model's newest windows the overview reads its figures from (accuracy is only in
windows with labels, so the very newest may not hold it)."""
_METRICS = (
    "traffic.requests",
    "traffic.error_rate",
    "drift.dataset",
    "performance.accuracy",
    "estimated.accuracy",
)


@dataclass(frozen=True)
class Latest:
    """The latest value of one metric of one model, with its window."""

    value: float
    start: datetime
    end: datetime


@dataclass
class Row:
    """One model or endpoint on the overview."""

    kind: str
    """``model`` or ``endpoint``."""
    name: str
    serving: str
    requests_per_s: float | None = None
    p99_ms: float | None = None
    error_rate: float | None = None
    drift: str = "—"
    """``drifted``, ``stable`` or ``—`` (no window yet)."""
    accuracy: float | None = None
    accuracy_kind: str = ""
    """``measured``, ``estimated`` or empty."""
    live: bool = False
    """Traffic figures come from the server's counters (else from the latest window)."""
    alerts: list[str] = field(default_factory=list)
    """The rules firing about it."""

    @property
    def attention(self) -> int:
        """How badly it needs a look: alerts, then drift, then errors."""
        score = 100 * len(self.alerts)
        if self.drift == "drifted":
            score += 10
        if self.error_rate is not None and self.error_rate > 0.01:
            score += 5
        return score

    @property
    def status(self) -> str:
        """One word for the row: ``alert``, ``warn`` or ``ok``."""
        return "alert" if self.alerts else "warn" if self.attention else "ok"


@dataclass(frozen=True)
class Overview:
    rows: list[Row]
    firing: int
    models: int
    endpoints: int


def latest_points(
    db: Database, metrics: tuple[str, ...] = _METRICS, *, recent: int = RECENT_WINDOWS
) -> dict[tuple[str, str], Latest]:
    """``(model, metric) → Latest`` for ``metrics``: the newest value of each among each
    model's ``recent`` newest windows (of any length). Its cost does not grow with the
    history: for each registered model, a seek on the window index ``(model,
    window_end)`` finds its newest windows, whose points are read through their
    ``window_id`` index."""
    newest = (
        select(MonitorWindowRow.id)
        .where(MonitorWindowRow.model == RegisteredModelRow.name)
        .order_by(MonitorWindowRow.window_end.desc())
        .limit(recent)
        .correlate(RegisteredModelRow)
    )
    windows = (
        select(MonitorWindowRow.id, MonitorWindowRow.window_start, MonitorWindowRow.window_end)
        .select_from(RegisteredModelRow)
        .join(MonitorWindowRow, MonitorWindowRow.id.in_(newest))
    )
    # The points without their times (a window's are read once, above, not per point).
    points = (
        select(
            MonitorPointRow.window_id,
            MonitorPointRow.model,
            MonitorPointRow.metric,
            MonitorPointRow.value,
        )
        .select_from(RegisteredModelRow)
        .join(MonitorPointRow, MonitorPointRow.window_id.in_(newest))
        .where(MonitorPointRow.metric.in_(metrics), MonitorPointRow.feature.is_(None))
    )
    found: dict[tuple[str, str], Latest] = {}
    with db.session() as session:
        bounds = {i: (start, end) for i, start, end in session.execute(windows)}
        for window_id, model, metric, value in session.execute(points):
            if window_id not in bounds:
                continue  # replaced between the two reads: its successor is newer still
            start, end = bounds[window_id]
            seen = found.get((model, metric))
            if seen is None or end > seen.end:
                found[(model, metric)] = Latest(value, start, end)
    return found


def _model_row(
    name: str,
    aliases: Mapping[str, int],
    latest_version: int | None,
    points: Mapping[tuple[str, str], Latest],
    live: LiveFigures | None,
    alerts: list[AlertEvent],
) -> Row:
    serving = ", ".join(f"{a} → v{v}" for a, v in sorted(aliases.items()))
    if not serving:
        serving = f"v{latest_version} (no alias)" if latest_version else "no version"
    row = Row("model", name, serving, alerts=sorted({a.rule for a in alerts}))
    if live is not None and live.requests_per_s:
        row.live = True
        row.requests_per_s, row.p99_ms, row.error_rate = (
            live.requests_per_s,
            live.p99_ms,
            live.error_rate,
        )
    else:
        requests = points.get((name, "traffic.requests"))
        if requests is not None:
            seconds = (requests.end - requests.start).total_seconds()
            row.requests_per_s = requests.value / seconds if seconds > 0 else None
        errors = points.get((name, "traffic.error_rate"))
        row.error_rate = errors.value if errors is not None else None
    drift = points.get((name, "drift.dataset"))
    if drift is not None:
        row.drift = "drifted" if drift.value >= 0.5 else "stable"
    measured = points.get((name, "performance.accuracy"))
    estimated = points.get((name, "estimated.accuracy"))
    if measured is not None:
        row.accuracy, row.accuracy_kind = measured.value, "measured"
    elif estimated is not None:
        row.accuracy, row.accuracy_kind = estimated.value, "estimated"
    return row


def answering(config: EndpointConfig) -> list[str]:
    """The variants of an endpoint that answer callers (all but a shadow policy's shadows)."""
    shadows = set(getattr(config.policy, "shadows", ()))
    return [v.name for v in config.variants if v.name not in shadows]


def _endpoint_row(config: EndpointConfig, live: Live, alerts: list[AlertEvent]) -> Row:
    variants = ", ".join(f"{v.name}: {v.model.removeprefix('models:/')}" for v in config.variants)
    row = Row(
        "endpoint",
        config.name,
        f"{config.policy.kind} · {variants}",
        alerts=sorted({a.rule for a in alerts}),
    )
    figures = live.endpoint(config.name, answering(config))
    if figures is not None and figures.requests_per_s:
        row.live = True
        row.requests_per_s, row.error_rate = figures.requests_per_s, figures.error_rate
    return row


def overview(services: MonitorServices, live: Live) -> Overview:
    """The overview of an installation, rows sorted by what needs attention."""
    from vigil.experiments.store import EndpointStore  # the overview's one endpoint read

    db = services.database
    models = services.registry.list_models()
    points = latest_points(db)
    firing = list_alerts(db, limit=ALERTS_READ)
    by_model: dict[str, list[AlertEvent]] = {}
    by_endpoint: dict[str, list[AlertEvent]] = {}
    for event in firing:
        if event.labels.get("model"):
            by_model.setdefault(event.labels["model"], []).append(event)
        if event.labels.get("endpoint"):
            by_endpoint.setdefault(event.labels["endpoint"], []).append(event)
    rows = [
        _model_row(
            m.name,
            m.aliases,
            m.latest_version,
            points,
            live.models.get(m.name),
            by_model.get(m.name, []),
        )
        for m in models
    ]
    endpoints = EndpointStore(services).list()
    rows += [_endpoint_row(e, live, by_endpoint.get(e.name, [])) for e in endpoints]
    rows.sort(key=lambda r: (-r.attention, r.kind, r.name))
    return Overview(rows, len(firing), len(models), len(endpoints))
