"""A monitoring run holds a bounded part of the windows it computes (vigil.monitor.computed).

Every window is stored as soon as it is measured; the run keeps counts, the last
``KEPT`` results and the newest of each series, so its memory does not grow with the
number of windows. Counted here on the real engine with weak references to every
``WindowResult`` it stores, and through ``vigil monitor run`` as a user sees it.
"""

from __future__ import annotations

import json
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rich.progress
from tests.monitor._data import Trained, capture_sink, make_frame, write_traffic
from typer.testing import CliRunner

from vigil.app import Vigil
from vigil.cli import app
from vigil.cli.monitor import _progress
from vigil.console import Progress
from vigil.monitor import computed, streamed
from vigil.monitor.engine import monitor_windows
from vigil.monitor.measure import WindowResult
from vigil.monitor.series import stored_windows
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.windows import SeriesKey

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
NOW = T0 + timedelta(hours=4)
KEY = SeriesKey("churn", 1, "native_predict")


def _windows(vigil: Vigil, trained: Trained, n: int) -> None:
    """``n`` requests of 4 rows, one a second: ``n`` complete windows of ``4``."""
    sink = capture_sink(vigil)
    write_traffic(sink, trained.model, make_frame(4 * n, 7), start=T0, batch=4)
    sink.close()


def _live(refs: list[weakref.ref[WindowResult]]) -> int:
    # No gc.collect(): a result let go is freed at once (no reference cycle holds it),
    # which is what bounds the run's memory, so this counts it strictly.
    return sum(r() is not None for r in refs)


def test_a_run_of_many_windows_holds_a_bounded_number_of_results(
    vigil: Vigil, trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200 windows, 20 kept: the bound at a tenth of the windows (each window costs a
    # measure and a store, so the real 200 of 2,000 would take minutes here).
    _windows(vigil, trained, 200)
    monkeypatch.setattr(computed, "KEPT", 20)
    monkeypatch.setattr(streamed, "SLICE_ROWS", 40)  # 20 slices: progress between them
    refs: list[weakref.ref[WindowResult]] = []
    real = streamed.save_window

    def saved(db: Any, result: WindowResult) -> bool:
        refs.append(weakref.ref(result))
        return real(db, result)

    monkeypatch.setattr(streamed, "save_window", saved)
    calls: list[tuple[int, int, str]] = []
    most = 0

    def progress(done: int, total: int, unit: str) -> None:
        nonlocal most
        calls.append((done, total, unit))
        most = max(most, _live(refs))

    settings = MonitorSettings(window="4", rules=[], grace_s=0, summaries=False)
    done = monitor_windows(vigil, model="churn", now=NOW, settings=settings, progress=progress)

    assert len(refs) == done.n_computed == 200
    # While it ran and after: the last 20 results (the newest is also its series'
    # latest), never the 200 it stored.
    assert most <= 20 and _live(refs) == 20 == len(done.results)
    assert [r.start for r in done.results] == [T0 + timedelta(seconds=s) for s in range(180, 200)]
    assert done.latest == {KEY: done.results[-1]}
    # Every window is in the store, the ones let go too, and counted.
    stored = stored_windows(vigil.database, window="4", model="churn")
    assert [(s.start, s.n_rows) for s in stored] == [
        (T0 + timedelta(seconds=s), 4) for s in range(200)
    ]
    assert done.computed.drifted == sum(bool(s.summary["dataset_drifted"]) for s in stored)
    # Progress counts the rows of the log read, of the total the first pass found.
    assert {unit for _, _, unit in calls} == {"rows"} and len(calls) == 20
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)
    assert calls[-1] == (800, 800, "rows")


def test_the_cli_shows_the_last_windows_and_says_where_the_others_are(
    vigil: Vigil, trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    _windows(vigil, trained, 30)
    monkeypatch.setattr(computed, "KEPT", 10)
    monkeypatch.setenv("VIGIL_MONITOR_SUMMARIES", "false")
    runner = CliRunner()

    shown = runner.invoke(app, ["monitor", "run", "churn", "--window", "4"], env={"COLUMNS": "250"})

    assert shown.exit_code == 0, shown.output
    assert "30 window(s) computed" in shown.stdout
    # One row per window shown (each ends at its start: one request), the last ten.
    starts = [(T0 + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S") for s in range(30)]
    assert [t for t in starts if f"{t} → {t}" in shown.stdout] == starts[20:]
    assert "the last 10 shown; every window is stored: `vigil monitor show churn --last 30`" in (
        " ".join(shown.stdout.split())
    )

    # --json: the count of all, the last ones in full (a window of 3 rows holds a request).
    listed = runner.invoke(app, ["monitor", "run", "churn", "--window", "3", "--json"])
    assert listed.exit_code == 0, listed.output
    out = json.loads(listed.stdout)
    assert out["computed"] == 30
    assert [w["start"] for w in out["windows"]] == [
        (T0 + timedelta(seconds=s)).isoformat() for s in range(20, 30)
    ]


def test_progress_says_what_it_counts() -> None:
    bar = rich.progress.Progress(rich.progress.TextColumn("{task.fields[note]}"))
    step = Progress(bar).step("computing windows")
    advance = _progress(step)

    advance(400_000, 1_000_000, "rows")
    assert bar.tasks[-1].fields["note"] == "400,000 of 1,000,000 rows"
    assert (bar.tasks[-1].completed, bar.tasks[-1].total) == (400_000, 1_000_000)
    advance(3, 12, "windows")
    assert bar.tasks[-1].fields["note"] == "3 of 12 windows"
