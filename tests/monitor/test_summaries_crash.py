"""Nothing lost, nothing counted twice: a cycle killed (SIGKILL) between any two of its
durable writes, compaction's parts, the summaries and their index, or the stored windows,
is completed by the next one, which stores what a cycle never killed stores.

The cycle runs in a forked child (vigil already imported: a fork costs milliseconds, not an
interpreter start), which kills itself with SIGKILL at the chosen write: no ``finally``, no
atexit, no flush runs, as when the kernel or an operator ends a process.
"""

from __future__ import annotations

import os
import shutil
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.monitor._data import Trained, capture_sink, home_vigil, make_frame, write_traffic

from vigil.app import Vigil
from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.monitor.engine import monitor_windows
from vigil.monitor.series import stored_windows
from vigil.monitor.settings import MonitorSettings

T0 = datetime(2025, 5, 1, tzinfo=UTC)
NOW = T0 + timedelta(hours=5)
ON = MonitorSettings(window="1h", rules=[], grace_s=0, summaries=True)
HOURS = 3
"""One segment of traffic per hour: 3 parts to compact (3 writes), 3 summaries and their
index files (6 writes), 3 windows to store."""


def _cycle(home: Path) -> None:
    """What the server's compactor and monitor do: compact, then one monitoring pass."""
    app = home_vigil(home)
    try:
        compact(SegmentLog(app.capture_dir), app.artifacts)
        monitor_windows(app, model="churn", now=NOW, settings=ON)
    finally:
        app.database.dispose()


def _killed_at(home: Path, where: str, n: int) -> None:
    """Run :func:`_cycle` in a forked child that SIGKILLs itself at the ``n``-th call of
    ``where``: a store write (before it starts), a rename (the data written to a
    temporary file, not yet in place), a file deletion (a compacted segment) or a window
    saved in SQL (before its transaction)."""
    import vigil.monitor.engine as engine
    from vigil.storage.artifacts import ArtifactStore

    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            calls = [0]

            def dying(real: Any) -> Any:
                def call(*args: Any, **kw: Any) -> Any:
                    calls[0] += 1
                    if calls[0] == n:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return real(*args, **kw)

                return call

            if where == "write":
                ArtifactStore.write_bytes = dying(ArtifactStore.write_bytes)  # type: ignore[method-assign]
            elif where == "rename":
                os.replace = dying(os.replace)
            elif where == "unlink":
                Path.unlink = dying(Path.unlink)  # type: ignore[method-assign]
            else:
                engine.save_window = dying(engine.save_window)
            _cycle(home)
        finally:
            os._exit(3)  # reached only if the kill point was never reached
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


def _state(home: Path) -> list[tuple[Any, ...]]:
    app = home_vigil(home)
    try:
        stored = stored_windows(app.database, window="1h", model="churn")
    finally:
        app.database.dispose()
    return sorted(
        (
            s.start,
            s.n_rows,
            s.n_requests,
            s.n_labelled,
            s.partial,
            tuple(s.summary["drifted_features"]),
        )
        for s in stored
    )


@pytest.fixture
def traffic(vigil: Vigil, trained: Trained, tmp_path: Path) -> tuple[Path, list[tuple[Any, ...]]]:
    """A home with three hours of traffic in three closed segments (none compacted), and
    what an uninterrupted cycle stores from it."""
    for h in range(HOURS):
        sink = capture_sink(vigil)
        write_traffic(
            sink,
            trained.model,
            make_frame(200, seed=10 + h, shift_age=h == 2),
            start=T0 + timedelta(hours=h),
            step=timedelta(seconds=10),
            batch=2,
            prefix=f"h{h}-",
        )
        sink.close()
    vigil.database.dispose()
    home = Path(vigil.settings.home)
    clean = tmp_path / "clean"
    shutil.copytree(home, clean)
    _cycle(clean)
    want = _state(clean)
    assert [w[:3] for w in want] == [(T0 + timedelta(hours=h), 200, 100) for h in range(HOURS)]
    return home, want


KILL_POINTS = [
    ("write", 1),  # nothing written yet
    ("unlink", 1),  # the first part written, its segment not yet deleted
    ("write", HOURS + 1),  # every part in place, no summary yet
    ("rename", HOURS + 1),  # the first summary in a temporary file, not in place
    ("write", HOURS + 2),  # the first summary in place, not its index
    ("write", 3 * HOURS),  # every summary, not the last index
    ("save", 2),  # the first window stored, not the others
]
"""Where the child dies: before the ``n``-th store write, rename, segment deletion or
window saved (writes: a part per segment, then a summary and its index per part)."""


def test_a_cycle_killed_between_writes_is_completed_by_the_next(
    traffic: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    home, want = traffic
    for where, n in KILL_POINTS:
        victim = tmp_path / f"{where}-{n}"
        shutil.copytree(home, victim)
        _killed_at(victim, where, n)
        before = _state(victim)
        assert set(before) <= set(want), (where, n)  # the old state or part of the new
        _cycle(victim)
        assert _state(victim) == want, (where, n)  # completed, every row counted once
        summaries = victim / "artifacts" / "summaries"
        index = sorted(p.name[: -len(".keys")] for p in summaries.rglob("*.keys"))
        assert index == sorted(p.name[: -len(".summary")] for p in summaries.rglob("*.summary"))
        assert len(index) == HOURS, (where, n)
