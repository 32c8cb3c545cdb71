"""Monitoring windows: the inference log cut into pieces, per model version and route.

A window is a span of time (``15m``, ``1h``, ``1d``), a number of predicted rows
(``500``), or whichever of the two comes first (``1h or 1000``, the default). Windows are
formed separately for every ``(model, version, route)``.

* **Time windows** are aligned on the epoch (a ``1h`` window starts on the hour), include
  their start and exclude their end, and are *complete* once ``now`` has passed their end
  by ``grace`` (time for slow requests and other workers' records to land).
* **Count windows** hold ``N`` successful rows, in log order ``(time, request_id, row)``,
  and never split a request (a batch crossing the boundary stays whole, so a window may
  hold a few more than ``N`` rows). Both ends are inclusive and the window remembers the
  request ids at its ends, so the next run continues exactly after it. The rows after the
  last full window form the current, partial window.
* **Time-or-count windows** (``1h or 1000``) are count windows that never cross the
  boundary of a time window: a window closes as soon as it holds ``N`` rows, or when its
  time window ends (plus ``grace``), whichever comes first; it then reaches up to the last
  record of that time window. A quiet service gets one window an hour; a burst of traffic
  right after a deployment gets its first verdict after ``N`` rows, not an hour later.

Rejected requests (4xx/5xx records) go to the window their time falls in, so they count
in its error rate and schema violations. Labels never move a row: feedback is joined on
``(request_id, row)`` to the rows of the window of the *prediction*, however late it came.

>>> from datetime import datetime, UTC
>>> parse_window("15m"), parse_window("500")
(WindowSpec(text='15m', seconds=900.0, size=None), WindowSpec(text='500', seconds=None, size=500))
>>> parse_window("1000 or 1h")
WindowSpec(text='1h or 1000', seconds=3600.0, size=1000)
>>> parse_window("1h").bounds(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
(datetime.datetime(2025, 1, 2, 3, 0, tzinfo=datetime.timezone.utc), datetime.datetime(2025, 1, 2, 4, 0, tzinfo=datetime.timezone.utc))
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.durations import is_duration, parse_duration
from vigil.errors import InvalidParameterError

if TYPE_CHECKING:
    import pandas as pd  # the server's start imports this module (its settings), not pandas

_COUNT = re.compile(r"^\s*(\d+)\s*$")
_EITHER = re.compile(r"\s+or\s+", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class WindowSpec:
    """How the log is cut: ``seconds`` for time windows or ``size`` rows for count windows."""

    text: str
    seconds: float | None = None
    size: int | None = None

    @property
    def is_time(self) -> bool:
        """A pure time window (a time-or-count window is cut like a count window)."""
        return self.seconds is not None and self.size is None

    def bounds(self, at: datetime) -> tuple[datetime, datetime]:
        """The time window holding ``at``: ``[start, end)`` aligned on the epoch."""
        assert self.seconds is not None, "count windows have no fixed bounds"
        step = self.seconds
        index = (at - _EPOCH).total_seconds() // step
        start = _EPOCH + timedelta(seconds=index * step)
        return start, start + timedelta(seconds=step)


def parse_window(text: str | int) -> WindowSpec:
    """A window from its text: a duration (``15m``, ``1h``), a row count (``500``), or both
    joined by ``or`` (``1h or 1000``: whichever comes first)."""
    raw = str(text).strip()
    parts = _EITHER.split(raw)
    if len(parts) == 2:
        specs = [parse_window(part) for part in parts if part.strip()]
        times = [s for s in specs if s.is_time]
        counts = [s for s in specs if s.size is not None]
        if len(times) != 1 or len(counts) != 1:
            raise InvalidParameterError(
                f"invalid window {raw[:40]!r}: join one duration and one number of "
                "predictions with 'or', e.g. '1h or 1000'",
                detail={"field": "window", "value": raw[:40]},
            )
        (time,), (count,) = times, counts
        return WindowSpec(
            text=f"{time.text} or {count.size}", seconds=time.seconds, size=count.size
        )
    if _COUNT.fullmatch(raw):
        size = int(raw)
        if size < 1:
            raise InvalidParameterError(
                f"a count window needs at least 1 row, got {raw!r}", detail={"field": "window"}
            )
        return WindowSpec(text=str(size), size=size)
    if not is_duration(raw):
        raise InvalidParameterError(
            f"invalid window {raw[:40]!r}: give a duration such as 15m, 1h or 1d, "
            "or a number of predictions such as 500",
            detail={"field": "window", "value": raw[:40]},
        )
    seconds = parse_duration(raw, what="window").total_seconds()
    if seconds < 1:
        raise InvalidParameterError(
            f"a time window must last at least 1s, got {raw!r}", detail={"field": "window"}
        )
    return WindowSpec(text=raw, seconds=seconds)


@dataclass(frozen=True)
class SeriesKey:
    """What a window is about: one model version on one route."""

    model: str
    version: int
    route: str


@dataclass
class Window:
    """The log rows of one window of one :class:`SeriesKey`.

    ``rows`` are the successful predicted rows (status < 400); ``rejected`` the records of
    requests answered with an error. ``start_request_id``/``end_request_id`` pin the exact
    ends of a count window (``None`` for time windows).
    """

    key: SeriesKey
    spec: WindowSpec
    start: datetime
    end: datetime
    rows: pd.DataFrame
    rejected: pd.DataFrame
    complete: bool
    start_request_id: str | None = None
    end_request_id: str | None = None

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def n_requests(self) -> int:
        """Distinct requests: those answered (any rows) plus those rejected."""
        ids = set(self.rows["request_id"].tolist()) | set(self.rejected["request_id"].tolist())
        return len(ids)


Cursor = tuple[datetime, str]
"""Where a series' last complete count window ended: its last row's time and request id."""


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["time", "request_id", "row"], kind="stable").reset_index(drop=True)


def _split_status(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pandas as pd  # the server's start imports this module (its settings), not pandas

    status = pd.to_numeric(frame["status"], errors="coerce").fillna(200)
    ok = (status < 400).to_numpy()
    return frame[ok], frame[~ok]


def _time_windows(
    key: SeriesKey, frame: pd.DataFrame, spec: WindowSpec, now: datetime, grace: timedelta
) -> list[Window]:
    import pandas as pd  # the server's start imports this module (its settings), not pandas

    assert spec.seconds is not None
    seconds = (frame["time"] - pd.Timestamp(_EPOCH)).dt.total_seconds().to_numpy()
    index = np.floor_divide(seconds, spec.seconds)
    windows = []
    for i in np.unique(index):
        start = _EPOCH + timedelta(seconds=float(i) * spec.seconds)
        end = start + timedelta(seconds=spec.seconds)
        ok, bad = _split_status(frame[index == i])
        windows.append(
            Window(key, spec, start, end, ok, bad, complete=end + grace <= now),
        )
    return windows


def _after(frame: pd.DataFrame, cursor: Cursor | None) -> pd.DataFrame:
    import pandas as pd  # the server's start imports this module (its settings), not pandas

    if cursor is None:
        return frame
    at, request_id = cursor
    stamp = pd.Timestamp(at)
    later = (frame["time"] > stamp) | (
        (frame["time"] == stamp) & (frame["request_id"] > request_id)
    )
    return frame[later.to_numpy()]


def _count_windows(
    key: SeriesKey, frame: pd.DataFrame, spec: WindowSpec, cursor: Cursor | None
) -> list[Window]:
    assert spec.size is not None
    frame = _after(frame, cursor)
    ok, bad = _split_status(frame)
    windows: list[Window] = []
    if ok.empty:
        if not bad.empty:
            # Only rejections since the last window: they wait for the next window's rows.
            first, last = bad.iloc[0], bad.iloc[-1]
            windows.append(
                Window(
                    key,
                    spec,
                    first["time"].to_pydatetime(),
                    last["time"].to_pydatetime(),
                    ok,
                    bad,
                    complete=False,
                    start_request_id=str(first["request_id"]),
                    end_request_id=str(last["request_id"]),
                )
            )
        return windows
    ids = ok["request_id"].to_numpy()
    # A request's rows are contiguous in log order; a cut may only fall between requests.
    new_request = np.ones(len(ids), dtype=bool)
    new_request[1:] = ids[1:] != ids[:-1]
    starts = np.flatnonzero(new_request)
    cuts = [0]
    for s in starts[1:]:
        if s - cuts[-1] >= spec.size:
            cuts.append(int(s))
    cuts.append(len(ids))
    bad_keys = list(zip(bad["time"], bad["request_id"], strict=True))
    previous_end: tuple[Any, str] | None = None
    for lo, hi in itertools.pairwise(cuts):
        part = ok.iloc[lo:hi]
        first, last = part.iloc[0], part.iloc[-1]
        complete = hi - lo >= spec.size
        # Rejections after the previous window's last request, up to this one's last (the
        # last, partial window also takes every later one).
        end_key = (last["time"], str(last["request_id"])) if complete else None
        take = np.asarray(
            [
                (previous_end is None or k > previous_end) and (end_key is None or k <= end_key)
                for k in bad_keys
            ],
            dtype=bool,
        )
        previous_end = end_key
        windows.append(
            Window(
                key,
                spec,
                first["time"].to_pydatetime(),
                last["time"].to_pydatetime(),
                part,
                bad[take] if bad_keys else bad,
                complete=complete,
                start_request_id=str(first["request_id"]),
                end_request_id=str(last["request_id"]),
            )
        )
    return windows


def _time_or_count_windows(
    key: SeriesKey,
    frame: pd.DataFrame,
    spec: WindowSpec,
    cursor: Cursor | None,
    now: datetime,
    grace: timedelta,
) -> list[Window]:
    import pandas as pd  # the server's start imports this module (its settings), not pandas

    assert spec.seconds is not None and spec.size is not None
    frame = _after(frame, cursor)
    if frame.empty:
        return []
    seconds = (frame["time"] - pd.Timestamp(_EPOCH)).dt.total_seconds().to_numpy()
    index = np.floor_divide(seconds, spec.seconds)
    windows: list[Window] = []
    still_open = False
    for i in np.unique(index):
        bucket = frame[index == i]
        parts = _count_windows(key, bucket, spec, None)
        end = _EPOCH + timedelta(seconds=(float(i) + 1) * spec.seconds)
        if not still_open and end + grace <= now:
            # The time window is over: its last window closes, up to its last record
            # (a rejection after the last answered row included).
            last_record = bucket.iloc[-1]
            last = parts[-1]
            last.complete = True
            last.end = last_record["time"].to_pydatetime()
            last.end_request_id = str(last_record["request_id"])
        for part in parts:
            # Once a window is open, the later ones wait: a later complete window would
            # move the cursor past rows not measured yet.
            part.complete = part.complete and not still_open
            still_open = still_open or not part.complete
        windows.extend(parts)
    return windows


def split_windows(
    log: pd.DataFrame,
    spec: WindowSpec,
    *,
    now: datetime,
    grace: timedelta = timedelta(0),
    cursors: Mapping[SeriesKey, Cursor] | None = None,
) -> list[Window]:
    """Cut captured rows (as :func:`~vigil.capture.read_capture` returns them) into windows.

    Rows without a model version (requests rejected before a model was resolved) belong to
    no series and are left out. ``cursors`` gives, per series, the end of its last complete
    count (or time-or-count) window: windows continue after it (ignored for time windows).

    >>> from datetime import datetime, UTC
    >>> import pandas as pd
    >>> t0 = pd.Timestamp("2025-01-01T00:00:00Z")
    >>> log = pd.DataFrame({"request_id": [f"r{i}" for i in range(5)], "row": 0,
    ...     "time": [t0 + pd.Timedelta(minutes=m) for m in (1, 2, 61, 62, 63)],
    ...     "model": "m", "version": 1, "route": "native", "status": [200, 422, 200, 200, 200]})
    >>> now = datetime(2025, 1, 1, 1, 30, tzinfo=UTC)
    >>> [(w.start.hour, w.n_rows, len(w.rejected), w.complete)
    ...  for w in split_windows(log, parse_window("1h"), now=now)]
    [(0, 1, 1, True), (1, 3, 0, False)]
    >>> [(w.n_rows, w.end_request_id, w.complete) for w in split_windows(log, parse_window("2"), now=now)]
    [(2, 'r2', True), (2, 'r4', True)]
    """
    import pandas as pd  # the server's start imports this module (its settings), not pandas

    if log.empty:
        return []
    frame = log[log["version"].notna()].copy()
    if frame.empty:
        return []
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["version"] = frame["version"].astype("int64")
    frame["route"] = frame["route"].fillna("").astype(str) if "route" in frame else ""
    frame["request_id"] = frame["request_id"].astype(str)
    windows: list[Window] = []
    for (model, version, route), group in frame.groupby(
        ["model", "version", "route"], sort=True, dropna=False
    ):
        key = SeriesKey(str(model), int(str(version)), str(route))
        ordered = _ordered(group)
        cursor = (cursors or {}).get(key)
        if spec.is_time:
            windows.extend(_time_windows(key, ordered, spec, now, grace))
        elif spec.seconds is not None:
            windows.extend(_time_or_count_windows(key, ordered, spec, cursor, now, grace))
        else:
            windows.extend(_count_windows(key, ordered, spec, cursor))
    return windows


def as_utc(value: datetime | str | Any) -> datetime:
    """A timezone-aware UTC datetime from a datetime, pandas Timestamp or ISO text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp (checked without importing pandas)
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise InvalidParameterError(f"expected a date and time, got {value!r}")
    if value.tzinfo is None:
        raise InvalidParameterError(
            f"{value.isoformat()} has no time zone; add one, e.g. {value.isoformat()}+00:00"
        )
    return value.astimezone(UTC)
