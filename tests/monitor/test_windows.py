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


@pytest.mark.parametrize("text", ["1h or 1000", "1000 or 1h", " 1h  OR 1000 "])
def test_parse_time_or_count_window(text: str) -> None:
    spec = parse_window(text)
    assert (spec.text, spec.seconds, spec.size, spec.is_time) == ("1h or 1000", 3600.0, 1000, False)


@pytest.mark.parametrize("text", ["1h or 2h", "500 or 600", "1h or", "or 500", "1h or 0"])
def test_bad_time_or_count_windows_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameterError, match="window"):
        parse_window(text)


def test_time_or_count_windows_close_on_whichever_comes_first() -> None:
    """``30m or 3``: three rows close a window at once; the end of its half hour (plus the
    grace period) closes one that stayed short; the open half hour stays partial."""
    log = _log(
        [
            ("a", 0, 1, 1, "native", 200),
            ("a", 1, 1, 1, "native", 200),
            ("b", 0, 2, 1, "native", 200),
            ("c", 0, 3, 1, "native", 200),  # 4th row: a new window
            ("d", 0, 40, 1, "native", 200),  # the next half hour
            ("e", 0, 41, 1, "native", 422),
            ("f", 0, 65, 1, "native", 200),  # the third half hour, still open
        ]
    )
    now = datetime(2025, 1, 1, 1, 10, tzinfo=UTC)
    windows = split_windows(log, parse_window("30m or 3"), now=now, grace=timedelta(minutes=2))
    got = [(w.start.minute, w.end.minute, w.n_rows, len(w.rejected), w.complete) for w in windows]
    assert got == [
        (1, 2, 3, 0, True),
        (3, 3, 1, 0, True),
        (40, 41, 1, 1, True),  # closed by time, up to its last record
        (5, 5, 1, 0, False),
    ]
    # The first window of an open half hour continues where the stored ones ended.
    cursor = {windows[0].key: (windows[2].end, "e")}
    later = split_windows(log, parse_window("30m or 3"), now=now, cursors=cursor)
    assert [(w.start.minute, w.complete) for w in later] == [(5, False)]


def test_a_window_after_an_open_one_stays_open() -> None:
    """Rows of a half hour still in its grace period keep every later window partial, so a
    later complete window never moves the cursor past rows not yet measured."""
    log = _log(
        [("a", 0, 29, 1, "native", 200)] + [(f"b{i}", 0, 30, 1, "native", 200) for i in range(3)]
    )
    now = datetime(2025, 1, 1, 0, 31, tzinfo=UTC)
    windows = split_windows(log, parse_window("30m or 3"), now=now, grace=timedelta(minutes=2))
    assert [(w.n_rows, w.complete) for w in windows] == [(1, False), (3, False)]
