"""Cutting the log into windows: by time, by count, rejected requests, versions, routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from vigil.errors import InvalidParameterError
from vigil.monitor.windows import SeriesKey, parse_duration, parse_window, split_windows

T0 = pd.Timestamp("2025-01-01T00:00:00Z")


def _log(rows: list[tuple[str, int, int, int, str, int]]) -> pd.DataFrame:
    """(request_id, row, minute, version, route, status) → a capture-like frame."""
    return pd.DataFrame(
        {
            "request_id": [r[0] for r in rows],
            "row": [r[1] for r in rows],
            "time": [T0 + pd.Timedelta(minutes=r[2]) for r in rows],
            "model": "m",
            "version": [r[3] for r in rows],
            "route": [r[4] for r in rows],
            "status": [r[5] for r in rows],
        }
    )


@pytest.mark.parametrize(
    ("text", "seconds", "size"),
    [("15m", 900.0, None), ("1h", 3600.0, None), ("2d", 172800.0, None), ("500", None, 500)],
)
def test_parse_window(text: str, seconds: float | None, size: int | None) -> None:
    spec = parse_window(text)
    assert (spec.seconds, spec.size) == (seconds, size)


@pytest.mark.parametrize("text", ["", "0", "1 hour", "0.5s", "-5m", "h"])
def test_bad_windows_are_refused_with_the_fix(text: str) -> None:
    with pytest.raises(InvalidParameterError, match="window"):
        parse_window(text)


def test_parse_duration_refuses_zero() -> None:
    with pytest.raises(InvalidParameterError, match="positive"):
        parse_duration("0s")


def test_time_windows_are_aligned_and_split_by_version_and_route() -> None:
    log = _log(
        [
            ("a", 0, 5, 1, "native", 200),
            ("a", 1, 5, 1, "native", 200),
            ("b", 0, 20, 1, "native", 422),
            ("c", 0, 14, 2, "native", 200),
            ("d", 0, 16, 1, "v2", 200),
            ("e", 0, 31, 1, "native", 200),
        ]
    )
    now = datetime(2025, 1, 1, 0, 40, tzinfo=UTC)
    windows = split_windows(log, parse_window("15m"), now=now)
    got = [
        (w.key, w.start.minute, w.n_rows, len(w.rejected), w.n_requests, w.complete)
        for w in windows
    ]
    assert got == [
        (SeriesKey("m", 1, "native"), 0, 2, 0, 1, True),
        (SeriesKey("m", 1, "native"), 15, 0, 1, 1, True),
        (SeriesKey("m", 1, "native"), 30, 1, 0, 1, False),
        (SeriesKey("m", 1, "v2"), 15, 1, 0, 1, True),
        (SeriesKey("m", 2, "native"), 0, 1, 0, 1, True),
    ]
    late = split_windows(log, parse_window("15m"), now=now, grace=timedelta(minutes=11))
    assert [w.complete for w in late] == [True, False, False, False, True]


def test_rows_without_a_version_belong_to_no_window() -> None:
    log = _log([("a", 0, 1, 1, "native", 200)])
    log = pd.concat([log, log.assign(request_id="x", version=None, status=404)])
    (window,) = split_windows(log, parse_window("1h"), now=datetime(2025, 1, 2, tzinfo=UTC))
    assert window.n_requests == 1


def test_count_windows_keep_requests_whole_and_take_rejections_between() -> None:
    rows = []
    for i in range(7):  # seven requests of 2 rows each, one per minute
        rows += [(f"r{i}", 0, i, 1, "native", 200), (f"r{i}", 1, i, 1, "native", 200)]
    rows.append(("bad", 0, 2, 1, "native", 422))  # between r2 and r3
    windows = split_windows(_log(rows), parse_window("5"), now=datetime(2025, 1, 2, tzinfo=UTC))
    assert [
        (w.start_request_id, w.end_request_id, w.n_rows, len(w.rejected), w.complete)
        for w in windows
    ] == [("r0", "r2", 6, 1, True), ("r3", "r5", 6, 0, True), ("r6", "r6", 2, 0, False)]
    # The next run continues after the cursor of the last complete window.
    cursor = {SeriesKey("m", 1, "native"): (windows[1].end, "r5")}
    (rest,) = split_windows(
        _log(rows), parse_window("5"), now=datetime(2025, 1, 2, tzinfo=UTC), cursors=cursor
    )
    assert (rest.start_request_id, rest.n_rows, rest.complete) == ("r6", 2, False)
