"""What the commands share: options defined once, points in time, the composition root.

Reusing one ``typer.Option`` object in several commands gives them the same flags, help
and default; the short flags each mean one thing (see :mod:`vigil.cli`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from vigil.console import console, print_json, shown
from vigil.durations import TIME_HELP

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from vigil.app import Vigil

JSON = typer.Option(False, "--json", help="Print JSON for scripts instead of text.")
"""``--json``: every command that shows or changes something prints it as JSON with it."""

WINDOW = typer.Option(
    None,
    "--window",
    "-w",
    help="Window: a duration (15m, 1h, 1d) or a number of predictions (500); "
    "default: the configured one.",
)


def since_option(default: str | None = None, what: str = "Only what happened since") -> Any:
    """``--since``: a point in time (:func:`vigil.durations.parse_time`)."""
    return typer.Option(default, "--since", "-s", help=f"{what}: {TIME_HELP}.")


def rows_option(
    default: int, flag: str = "--limit", what: str = "Show at most N rows.", most: int | None = None
) -> Any:
    """``-n``: how many rows to show."""
    return typer.Option(default, flag, "-n", min=1, max=most, help=what)


def time_option(text: str | None, option: str, *, now: datetime | None = None) -> datetime | None:
    """The point in time an option names (``None`` when it was not given)."""
    if text is None:
        return None
    from vigil.durations import parse_time

    return parse_time(text, now=now or datetime.now(UTC), what=option)


def services() -> Vigil:
    """The composition root every command works through (imported when a command runs,
    so ``vigil --help`` stays fast)."""
    from vigil.app import default

    return default()


def print_report(
    payload: dict[str, Any], html: Path | None, *, as_json: bool, show: Callable[[], None]
) -> None:
    """A report command's answer: JSON for scripts (with the page written, if any), or the
    tables ``show`` draws and where the HTML page is."""
    if as_json:
        print_json({**payload, "html": str(html) if html is not None else None})
        return
    show()
    if html is not None:
        console.print(f"report written to {shown(html)}", highlight=False, soft_wrap=True)
