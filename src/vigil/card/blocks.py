"""The pieces a model card is made of: sections of plain blocks, for both renderers.

Every text in a block is plain (unescaped); :mod:`vigil.card.html` and
:mod:`vigil.card.markdown` escape it for their format, so the two documents say the same
thing. A :class:`Chart` holds SVG already (drawn by :mod:`vigil.report.svg` or
:mod:`vigil.card.bars`, which escape their labels); Markdown shows the numbers of the
section's tables instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Para:
    """A paragraph; ``muted`` for what vigil could not fill and how to."""

    text: str
    muted: bool = False


@dataclass(frozen=True)
class Facts:
    """Name/value pairs (a definition list; a Markdown bullet list)."""

    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Table:
    """A table of text cells, with an optional caption."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Command:
    """A command to run, shown as code."""

    text: str


@dataclass(frozen=True)
class Chart:
    """An inline SVG chart and its caption (HTML only)."""

    svg: str
    caption: str


Block = Para | Facts | Table | Command | Chart


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    filled: bool = True
    """Whether vigil knew something for it (else it says what is missing and how)."""


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
