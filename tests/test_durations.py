"""One grammar for every duration and point in time (``--since``, ``--until``, ``--window``,
lookbacks): what it takes, and that every refusal is one clear error, however large."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.durations import parse_duration, parse_time
from vigil.errors import InvalidParameterError
from vigil.monitor.windows import parse_window

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1.5h", timedelta(minutes=90)),
        (" 7 d ", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("36500d", timedelta(days=36500)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_time(text, now=NOW) == NOW - expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01", datetime(2025, 3, 1, tzinfo=UTC)),  # no zone: UTC
        ("2025-03-01T08:00:00+02:00", datetime(2025, 3, 1, 6, tzinfo=UTC)),
        ("2025-03-01T08:00:00Z", datetime(2025, 3, 1, 8, tzinfo=UTC)),
    ],
)
def test_iso_times(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("yesterday", "write a duration back from now"),
        ("0s", "a duration must be positive"),
        ("36501d", "at most 36500d"),
        ("99999999999999d", "at most 36500d"),
        ("9" * 400 + "w", "at most 36500d"),
        ("0001-01-01T00:00:00+05:00", "write a duration back from now"),  # before year 1 in UTC
        ("-3h", "write a duration back from now"),
    ],
)
def test_refusals_are_one_error(text: str, reason: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_time(text, now=NOW, what="--since")
    assert caught.value.message.startswith(f"invalid --since {text[:40]!r}: ")
    assert reason in caught.value.message


def test_windows_and_lookbacks_share_the_grammar() -> None:
    assert parse_window("1.5h").seconds == 5400
    with pytest.raises(InvalidParameterError, match="at most 36500d"):
        parse_window("99999999999999d")
    with pytest.raises(InvalidParameterError, match="invalid lookback 'ever': write a number"):
        parse_duration("ever", what="lookback")
