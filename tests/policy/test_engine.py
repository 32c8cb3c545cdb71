"""Runs driven by the engine from the shell's side (no server): a worse candidate handed in
through the Python API is rejected at the gate; a job that fails without a candidate fails
the run. The whole way to promotion runs through a server in test_loop_e2e.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.policy._world import build

from vigil.app import Vigil
from vigil.policy.config import parse_policy
from vigil.policy.engine import PolicyEngine
from vigil.policy.runs import Run
from vigil.policy.store import PolicyStore
from vigil.settings import load_settings


@pytest.fixture
def app(tmp_path: Path, vigil_home: Path) -> Vigil:
    v = Vigil(load_settings(home=vigil_home, actor="ada"))
    build(v)
    return v


def _policy(app: Vigil, argv: list[str], **extra: Any) -> None:
    doc = {
        "model": "churn",
        "action": {"kind": "command", "argv": argv, "timeout_s": 120, **extra.pop("action", {})},
        "gate": {"min_improvement": 0.02},
        **extra,
    }
    PolicyStore(app).set(parse_policy(doc), actor="ada")


def _until_past(engine: PolicyEngine, run: Run, states: tuple[str, ...], timeout: float) -> Run:
    import time

    deadline = time.monotonic() + timeout
    while run.state in states and time.monotonic() < deadline:
        engine.advance(run)
        time.sleep(0.2)
        run = engine.runs.get(run.run_id)
    return run


def test_a_worse_candidate_is_rejected_at_the_gate(app: Vigil) -> None:
    import sys

    from sklearn.dummy import DummyClassifier
    from tests.monitor._data import FEATURES, make_frame

    # A job that never registers: the test hands in the candidate through the Python API.
    _policy(app, [sys.executable, "-c", "import time; time.sleep(60)"])
    engine = PolicyEngine(app)
    run = engine.start("churn", {"kind": "manual"}, actor="ada")
    assert run is not None
    run = _until_past(engine, run, ("triggered", "exporting"), 30)
    assert run.state == "training"
    frame = make_frame(200, seed=3)
    worse = DummyClassifier(strategy="constant", constant=0).fit(frame[FEATURES], frame["label"])
    mv = app.register(worse, name="churn", reference=frame, target="label", candidate_for="churn")
    run = _until_past(engine, engine.runs.get(run.run_id), ("gating",), 60)
    assert run.state == "rejected" and run.candidate_version == mv.version
    assert run.error is not None and "not shown better" in run.error
    assert run.data["gate"]["replay"]["passed"] is False
    rejected = [e for e in app.registry.audit("churn") if e.action == "policy.rejected"]
    assert rejected and rejected[0].after is not None and "gate" in rejected[0].after
    # The model is free for its next run.
    assert engine.runs.active("churn") is None
    import os
    import signal

    os.killpg(run.data["job"]["pid"], signal.SIGKILL)  # the job that never registers


def test_a_command_that_fails_without_a_candidate_fails_the_run(app: Vigil, tmp_path: Path) -> None:
    import sys

    _policy(app, [sys.executable, "-c", "import sys; print('no luck'); sys.exit(3)"])
    engine = PolicyEngine(app)
    run = engine.start("churn", {"kind": "manual"}, actor="ada")
    assert run is not None
    run = engine.drive(run.run_id, timeout=60, interval=0.2)  # what `policy run --wait` does
    assert run.state == "failed"
    assert run.error is not None and "exited with status 3" in run.error
    assert "no luck" in Path(run.data["job"]["log"]).read_text()


def test_an_ended_run_deletes_the_directories_of_older_ended_runs(
    app: Vigil, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types
    from datetime import UTC, datetime, timedelta

    import vigil.policy.runs as runs_module

    monkeypatch.setenv("VIGIL_POLICY_KEEP_RUNS", "1")
    # Both runs start in one second (their ids agree to the second) and the newer one's
    # random suffix sorts first: only the runs' start times can tell which is newer.
    second = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    ticks = iter(range(1, 1_000_000))
    monkeypatch.setattr(runs_module, "utcnow", lambda: second + timedelta(microseconds=next(ticks)))
    suffixes = iter(["f" * 32, "0" * 32])
    monkeypatch.setattr(
        runs_module,
        "uuid",
        types.SimpleNamespace(uuid4=lambda: types.SimpleNamespace(hex=next(suffixes))),
    )
    _policy(app, [sys.executable, "-c", "import sys; sys.exit(3)"])
    engine = PolicyEngine(app)
    ended = []
    for _ in range(2):
        run = engine.start("churn", {"kind": "manual"}, actor="ada")
        assert run is not None
        ended.append(engine.drive(run.run_id, timeout=60, interval=0.2))
    assert [r.state for r in ended] == ["failed", "failed"]
    assert ended[0].run_id > ended[1].run_id  # the ids alone would keep the older run
    # The newest run keeps its export and job log; the older one's are gone, its row stays.
    kept = sorted(p.name for p in (app.policy_dir / "churn").iterdir())
    assert kept == [ended[1].run_id]
    assert Path(ended[1].data["job"]["log"]).is_file()
    assert engine.runs.get(ended[0].run_id).state == "failed"
