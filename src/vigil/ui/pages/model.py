"""The model page: versions, aliases, baseline profile and monitoring over time.

:func:`model_view` reads one model through the stores the CLI and the admin API read (the
registry, the monitoring series, the baseline profile in the version's bundle) and returns
a plain :class:`ModelView` for ``model.html``. Its work is bounded: the newest ``versions``
versions, ``history`` moves per alias, the newest ``windows`` windows of the monitoring
window setting and at most :data:`MAX_FEATURES` features per chart.

Monitoring shows the windows cut with the configured setting (``VIGIL_MONITOR_WINDOW``), or
the setting of the newest stored window when none was cut with it: drift per feature as a
heatmap of features × windows, data quality, performance and estimated performance,
fairness by group (series ``fairness.*``, when a window has any) and the version's global
importance stored at registration.

A drill-down to one feature in one window (``feature=`` and ``window=`` query parameters
of the page, see :func:`model_view`) draws the reference distribution (the baseline
profile) beside the window's captured values, as ``vigil report`` does for that window:
it calls :func:`vigil.report.capture_report.capture_report`.

:data:`ACTIONS` promote (point an alias at a version), roll back an alias, archive and
unarchive a version: each calls the registry exactly as the admin REST API does
(:mod:`vigil.serving.admin_routes`), acting as the signed-in actor, so each lands in the
alias history and the audit log; each asks for a ticked ``confirm`` field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from markupsafe import Markup
from sqlalchemy import select

from vigil.errors import NotFoundError, ValidationError, VigilError
from vigil.monitor.points import ESTIMATED_MEASURES, PERFORMANCE_MEASURES
from vigil.monitor.tables import MonitorPointRow, MonitorWindowRow
from vigil.names import check_alias, check_model_name
from vigil.profile_schema import CategoricalProfile, NumericProfile
from vigil.serving.admin_routes import unknown_fields
from vigil.ui import charts
from vigil.uri import MAX_VERSION

if TYPE_CHECKING:
    from vigil.monitor.services import MonitorServices
    from vigil.registry.entities import AliasEvent, ModelVersion

__all__ = [
    "ACTIONS",
    "Action",
    "AliasView",
    "DriftDetail",
    "ModelView",
    "Monitoring",
    "VersionView",
    "model_view",
]

log = logging.getLogger("vigil.ui")

VERSIONS = 20
"""Versions shown, newest first."""
WINDOWS = 24
"""Monitoring windows shown, newest last."""
HISTORY = 10
"""Moves shown per alias, newest first."""
MAX_FEATURES = 50
"""Features per chart (heatmap rows, profile charts, importance bars)."""
MAX_REASON = 1000
QUALITY_METRICS = (
    "quality.missing_rate",
    "quality.type_error_rate",
    "quality.out_of_range_rate",
    "quality.outlier_rate",
    "quality.unseen_category_rate",
)
FAIRNESS_PREFIX = "fairness."

Action = Callable[[Any, str, Mapping[str, str], str], str]
"""(services, model name, the form's fields without ``csrf``, actor) → a message to show."""


@dataclass(frozen=True)
class VersionView:
    """One version: what the registry holds about it."""

    version: int
    flavor: str
    created_at: datetime
    created_by: str
    description: str | None
    metrics: dict[str, float]
    tags: dict[str, str]
    aliases: list[str]
    archived: bool
    lineage: dict[str, Any]
    inputs: list[tuple[str, str]]
    """The signature's inputs, ``(name, dtype)``."""
    outputs: list[tuple[str, str]]
    """The signature's outputs: ``task``, ``dtype`` and ``classes``, as text."""


@dataclass(frozen=True)
class AliasView:
    """An alias, the version it points to and its newest moves."""

    alias: str
    version: int
    history: list[AliasEvent]


@dataclass(frozen=True)
class DriftDetail:
    """One feature in one window: both distributions and the stored test result."""

    feature: str
    window_id: int
    window: str
    version: int
    chart: Markup
    p_value: float | None
    statistic: float | None
    effect_size: float | None
    drifted: bool | None
    report_command: str
    """The ``vigil report`` command that writes this window's HTML report."""


@dataclass(frozen=True)
class Monitoring:
    """The newest windows of one window setting and what was measured in them."""

    setting: str | None
    windows: list[str]
    """Window labels, oldest first."""
    window_ids: list[int]
    features: list[str]
    heatmap: Markup | None
    drifted_latest: list[str]
    drift_share: Markup | None
    quality: Markup | None
    quality_latest: list[tuple[str, dict[str, float]]]
    """Per feature, the newest window's quality rates."""
    performance: Markup | None
    estimated: Markup | None
    fairness: list[Markup]
    values: dict[tuple[int, str, str], float] = field(repr=False)
    """Every value read: ``(window id, metric, feature or "")``."""
    reports: list[tuple[str, str]] = field(default_factory=list)
    """Per window (newest first), its label and the ``vigil report`` command for its HTML
    report."""


@dataclass(frozen=True)
class ModelView:
    """Everything the model page shows (see the module docstring)."""

    name: str
    description: str | None
    latest_version: int | None
    version_count: int
    current_version: int | None
    """The version the profile and importance are of: ``production``'s, else the newest."""
    versions: list[VersionView]
    aliases: list[AliasView]
    profile: list[Markup]
    profile_note: str | None
    importance: Markup | None
    importance_note: str | None
    monitoring: Monitoring
    drill: DriftDetail | None = None


# -- versions and aliases -------------------------------------------------------------------


def _inputs(signature: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(f.get("name")), str(f.get("dtype"))) for f in signature.get("inputs") or []]


def _outputs(signature: dict[str, Any]) -> list[tuple[str, str]]:
    out = signature.get("outputs") or {}
    shown = [(k, str(out[k])) for k in ("task", "dtype") if out.get(k) is not None]
    if out.get("classes"):
        shown.append(("classes", ", ".join(map(str, out["classes"]))))
    return shown


def _version(mv: ModelVersion) -> VersionView:
    return VersionView(
        version=mv.version,
        flavor=mv.flavor,
        created_at=mv.created_at,
        created_by=mv.created_by,
        description=mv.description,
        metrics=dict(mv.metrics),
        tags=dict(mv.tags),
        aliases=list(mv.aliases),
        archived=mv.archived_at is not None,
        lineage=dict(mv.lineage),
        inputs=_inputs(mv.signature),
        outputs=_outputs(mv.signature),
    )


# -- baseline profile and importance --------------------------------------------------------


def _profile_charts(services: MonitorServices, mv: ModelVersion) -> tuple[list[Markup], str | None]:
    from vigil.report.capture_report import baseline_profile  # PyArrow: only for this page

    try:
        profile = baseline_profile(services, mv)
    except NotFoundError as exc:
        return [], exc.message
    out = []
    for name, feature in list(profile.features.items())[:MAX_FEATURES]:
        rows = feature.count + feature.missing
        title = f"{name} in the reference data of version {mv.version} ({rows:,} rows)"
        if isinstance(feature, NumericProfile):
            edges, counts = feature.hist_edges, feature.hist_counts
            items = [
                (f"{charts.number(edges[i])} to {charts.number(edges[i + 1])}", c / rows)
                for i, c in enumerate(counts)
            ]
        else:
            assert isinstance(feature, CategoricalProfile)
            ranked = sorted(feature.frequencies.items(), key=lambda kv: (-kv[1], kv[0]))
            items = [(label, c / rows) for label, c in ranked[:12]]
            if feature.other_count or len(ranked) > 12:
                other = feature.other_count + sum(c for _, c in ranked[12:])
                items.append(("(other)", other / rows))
        if feature.missing:
            items.append(("missing", feature.missing / rows))
        out.append(charts.column_chart(title, items, spec=".1%", label="share of rows"))
    return out, None


def _importance(mv: ModelVersion) -> tuple[Markup | None, str | None]:
    importance = mv.manifest.get("importance")
    if not importance or not importance.get("features"):
        return None, (
            f"version {mv.version} has no global importance (registered without reference "
            "data, or its model has no explainer)"
        )
    features = list(importance["features"].items())[:MAX_FEATURES]
    how = "exact" if importance.get("exact") else "estimated"
    title = (
        f"Global importance of version {mv.version}: mean |{importance.get('method')} "
        f"attribution| ({how}) of the {importance.get('output')} over "
        f"{importance.get('rows')} reference rows"
    )
    return charts.bar_chart(title, [(str(k), float(v)) for k, v in features]), None


# -- monitoring -----------------------------------------------------------------------------


def _label(row: MonitorWindowRow) -> str:
    text = f"{row.window_end:%m-%d %H:%M} v{row.version}"
    return text + " (partial)" if row.partial else text


def _newest_windows(services: MonitorServices, name: str, limit: int) -> list[MonitorWindowRow]:
    """The newest ``limit`` windows of the configured setting (else of the newest window's
    setting), oldest first."""
    setting = services.monitor_settings.window
    with services.database.session() as session:

        def newest(window: str | None) -> list[MonitorWindowRow]:
            query = select(MonitorWindowRow).where(MonitorWindowRow.model == name)
            if window is not None:
                query = query.where(MonitorWindowRow.window == window)
            query = query.order_by(MonitorWindowRow.window_end.desc(), MonitorWindowRow.id.desc())
            return list(session.scalars(query.limit(limit)))

        rows = newest(setting)
        if not rows:
            last = newest(None)[:1]
            rows = newest(last[0].window) if last else []
        session.expunge_all()
    return rows[::-1]


def _points(services: MonitorServices, ids: list[int]) -> dict[tuple[int, str, str], float]:
    if not ids:
        return {}
    query = select(
        MonitorPointRow.window_id,
        MonitorPointRow.metric,
        MonitorPointRow.feature,
        MonitorPointRow.value,
    ).where(MonitorPointRow.window_id.in_(ids))
    with services.database.session() as session:
        return {(w, m, f or ""): v for w, m, f, v in session.execute(query)}


def _series(
    ids: list[int], values: Mapping[tuple[int, str, str], float], metric: str, feature: str = ""
) -> list[float | None]:
    return [values.get((i, metric, feature)) for i in ids]


def _chart_of(
    title: str, labels: list[str], series: list[charts.Series], spec: str = ".4g"
) -> Markup | None:
    kept = [s for s in series if any(v is not None for v in s.values)]
    return charts.line_chart(title, labels, kept, spec=spec) if kept else None


def report_command(name: str, version: int, start: datetime, end: datetime) -> str:
    """The ``vigil report`` command writing the HTML report of one window.

    >>> from datetime import UTC
    >>> report_command("churn", 2, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC))
    'vigil report models:/churn/2 --version 2 --since 2025-01-01T00:00:00+00:00 --until 2025-01-01T01:00:00+00:00 --html churn-2-20250101T0000.html'
    """
    return (
        f"vigil report models:/{name}/{version} --version {version} "
        f"--since {start.isoformat()} --until {end.isoformat()} "
        f"--html {name}-{version}-{start:%Y%m%dT%H%M}.html"
    )


def _fairness(
    labels: list[str], ids: list[int], values: Mapping[tuple[int, str, str], float]
) -> list[Markup]:
    """``fairness.<attribute>.<metric>`` as lines over windows, one chart per attribute;
    ``fairness.<attribute>.<group>.<metric>`` as lines per group, one chart per attribute
    and metric."""
    names = sorted({m for _, m, f in values if m.startswith(FAIRNESS_PREFIX) and not f})
    overall: dict[str, list[charts.Series]] = {}
    grouped: dict[tuple[str, str], list[charts.Series]] = {}
    for metric in names:
        parts = metric.split(".")
        if len(parts) < 3:
            continue
        series = _series(ids, values, metric)
        if len(parts) == 3:
            overall.setdefault(parts[1], []).append(charts.Series(parts[2], series))
        else:
            group = ".".join(parts[2:-1])
            grouped.setdefault((parts[1], parts[-1]), []).append(charts.Series(group, series))
    out = []
    for attribute, lines in overall.items():
        out.append(charts.line_chart(f"Fairness across {attribute}", labels, lines[:8]))
    for (attribute, metric), lines in grouped.items():
        out.append(charts.line_chart(f"{metric} by {attribute}", labels, lines[:8]))
    return out


def _monitoring(services: MonitorServices, name: str, limit: int) -> Monitoring:
    rows = _newest_windows(services, name, limit)
    ids = [r.id for r in rows]
    labels = [_label(r) for r in rows]
    values = _points(services, ids)
    features = sorted({f for _, m, f in values if f and m.startswith("drift.")})[:MAX_FEATURES]
    cells = {}
    for j, row in enumerate(rows):
        for feature in features:
            drifted = values.get((row.id, "drift.drifted", feature))
            if drifted is None:
                continue
            query = urlencode({"feature": feature, "window": row.id})
            cells[(feature, j)] = charts.Cell(
                p_value=values.get((row.id, "drift.p_value", feature)),
                statistic=values.get((row.id, "drift.statistic", feature)),
                drifted=bool(drifted),
                href=f"?{query}#drift-detail",
            )
    heatmap = (
        charts.heatmap(f"Drift of {name}'s features per window", features, labels, cells)
        if features and rows
        else None
    )
    latest = rows[-1].id if rows else None
    drifted_latest = [f for f in features if values.get((latest or -1, "drift.drifted", f)) == 1]
    drift_share = _chart_of(
        "Share of features drifted",
        labels,
        [charts.Series("drift share", _series(ids, values, "drift.share"))],
        ".0%",
    )
    quality_features = sorted({f for _, m, f in values if f and m.startswith("quality.")})
    quality_lines = [
        charts.Series("schema violations", _series(ids, values, "quality.schema_violation_rate")),
        charts.Series("error rate", _series(ids, values, "traffic.error_rate")),
    ]
    for metric in QUALITY_METRICS:
        worst = [
            max(
                (v for f in quality_features if (v := values.get((i, metric, f))) is not None),
                default=None,
            )
            for i in ids
        ]
        quality_lines.append(charts.Series(metric.removeprefix("quality.") + " (worst)", worst))
    quality = _chart_of("Data quality per window", labels, quality_lines, ".2%")
    quality_latest = [
        (
            f,
            {
                m.removeprefix("quality."): v
                for m in QUALITY_METRICS
                if (v := values.get((latest or -1, m, f))) is not None
            },
        )
        for f in quality_features[:MAX_FEATURES]
    ]
    performance = _chart_of(
        "Performance on labelled predictions",
        labels,
        [
            charts.Series(m, _series(ids, values, f"performance.{m}"))
            for m in sorted(PERFORMANCE_MEASURES)
        ],
    )
    estimated = _chart_of(
        "Performance estimated before labels (95 % interval)",
        labels,
        [
            charts.Series(
                m,
                _series(ids, values, f"estimated.{m}"),
                _series(ids, values, f"estimated.{m}.low"),
                _series(ids, values, f"estimated.{m}.high"),
            )
            for m in sorted(ESTIMATED_MEASURES)
        ],
    )
    return Monitoring(
        setting=rows[0].window if rows else None,
        windows=labels,
        window_ids=ids,
        features=features,
        heatmap=heatmap,
        drifted_latest=drifted_latest,
        drift_share=drift_share,
        quality=quality,
        quality_latest=quality_latest,
        performance=performance,
        estimated=estimated,
        fairness=_fairness(labels, ids, values),
        values=values,
        reports=[
            (_label(r), report_command(name, r.version, r.window_start, _until(r)))
            for r in reversed(rows)
        ],
    )


def _until(row: MonitorWindowRow) -> datetime:
    """The exclusive end a report of this window needs: a count window ends at its last
    row's time, a time window just before its end."""
    return row.window_end + timedelta(microseconds=1) if row.window.isdigit() else row.window_end


def _drill(services: MonitorServices, name: str, feature: str, window: str) -> DriftDetail:
    from vigil.report.capture_report import capture_report  # PyArrow: only for a drill-down

    if not window.isdigit() or len(window) > 18:
        raise ValidationError(
            f"window must be a window id (a positive integer), got {window[:40]!r}",
            detail={"field": "window", "got": window[:40]},
        )
    window_id = int(window)
    with services.database.session() as session:
        row = session.get(MonitorWindowRow, window_id)
        if row is None or row.model != name:
            raise NotFoundError(
                f"model {name!r} has no monitoring window {window_id}",
                detail={"model": name, "window": window_id},
            )
        session.expunge(row)
    uri = f"models:/{name}/{row.version}"
    report = capture_report(
        services, uri, since=row.window_start, until=_until(row), version=row.version
    )
    if feature not in report.reference_summary:
        why = report.not_compared.get(feature, "not a feature of this version's baseline profile")
        raise NotFoundError(
            f"no distributions of {feature[:80]!r} in window {window_id}: {why}",
            detail={"feature": feature[:80], "window": window_id},
        )
    values = _points(services, [window_id])

    def stored(metric: str) -> float | None:
        return values.get((window_id, metric, feature))

    drifted = stored("drift.drifted")
    return DriftDetail(
        feature=feature,
        window_id=window_id,
        window=_label(row),
        version=row.version,
        chart=charts.distribution_chart(
            feature, report.reference_summary[feature], report.current_summary[feature]
        ),
        p_value=stored("drift.p_value"),
        statistic=stored("drift.statistic"),
        effect_size=stored("drift.effect_size"),
        drifted=None if drifted is None else bool(drifted),
        report_command=report_command(name, row.version, row.window_start, _until(row)),
    )


def model_view(
    services: MonitorServices,
    name: str,
    *,
    feature: str | None = None,
    window: str | None = None,
    versions: int = VERSIONS,
    windows: int = WINDOWS,
    history: int = HISTORY,
) -> ModelView:
    """The model page of ``name`` (raises :class:`~vigil.errors.NotFoundError` for an unknown
    model); with ``feature`` and ``window`` (the page's query parameters, as given), also
    the drill-down to that feature's two distributions in that window."""
    check_model_name(name)
    registry = services.registry
    model = registry.get_model(name)
    listed = sorted(registry.list_versions(name), key=lambda v: -v.version)
    shown = listed[:versions]
    aliases = [
        AliasView(alias, version, registry.alias_history(name, alias)[:history])
        for alias, version in sorted(model.aliases.items())
    ]
    current_number = model.aliases.get("production", model.latest_version)
    current = next((v for v in listed if v.version == current_number), None)
    profile: list[Markup] = []
    profile_note = importance_note = None
    importance = None
    if current is not None:
        try:
            profile, profile_note = _profile_charts(services, current)
        except VigilError as exc:  # an artifact gone from the store: say so, show the rest
            profile_note = exc.message
        importance, importance_note = _importance(current)
    monitoring = _monitoring(services, name, windows)
    drill = None
    if feature is not None or window is not None:
        if not feature or not window:
            raise ValidationError(
                "a drill-down needs both feature and window",
                detail={"field": "feature" if not feature else "window"},
            )
        drill = _drill(services, name, feature, window)
    return ModelView(
        name=model.name,
        description=model.description,
        latest_version=model.latest_version,
        version_count=model.version_count,
        current_version=current.version if current is not None else None,
        versions=[_version(v) for v in shown],
        aliases=aliases,
        profile=profile,
        profile_note=profile_note,
        importance=importance,
        importance_note=importance_note,
        monitoring=monitoring,
        drill=drill,
    )


# -- actions --------------------------------------------------------------------------------


def _form(form: Mapping[str, str], allowed: Sequence[str], action: str) -> None:
    unknown = unknown_fields(dict(form), ("confirm", *allowed))
    if unknown:
        raise ValidationError(
            f"unknown field(s) {', '.join(map(repr, unknown))} for {action}; it takes "
            + ", ".join(allowed),
            detail={"field": unknown[0], "expected": list(allowed), "got": unknown},
        )
    if form.get("confirm") != "yes":
        raise ValidationError(
            f"tick the confirmation box to {action}",
            detail={"field": "confirm", "expected": "yes", "got": str(form.get("confirm"))[:40]},
        )


def _version_field(form: Mapping[str, str]) -> int:
    text = (form.get("version") or "").strip()
    if not text.isdigit() or not 1 <= int(text[:12]) <= MAX_VERSION:
        raise ValidationError(
            f"version must be a version number (a positive integer), got {text[:40]!r}",
            detail={"field": "version", "expected": "integer >= 1", "got": text[:40]},
        )
    return int(text)


def _reason(form: Mapping[str, str]) -> str | None:
    reason = (form.get("reason") or "").strip()
    if len(reason) > MAX_REASON:
        raise ValidationError(
            f"'reason' must be text of at most {MAX_REASON} characters",
            detail={"field": "reason", "expected": "string", "got": f"{len(reason)} characters"},
        )
    return reason or None


def promote(services: MonitorServices, name: str, form: Mapping[str, str], actor: str) -> str:
    """Point an alias (``production`` unless named) at a version (the admin API's ``PUT
    .../aliases/{alias}``)."""
    check_model_name(name)
    _form(form, ("alias", "version", "reason"), "promote")
    alias = check_alias((form.get("alias") or "production").strip())
    version = _version_field(form)
    mv = services.registry.acting_as(actor).set_alias(name, alias, version, reason=_reason(form))
    return f"{name}@{alias} now points at version {mv.version}"


def rollback(services: MonitorServices, name: str, form: Mapping[str, str], actor: str) -> str:
    """Move an alias back to where it pointed before its last move (the admin API's
    ``POST .../aliases/{alias}/rollback``)."""
    check_model_name(name)
    _form(form, ("alias", "reason"), "roll back")
    alias = check_alias((form.get("alias") or "production").strip())
    before, after = services.registry.acting_as(actor).rollback(name, alias, reason=_reason(form))
    return f"{name}@{alias} rolled back from version {before} to version {after}"


def archive(services: MonitorServices, name: str, form: Mapping[str, str], actor: str) -> str:
    """Archive a version (the admin API's ``POST .../versions/{version}/archive``)."""
    check_model_name(name)
    _form(form, ("version", "reason"), "archive")
    version = _version_field(form)
    services.registry.acting_as(actor).archive_version(name, version, reason=_reason(form))
    return f"{name} version {version} archived"


def unarchive(services: MonitorServices, name: str, form: Mapping[str, str], actor: str) -> str:
    """Put an archived version back in service (``POST .../versions/{version}/unarchive``)."""
    check_model_name(name)
    _form(form, ("version", "reason"), "unarchive")
    version = _version_field(form)
    services.registry.acting_as(actor).unarchive_version(name, version, reason=_reason(form))
    return f"{name} version {version} back in service"


ACTIONS: dict[str, Action] = {
    "promote": promote,
    "rollback": rollback,
    "archive": archive,
    "unarchive": unarchive,
}
