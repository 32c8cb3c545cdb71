"""How a report names the span of the log it read (the span itself is parsed by
:func:`vigil.durations.parse_time`).

>>> from datetime import datetime, UTC
>>> describe_window(datetime(2025, 3, 9, 12, 0, tzinfo=UTC), None)
'since 2025-03-09 12:00:00 UTC'
"""

from __future__ import annotations

from datetime import UTC, datetime


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
