"""The monitoring time series in the SQL store: save a computed window, read series back.

Saving a window replaces any earlier row for the same ``(model, version, route, window,
start)`` (a partial window completed, or late labels changed its performance) in one
transaction, so a series never holds two points for one window. Two processes saving the
same window at once leave one of them; the other's insert fails on the unique key and is
ignored, since it computed the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.exc import IntegrityError

from vigil.monitor.measure import WindowResult
from vigil.monitor.tables import MonitorPointRow, MonitorWindowRow
from vigil.monitor.windows import SeriesKey
from vigil.storage.sql import Database, utcnow


@dataclass(frozen=True)
class StoredWindow:
    """A window already in the store (what a run needs to know to skip or redo it)."""

    id: int
    key: SeriesKey
    window: str
    start: datetime
    end: datetime
    start_request_id: str | None
    end_request_id: str | None
    partial: bool
    n_rows: int
    n_requests: int
    n_labelled: int
    computed_at: datetime
    summary: dict[str, Any]


@dataclass(frozen=True)
class SeriesPoint:
    """One stored value with where it belongs."""

    model: str
    version: int
    route: str
    feature: str | None
    metric: str
    window_start: datetime
    window_end: datetime
    partial: bool
    value: float


def _stored(row: MonitorWindowRow) -> StoredWindow:
    return StoredWindow(
        id=row.id,
        key=SeriesKey(row.model, row.version, row.route),
        window=row.window,
        start=row.window_start,
        end=row.window_end,
        start_request_id=row.start_request_id,
        end_request_id=row.end_request_id,
        partial=row.partial,
        n_rows=row.n_rows,
        n_requests=row.n_requests,
        n_labelled=row.n_labelled,
        computed_at=row.computed_at,
        summary=row.summary,
    )


def stored_windows(
    db: Database,
    *,
    window: str,
    model: str | None = None,
    since: datetime | None = None,
) -> list[StoredWindow]:
    """Stored windows cut with ``window``, oldest first (those ending at/after ``since``)."""
    query = select(MonitorWindowRow).where(MonitorWindowRow.window == window)
    if model is not None:
        query = query.where(MonitorWindowRow.model == model)
    if since is not None:
        query = query.where(MonitorWindowRow.window_end >= since)
    query = query.order_by(MonitorWindowRow.window_start, MonitorWindowRow.id)
    with db.session() as session:
        return [_stored(r) for r in session.scalars(query)]


def note_in_summary(db: Database, window_id: int, **values: Any) -> None:
    """Add ``values`` to a stored window's summary, leaving its points as they are (what
    a run learnt about a window that did not need computing again)."""
    with db.session(write=True) as session:
        row = session.get(MonitorWindowRow, window_id)
        if row is not None:
            row.summary = {**row.summary, **values}


def save_window(db: Database, result: WindowResult) -> bool:
    """Store ``result`` and its points, replacing the same window's earlier row.

    Returns ``False`` when another process stored the same window at the same moment.
    """
    key = result.key
    try:
        with db.session(write=True) as session:
            old = session.scalars(
                select(MonitorWindowRow.id).where(
                    MonitorWindowRow.model == key.model,
                    MonitorWindowRow.version == key.version,
                    MonitorWindowRow.route == key.route,
                    MonitorWindowRow.window == result.window,
                    MonitorWindowRow.window_start == result.start,
                )
            ).all()
            if old:
                session.execute(delete(MonitorPointRow).where(MonitorPointRow.window_id.in_(old)))
                session.execute(delete(MonitorWindowRow).where(MonitorWindowRow.id.in_(old)))
            row = MonitorWindowRow(
                model=key.model,
                version=key.version,
                route=key.route,
                window=result.window,
                window_start=result.start,
                window_end=result.end,
                start_request_id=result.start_request_id,
                end_request_id=result.end_request_id,
                partial=result.partial,
                n_rows=result.n_rows,
                n_requests=result.n_requests,
                n_labelled=result.n_labelled,
                computed_at=utcnow(),
                summary=result.summary(),
            )
            session.add(row)
            session.flush()
            if result.points:
                session.execute(
                    insert(MonitorPointRow),
                    [
                        {
                            "window_id": row.id,
                            "model": key.model,
                            "version": key.version,
                            "route": key.route,
                            "window": result.window,
                            "window_start": result.start,
                            "window_end": result.end,
                            "partial": result.partial,
                            "metric": p.metric,
                            "feature": p.feature,
                            "value": p.value,
                        }
                        for p in result.points
                    ],
                )
    except IntegrityError:
        return False
    return True


def _like(pattern: str) -> str:
    """A ``*`` pattern as SQL ``LIKE`` (``\\`` escapes the ``%`` and ``_`` it holds).

    >>> _like("fairness.*.four_fifths")
    'fairness.%.four\\\\_fifths'
    """
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def read_series(
    db: Database,
    *,
    metrics: Iterable[str] | None = None,
    metric_patterns: Iterable[str] = (),
    window: str | None = None,
    model: str | None = None,
    version: int | None = None,
    since: datetime | None = None,
    include_partial: bool = False,
) -> list[SeriesPoint]:
    """Stored points, oldest window first (complete windows only unless told otherwise;
    every window setting unless ``window`` picks one). With ``metrics`` and/or
    ``metric_patterns`` (``*`` for any characters, as in ``fairness.*.tpr``), only the
    metrics they name."""
    query = select(MonitorPointRow)
    patterns = list(metric_patterns)
    if metrics is not None or patterns:
        wanted = [MonitorPointRow.metric.in_(list(metrics or ()))]
        wanted += [MonitorPointRow.metric.like(_like(p), escape="\\") for p in patterns]
        query = query.where(or_(*wanted))
    if window is not None:
        query = query.where(MonitorPointRow.window == window)
    if model is not None:
        query = query.where(MonitorPointRow.model == model)
    if version is not None:
        query = query.where(MonitorPointRow.version == version)
    if since is not None:
        query = query.where(MonitorPointRow.window_end >= since)
    if not include_partial:
        query = query.where(MonitorPointRow.partial.is_(False))
    query = query.order_by(MonitorPointRow.window_end, MonitorPointRow.id)
    with db.session() as session:
        return [
            SeriesPoint(
                model=r.model,
                version=r.version,
                route=r.route,
                feature=r.feature,
                metric=r.metric,
                window_start=r.window_start,
                window_end=r.window_end,
                partial=r.partial,
                value=r.value,
            )
            for r in session.scalars(query)
        ]


def latest_points(points: Iterable[SeriesPoint]) -> dict[tuple[str, int, str, str, str], float]:
    """The newest value of every series: ``(model, version, route, metric, feature or "")``.

    >>> from datetime import datetime, UTC
    >>> t = [datetime(2025, 1, d, tzinfo=UTC) for d in (1, 2)]
    >>> pts = [SeriesPoint("m", 1, "r", None, "drift.share", t[0], t[1], False, v) for v in (0.1, 0.4)]
    >>> latest_points(pts)
    {('m', 1, 'r', 'drift.share', ''): 0.4}
    """
    out: dict[tuple[str, int, str, str, str], float] = {}
    for p in sorted(points, key=lambda p: p.window_end):
        out[(p.model, p.version, p.route, p.metric, p.feature or "")] = p.value
    return out


def latest_fairness(
    db: Database,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    scan: int = 50,
) -> tuple[str, dict[str, Any]] | None:
    """The fairness by group of ``model``'s latest complete window ending in
    ``[since, until]`` that has one (among its last ``scan`` windows): a description of
    the window and its ``summary["fairness"]``."""
    query = select(MonitorWindowRow).where(
        MonitorWindowRow.model == model, MonitorWindowRow.partial.is_(False)
    )
    if since is not None:
        query = query.where(MonitorWindowRow.window_end >= since)
    if until is not None:
        query = query.where(MonitorWindowRow.window_end <= until)
    query = query.order_by(MonitorWindowRow.window_end.desc()).limit(scan)
    with db.session() as session:
        for row in session.scalars(query):
            found = (row.summary or {}).get("fairness")
            if found:
                start = row.window_start.strftime("%Y-%m-%d %H:%M")
                end = row.window_end.strftime("%Y-%m-%d %H:%M UTC")
                where = f"version {row.version}, window {row.window} from {start} to {end}"
                return where, dict(found)
    return None
