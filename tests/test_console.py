"""The one progress display every long job uses: on stderr, only at a terminal, one line
per step counting what it did."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from vigil import console


def test_no_display_for_scripts_or_pipes() -> None:
    with console.progress(False) as display:
        assert display is None
    with console.progress(True) as display:  # pytest's stderr is not a terminal
        assert display is None


def test_steps_count_and_replace_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(console, "err_console", Console(file=out, force_terminal=True, width=120))
    with console.progress(True) as display:
        assert display is not None
        read = display.step("reading", 10, unit="rows")
        read(4)
        read(6)
        bar = display._bar
        assert bar.tasks[0].fields["note"] == "10 of 10 rows"
        store = display.step("storing")
        store.update(3, None)
        assert bar.tasks[1].fields["note"] == "3"
        store.update(5, 8, note="5 rows · 9 rows/s")
        assert (bar.tasks[1].completed, bar.tasks[1].total) == (5, 8)
        assert bar.tasks[1].fields["note"] == "5 rows · 9 rows/s"
        assert [t.visible for t in bar.tasks] == [False, True]  # a new step hides the last
    assert "reading" in out.getvalue()
