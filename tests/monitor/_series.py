"""Synthetic stored windows: series written straight to the store, without a log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from vigil.monitor.measure import WindowResult
from vigil.monitor.points import Point
from vigil.monitor.series import save_window
from vigil.monitor.windows import SeriesKey
from vigil.storage.sql import Database

T0 = datetime(2025, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)

Values = Mapping[str | tuple[str, str], float]


def store_window(
    db: Database,
    index: int,
    values: Values,
    *,
    model: str = "churn",
    version: int = 1,
    route: str = "native_predict",
    window: str = "1h",
) -> None:
    """A computed window ``index`` hours after T0 holding ``values`` (metric or
    (metric, feature) → value)."""
    start = T0 + index * HOUR
    points = [
        Point(k[0], v, k[1]) if isinstance(k, tuple) else Point(k, v) for k, v in values.items()
    ]
    result = WindowResult(
        key=SeriesKey(model, version, route),
        window=window,
        start=start,
        end=start + HOUR,
        partial=False,
        n_rows=10,
        n_requests=10,
        n_rejected=0,
        n_labelled=0,
        points=points,
    )
    assert save_window(db, result)
