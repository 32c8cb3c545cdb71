"""Durations and points in time, written one way wherever vigil takes them.

A duration is a number and a unit: ``90s``, ``15m``, ``1.5h``, ``7d``, ``2w`` (seconds,
minutes, hours, days, weeks). A point in time (``--since``, ``--until``) is such a
duration back from now, or an ISO 8601 date/time, read as UTC when it names no zone.
Every option and setting that takes one (``--since``, ``--until``, ``--window``,
``VIGIL_MONITOR_LOOKBACK``...) goes through this module, so all of them accept the same
text and refuse it with the same one-line :class:`~vigil.errors.InvalidParameterError`,
however large the number.

>>> parse_duration("90m"), parse_duration("1.5h") == parse_duration("90m")
(datetime.timedelta(seconds=5400), True)
>>> now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
>>> parse_time("24h", now=now).isoformat(), parse_time("2025-03-01", now=now).isoformat()
('2025-03-09T12:00:00+00:00', '2025-03-01T00:00:00+00:00')
>>> parse_time("2025-03-01T08:00:00+02:00", now=now).isoformat()
'2025-03-01T06:00:00+00:00'
>>> parse_time("yesterday", now=now, what="--since")
Traceback (most recent call last):
...
vigil.errors.InvalidParameterError: invalid --since 'yesterday': write a duration back from now (90s, 15m, 24h, 7d, 2w) or an ISO 8601 date/time (2025-03-01 or 2025-03-01T08:00:00Z)
>>> parse_time("99999999999999d", now=now, what="--since")
Traceback (most recent call last):
...
vigil.errors.InvalidParameterError: invalid --since '99999999999999d': a duration may last at most 36500d (100 years)
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from vigil.errors import InvalidParameterError

__all__ = [
    "DURATION_HELP",
    "MAX_DURATION",
    "TIME_HELP",
    "is_duration",
    "parse_duration",
    "parse_time",
]

DURATION_HELP = "a number and a unit, e.g. 90s, 15m, 1h, 7d or 2w"
"""What a duration looks like, for help texts and messages."""

TIME_HELP = (
    "a duration back from now (90s, 15m, 24h, 7d, 2w) or an ISO 8601 date/time "
    "(2025-03-01 or 2025-03-01T08:00:00Z)"
)
"""What a point in time looks like, for help texts and messages."""

MAX_DURATION = timedelta(days=36500)
"""The longest duration taken: a century covers any log, and the dates stay in range."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def _invalid(what: str, text: object, rule: str) -> InvalidParameterError:
    shown = str(text)[:40]
    return InvalidParameterError(
        f"invalid {what} {shown!r}: {rule}", detail={"field": what, "value": shown}
    )


def is_duration(text: str) -> bool:
    """Whether ``text`` is written as a duration (its value is checked by :func:`parse_duration`).

    >>> is_duration("15m"), is_duration("500"), is_duration("2025-03-01")
    (True, False, False)
    """
    return _DURATION.fullmatch(text) is not None


def parse_duration(text: str | float | timedelta, *, what: str = "duration") -> timedelta:
    """A positive duration from its text (``"15m"``), a number of seconds or a timedelta.

    >>> parse_duration("7d"), parse_duration(30)
    (datetime.timedelta(days=7), datetime.timedelta(seconds=30))
    >>> parse_duration("soon", what="lookback")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: invalid lookback 'soon': write a number and a unit, e.g. 90s, 15m, 1h, 7d or 2w
    """
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.fullmatch(str(text))
        if match is None:
            raise _invalid(what, text, f"write {DURATION_HELP}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if math.isnan(seconds) or seconds <= 0:
        raise _invalid(what, text, "a duration must be positive")
    if seconds > MAX_DURATION.total_seconds():
        raise _invalid(what, text, "a duration may last at most 36500d (100 years)")
    return timedelta(seconds=seconds)


def parse_time(text: str, *, now: datetime, what: str = "time") -> datetime:
    """A point in time (UTC): ``now`` minus a duration, or an ISO 8601 date/time."""
    if is_duration(text):
        return (now - parse_duration(text, what=what)).astimezone(UTC)
    try:
        when = datetime.fromisoformat(text.strip())
        return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a zone pushing it past year 9999
        raise _invalid(what, text, f"write {TIME_HELP}") from None
