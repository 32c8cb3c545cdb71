"""Everything a model card shows, gathered from what vigil knows about one version.

:func:`gather` reads the registry (the version, its card facts, lineage, signature,
metrics, stored global importance, alias history and audit trail), the bundle's baseline
profile, the monitoring store (the newest windows, their fairness series, the alerts) and
the endpoints that serve the model. The work is bounded: at most ``windows`` monitoring
windows, ``alerts`` alert events and ``events`` audit and alias events are read, however
long the model has lived. Nothing here renders: :mod:`vigil.card.html` and
:mod:`vigil.card.markdown` draw the same :class:`ModelCard`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vigil.bundle.bundle import read_profile
from vigil.experiments.store import EndpointStore
from vigil.monitor.alerts import AlertEvent, list_alerts
from vigil.monitor.tables import MonitorPointRow, MonitorWindowRow
from vigil.params import check_count
from vigil.profile_schema import BaselineProfile
from vigil.uri import parse_model_ref

if TYPE_CHECKING:
    from vigil.audit import AuditEvent
    from vigil.monitor.services import MonitorServices
    from vigil.registry.entities import AliasEvent, ModelVersion

WINDOWS = 12
"""Monitoring windows a card shows by default (the newest)."""
ALERTS = 20
"""Alert events a card shows by default (the newest)."""
EVENTS = 30
"""Audit entries and alias moves a card shows by default (the newest)."""
FAIRNESS_PREFIX = "fairness."
"""Monitoring series of fairness: ``fairness.<attribute>.<metric>`` (between groups) and
``fairness.<attribute>.<group>.<metric>`` (one group)."""


@dataclass(frozen=True)
class WindowRecord:
    """One monitoring window of the version and its whole-window values (no per-feature
    or fairness points: those are read apart)."""

    window: str
    start: datetime
    end: datetime
    route: str
    n_rows: int
    n_labelled: int
    values: dict[str, float]


@dataclass(frozen=True)
class FairnessPoint:
    """One fairness value of one window: between the groups of ``attribute`` when
    ``group`` is ``None``, else of that group alone."""

    attribute: str
    group: str | None
    metric: str
    value: float
    window_end: datetime


@dataclass(frozen=True)
class EndpointUse:
    """An endpoint whose variants serve this model."""

    name: str
    policy: str
    variants: dict[str, str]
    """Variant name → model reference, for the variants of this model only."""


@dataclass(frozen=True)
class ModelCard:
    """What a model card shows about one version."""

    version: ModelVersion
    profile: BaselineProfile | None
    windows: list[WindowRecord]
    """The newest monitoring windows, oldest first."""
    fairness: list[FairnessPoint]
    """The fairness series of those windows, oldest window first."""
    fairness_at_registration: dict[str, Any]
    """Fairness measured on the reference data when the version was registered (the
    manifest's ``fairness`` entry), empty when none was."""
    alerts: list[AlertEvent]
    """The newest alert events about the model, newest first."""
    alias_history: list[AliasEvent]
    """The newest alias moves of the model, newest first."""
    audit: list[AuditEvent]
    """The newest audit entries about the model, newest first."""
    endpoints: list[EndpointUse] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    """How many windows, alerts and events were asked for (the card says so)."""

    @property
    def importance(self) -> dict[str, Any] | None:
        """The version's stored global importance (``None`` when it has none)."""
        found = self.version.manifest.get("importance")
        return found if isinstance(found, dict) and found.get("features") else None


def _windows(
    services: MonitorServices, mv: ModelVersion, limit: int
) -> tuple[list[WindowRecord], list[FairnessPoint]]:
    """The newest ``limit`` complete windows of the version with their whole-window values,
    and their fairness points."""
    with services.database.session() as session:
        rows = list(
            session.scalars(
                select(MonitorWindowRow)
                .where(
                    MonitorWindowRow.model == mv.name,
                    MonitorWindowRow.version == mv.version,
                    MonitorWindowRow.partial.is_(False),
                )
                .order_by(MonitorWindowRow.window_end.desc(), MonitorWindowRow.id.desc())
                .limit(limit)
            )
        )
        rows.reverse()
        ids = [r.id for r in rows]
        points = list(
            session.scalars(
                select(MonitorPointRow)
                .where(MonitorPointRow.window_id.in_(ids), MonitorPointRow.feature.is_(None))
                .order_by(MonitorPointRow.id)
            )
        )
    values: dict[int, dict[str, float]] = {i: {} for i in ids}
    fairness: list[FairnessPoint] = []
    for p in points:
        if p.metric.startswith(FAIRNESS_PREFIX):
            parsed = parse_fairness_metric(p.metric)
            if parsed is not None:
                attribute, group, metric = parsed
                fairness.append(FairnessPoint(attribute, group, metric, p.value, p.window_end))
        else:
            values[p.window_id][p.metric] = p.value
    records = [
        WindowRecord(
            window=r.window,
            start=r.window_start,
            end=r.window_end,
            route=r.route,
            n_rows=r.n_rows,
            n_labelled=r.n_labelled,
            values=values[r.id],
        )
        for r in rows
    ]
    fairness.sort(key=lambda f: f.window_end)
    return records, fairness


def parse_fairness_metric(metric: str) -> tuple[str, str | None, str] | None:
    """``(attribute, group or None, metric)`` of a fairness series' name.

    >>> parse_fairness_metric("fairness.sex.demographic_parity_difference")
    ('sex', None, 'demographic_parity_difference')
    >>> parse_fairness_metric("fairness.sex.female.selection_rate")
    ('sex', 'female', 'selection_rate')
    >>> parse_fairness_metric("fairness.sex") is None
    True
    """
    parts = metric.removeprefix(FAIRNESS_PREFIX).split(".")
    if len(parts) == 2:
        return parts[0], None, parts[1]
    if len(parts) >= 3:
        # A group label may hold dots; the attribute and the metric never do.
        return parts[0], ".".join(parts[1:-1]), parts[-1]
    return None


def _endpoints(services: MonitorServices, name: str) -> list[EndpointUse]:
    found = []
    for config in EndpointStore(services).list():
        mine = {v.name: v.model for v in config.variants if parse_model_ref(v.model).name == name}
        if mine:
            found.append(EndpointUse(config.name, config.policy.kind, mine))
    return found


def gather(
    services: MonitorServices,
    uri: str,
    *,
    windows: int = WINDOWS,
    alerts: int = ALERTS,
    events: int = EVENTS,
) -> ModelCard:
    """The :class:`ModelCard` of the version ``uri`` names (``models:/NAME/VERSION`` or
    ``models:/NAME@ALIAS``); raises the registry's not-found errors for unknown ones."""
    for what, value in (("windows", windows), ("alerts", alerts), ("events", events)):
        check_count("model card", what, value, minimum=1)
    registry = services.registry
    mv = registry.resolve(uri)
    profile = read_profile(registry.fetch_bundle(mv, services.cache_dir), sample=False)
    records, fairness = _windows(services, mv, windows)
    history: list[AliasEvent] = []
    for alias in {a.alias for a in registry.list_aliases(mv.name)} | set(mv.aliases):
        history.extend(registry.alias_history(mv.name, alias, limit=events))
    history.sort(key=lambda e: (e.at, e.alias, e.action), reverse=True)
    at_registration = mv.manifest.get("fairness")
    return ModelCard(
        version=mv,
        profile=profile,
        windows=records,
        fairness=fairness,
        fairness_at_registration=at_registration if isinstance(at_registration, dict) else {},
        alerts=list_alerts(services.database, include_resolved=True, model=mv.name, limit=alerts),
        alias_history=history[:events],
        audit=registry.audit(mv.name, limit=events),
        endpoints=_endpoints(services, mv.name),
        limits={"windows": windows, "alerts": alerts, "events": events},
    )
