"""Time windows on the command line: ``24h`` / ``30m`` / ``7d`` / ``2w`` ago, or ISO 8601.

>>> from datetime import datetime, UTC
>>> now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
>>> parse_when("24h", now=now).isoformat(), parse_when("90m", now=now).isoformat()
('2025-03-09T12:00:00+00:00', '2025-03-10T10:30:00+00:00')
>>> parse_when("2025-03-01", now=now).isoformat()  # a date without a zone is UTC
'2025-03-01T00:00:00+00:00'
>>> parse_when("2025-03-01T08:00:00+02:00", now=now).isoformat()
'2025-03-01T06:00:00+00:00'
>>> parse_when("yesterday", now=now)
Traceback (most recent call last):
...
vigil.errors.InvalidParameterError: --since 'yesterday' is neither a duration (30m, 24h, 7d, 2w) nor an ISO 8601 date/time (2025-03-01 or 2025-03-01T08:00:00Z)
>>> describe_window(parse_when("24h", now=now), None)
'since 2025-03-09 12:00:00 UTC'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from vigil.errors import InvalidParameterError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime, option: str = "--since") -> datetime:
    """A point in time (UTC): ``now`` minus a duration, or an ISO 8601 date/time."""
    match = _DURATION.match(text)
    if match is not None:
        amount, unit = int(match.group(1)), match.group(2)
        return (now - timedelta(**{_UNITS[unit]: amount})).astimezone(UTC)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidParameterError(
            f"{option} {text!r} is neither a duration (30m, 24h, 7d, 2w) nor an ISO 8601 "
            "date/time (2025-03-01 or 2025-03-01T08:00:00Z)",
            detail={"option": option, "value": text},
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _fmt(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_window(since: datetime | None, until: datetime | None) -> str:
    """``since X``, ``until Y``, ``between X and Y`` or ``in the whole log``."""
    if since is not None and until is not None:
        return f"between {_fmt(since)} and {_fmt(until)}"
    if since is not None:
        return f"since {_fmt(since)}"
    if until is not None:
        return f"until {_fmt(until)}"
    return "in the whole log"
