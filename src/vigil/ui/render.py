"""Pages from Jinja2 templates (autoescaped), with what every page is given.

Every template is rendered with its own variables and ``chrome`` (who is looking and what
they may do), ``csrf`` (the token each POST form carries as the hidden field ``csrf``),
``prefix`` (``/ui``) and ``flash`` (a one-line message from the last action, or ``None``).
Rendering runs on the console's worker thread, never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

PREFIX = "/ui"


@dataclass(frozen=True, slots=True)
class Chrome:
    """Who is looking at a page: ``role`` (``None`` with authentication off), whether they
    may act, how the audit log names them, and whether authentication is off."""

    role: str | None
    can_act: bool
    actor: str
    auth_off: bool


@cache
def environment() -> jinja2.Environment:
    """The templates of :mod:`vigil.ui` (loaded once, compiled on first use)."""
    import jinja2  # on the first page: a server nobody opens the console of never loads it

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vigil.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = number
    env.filters["percent"] = percent
    env.filters["when"] = when
    return env


def render(
    template: str, *, chrome: Chrome, csrf: str, flash: str | None = None, **own: Any
) -> bytes:
    """``template`` rendered with the common variables and ``own``, as UTF-8."""
    page = environment().get_template(template)
    text = page.render(chrome=chrome, csrf=csrf, prefix=PREFIX, flash=flash, **own)
    return text.encode("utf-8")


def number(value: float | int | None, digits: int = 3) -> str:
    """A figure for a table: ``—`` when unknown, else ``digits`` significant digits.

    >>> number(None), number(0.123456), number(1234.5), number(7)
    ('—', '0.123', '1.23e+03', '7')
    """
    if value is None:
        return "—"
    return f"{value:.{digits}g}"


def percent(value: float | None) -> str:
    """A share as a percentage, ``—`` when unknown.

    >>> percent(0.0123), percent(None)
    ('1.2 %', '—')
    """
    return "—" if value is None else f"{100 * value:.1f} %"


def when(value: Any) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS UTC`` (``—`` when none)."""
    if value is None:
        return "—"
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"
