"""How vigil shows things in a terminal (the CLI and the demo): rich tables for people, JSON
for scripts, one-line errors.

User data (reasons, descriptions, tag values, key names, actors, alert text, endpoint
fields) is free text, and a terminal obeys escape sequences and rich obeys markup. Every
piece of it goes through :func:`shown` before it reaches the console: :func:`table` does so
for its title and every cell, :func:`fail` for its message, and commands wrap what they
interpolate into a markup string. A styled cell is a :class:`rich.text.Text` (see
:func:`styled`), never markup built around data. JSON output needs nothing: ``json.dumps``
escapes every control character.

Every long job shows its progress through :func:`progress`: transient rich bars on stderr,
so stdout keeps only the result (a table, or JSON a script can parse).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

if TYPE_CHECKING:
    import rich.progress

PIPE_WIDTH = 10_000
"""Columns of a console writing to a pipe or a file: wide enough that no row wraps."""


def _width(stream: Any) -> int | None:
    """A terminal's own width (or ``COLUMNS``); no wrapping at all for a pipe or a file,
    where rich would otherwise fold every table at 80 columns mid-identifier."""
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return PIPE_WIDTH


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


def _visible(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 and C1 controls and DEL drive terminals; the bidirectional overrides and isolates and
# the line and paragraph separators reorder or break what is displayed around them.
_INVISIBLE = {
    code: _visible(code)
    for code in [
        *range(0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0x2028,
        0x2029,
    ]
}
_INVISIBLE.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})


def shown(value: object) -> str:
    """``value`` as text that shows itself: control characters written as escapes
    (``\\x1b``), rich markup escaped. Use it for any user data put into a markup string.

    >>> shown("[bold]hi[/]\\x1b[2J"), shown(None)
    ('\\\\[bold]hi\\\\[/]\\\\x1b[2J', '')
    """
    if value is None:
        return ""
    return escape(str(value).translate(_INVISIBLE))


def styled(value: object, style: str) -> Text:
    """A table cell or printable piece with ``style`` around user data (no markup)."""
    return Text(str(value).translate(_INVISIBLE), style=style)


def as_dict(obj: Any) -> dict[str, Any]:
    """A plain dict of a dataclass or pydantic object (JSON-ready after :func:`_default`)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        result = dump(mode="json")
        assert isinstance(result, dict)
        return result
    if isinstance(obj, dict):
        return obj
    raise TypeError(f"cannot show {type(obj).__name__}")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_default, indent=2, sort_keys=True) + "\n")


def when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value or "")


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table; the title and every cell are shown as text (:func:`shown`), except
    :class:`~rich.text.Text` cells, which keep their style (:func:`styled`)."""
    from rich.table import Table  # only when drawn: `vigil --help` stays fast

    t = Table(title=shown(title), title_justify="left", header_style="bold")
    for col in columns:
        t.add_column(shown(col), overflow="fold")
    for row in rows:
        t.add_row(*(v if isinstance(v, Text) else shown(v) for v in row))
    console.print(t)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` on stderr (one line, no traceback) and exit; the message is
    shown as text, since it may quote what the user typed."""
    err_console.print(f"[bold red]error:[/] {shown(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


class Step:
    """One step of a long job on the :func:`progress` display: a label, a bar, a count.

    Called with a number, it advances by that many (a per-chunk callback);
    :meth:`update` sets how far it is instead (a ``(done, total)`` callback).
    """

    def __init__(self, bar: rich.progress.Progress, task: rich.progress.TaskID, unit: str):
        self._bar = bar
        self._task = task
        self._unit = unit

    def __call__(self, n: int) -> None:
        self._bar.advance(self._task, n)
        task = self._bar.tasks[self._task]
        self._count(int(task.completed), None if task.total is None else int(task.total))

    def update(self, done: int, total: int | None = None, *, note: str | None = None) -> None:
        """Set ``done`` of ``total`` (``None``: unknown); ``note`` replaces the count."""
        self._bar.update(self._task, completed=done, total=total)
        if note is None:
            self._count(done, total)
        else:
            self._bar.update(self._task, note=note)

    def _count(self, done: int, total: int | None) -> None:
        of = f" of {total:,}" if total is not None else ""
        self._bar.update(self._task, note=f"{done:,}{of} {self._unit}".rstrip())


class Progress:
    """The progress display of one command: one line per step, a new step hiding the last."""

    def __init__(self, bar: rich.progress.Progress) -> None:
        self._bar = bar

    def step(self, label: str, total: int | None = None, *, unit: str = "") -> Step:
        for task in self._bar.task_ids:
            self._bar.update(task, visible=False)
        return Step(self._bar, self._bar.add_task(label, total=total, note=""), unit)


@contextmanager
def progress(show: bool = True) -> Iterator[Progress | None]:
    """A :class:`Progress` drawn on stderr while the block runs, or ``None`` (nothing to
    draw) when ``show`` is false (``--json``) or stderr is not a terminal."""
    if not (show and err_console.is_terminal):
        yield None
        return
    from rich.progress import (  # only when drawn: `vigil --help` stays fast
        BarColumn,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar  # only when drawn: `vigil --help` stays fast

    with Bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        yield Progress(bar)
