"""Cron schedules of update policies, read by croniter (five fields, UTC).

>>> from datetime import datetime, UTC
>>> next_fire("0 3 * * 1", datetime(2026, 12, 6, 12, 0, tzinfo=UTC)).isoformat()
'2026-12-07T03:00:00+00:00'
"""

from __future__ import annotations

from datetime import UTC, datetime


def check_cron(expression: str) -> None:
    """Raise ``ValueError`` (with the reason) for a schedule croniter cannot read."""
    from croniter import croniter  # only for policies with a schedule

    if not croniter.is_valid(expression):
        raise ValueError(
            f"schedule {expression[:60]!r} is not a valid cron expression "
            "(minute hour day month weekday), e.g. '0 3 * * 1'"
        )


def next_fire(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``expression`` fires (UTC)."""
    from croniter import croniter  # only for policies with a schedule

    fire: datetime = croniter(expression, after.astimezone(UTC)).get_next(datetime)
    return fire.astimezone(UTC)
