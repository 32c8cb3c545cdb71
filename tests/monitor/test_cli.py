"""``vigil monitor run|show`` and ``vigil alert list`` on a real capture log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from tests.monitor._data import Trained, capture_sink, make_frame, write_traffic
from typer.testing import CliRunner

from vigil.app import Vigil
from vigil.cli import app
from vigil.monitor.windows import parse_window
from vigil.storage.sql import utcnow

runner = CliRunner()


def _traffic(vigil: Vigil, trained: Trained) -> None:
    """Two complete hours in the past: calm, then age and plan shifted."""
    start, _ = parse_window("1h").bounds(utcnow() - timedelta(hours=4))
    sink = capture_sink(vigil)
    write_traffic(sink, trained.model, make_frame(300, seed=1), start=start, batch=3)
    write_traffic(
        sink,
        trained.model,
        make_frame(300, seed=3, shift_age=True, shift_plan=True),
        start=start + timedelta(hours=1),
        batch=3,
        prefix="s",
    )
    sink.close()


def test_run_show_and_list(vigil: Vigil, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    _traffic(vigil, trained)
    result = runner.invoke(app, ["monitor", "run", "churn", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(w["rows"], w["dataset_drifted"]) for w in out["windows"]] == [
        (300, False),
        (300, True),
    ]
    assert sorted(out["windows"][1]["drifted_features"]) == ["age", "plan"]
    assert [(a["rule"], a["status"]) for a in out["alerts"]] == [("dataset_drift", "firing")]
    # Drifted features ranked by impact: each one's effect size times its share of the
    # version's stored global importance, largest first.
    importance = vigil.registry.get_version("churn", 1).manifest["importance"]["features"]
    shifted = out["windows"][1]
    effect = {
        p["feature"]: p["value"] for p in shifted["points"] if p["metric"] == "drift.effect_size"
    }
    impact = {p["feature"]: p["value"] for p in shifted["points"] if p["metric"] == "drift.impact"}
    total = sum(importance[f] for f in effect)
    expected = {f: effect[f] * importance[f] / total for f in effect}
    assert impact == pytest.approx(expected, rel=1e-12)
    ranked = shifted["drifted_by_impact"]
    assert [r["feature"] for r in ranked] == sorted(["age", "plan"], key=lambda f: -expected[f])
    assert [r["impact"] for r in ranked] == pytest.approx([expected[r["feature"]] for r in ranked])
    in_order = ", ".join(f"{r['feature']} ({r['impact']:.2g})" for r in ranked)

    again = runner.invoke(app, ["monitor", "run"], env={"COLUMNS": "200"})
    assert again.exit_code == 0
    assert "no new window: every window in the inference log is stored" in again.stdout
    assert "vigil monitor show" in again.stdout and "no alert fired" in again.stdout

    shown = runner.invoke(app, ["monitor", "show", "churn"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0
    assert in_order in shown.stdout and "native_predict" in shown.stdout

    listed = runner.invoke(app, ["alert", "list", "--json"])
    (alert,) = json.loads(listed.stdout)
    assert (alert["rule"], alert["labels"]["model"], alert["labels"]["version"]) == (
        "dataset_drift",
        "churn",
        "1",
    )
    table = runner.invoke(app, ["alert", "list", "--all"], env={"COLUMNS": "250"})
    assert "dataset_drift" in table.stdout and "firing" in table.stdout


def test_ad_hoc_window_and_partial(vigil: Vigil, trained: Trained) -> None:
    _traffic(vigil, trained)
    result = runner.invoke(
        app, ["monitor", "run", "--window", "250", "--since", "1d", "--partial", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(w["rows"], w["partial"]) for w in out["windows"]] == [
        (252, False),
        (252, False),
        (96, True),
    ]
    assert out["alerts"] == []  # rules watch the configured window size only
    none = runner.invoke(app, ["alert", "list"])
    assert "no alert is firing" in none.stdout


def test_an_incomplete_window_is_explained_with_what_to_run(vigil: Vigil, trained: Trained) -> None:
    """Traffic of the last seconds, fewer rows than the default window's 1,000: the run
    says which window is open, how many rows it holds, when it closes and what to run."""
    start = utcnow() - timedelta(seconds=30)
    sink = capture_sink(vigil)
    write_traffic(
        sink, trained.model, make_frame(300, seed=1), start=start, step=timedelta(0), batch=3
    )
    sink.close()
    closes = parse_window("1h").bounds(start)[1] + timedelta(seconds=60)
    r = runner.invoke(app, ["monitor", "run", "churn"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "nothing in the inference log" not in text
    assert (
        "churn v1 (native_predict): the current window (1h or 1000) is incomplete, "
        f"300 rows so far; it closes after 700 more rows or at {closes:%Y-%m-%d %H:%M} UTC"
    ) in text
    assert "vigil monitor run churn --partial" in text

    partial = runner.invoke(app, ["monitor", "run", "churn", "--partial", "--json"])
    (window,) = json.loads(partial.stdout)["windows"]
    assert (window["rows"], window["partial"]) == (300, True)


def test_an_empty_log_says_so(vigil: Vigil) -> None:
    r = runner.invoke(app, ["monitor", "run"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "nothing in the inference log since" in text
    assert "vigil serve" in text


def test_errors_are_one_line(vigil_home: Path) -> None:
    env = {**os.environ, "VIGIL_HOME": str(vigil_home)}
    for args, needle in (
        (["monitor", "run", "nope"], "no model named 'nope'"),
        (["monitor", "run", "--window", "soon"], "invalid window 'soon'"),
        (["monitor", "run", "--since", "yesterday"], "--since 'yesterday'"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "vigil.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("error:") and needle in done.stderr, done.stderr


def test_capture_export(vigil: Vigil, trained: Trained, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    _traffic(vigil, trained)
    out = tmp_path / "churn.parquet"
    result = runner.invoke(
        app,
        ["capture", "export", "churn", "-o", str(out), "--columns", "time,feature.age", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 600
    assert pq.read_table(out).column_names == ["time", "feature.age"]
    missing = runner.invoke(app, ["capture", "export", "nope", "-o", str(out)])
    assert missing.exit_code != 0 and "no model named 'nope'" in str(missing.exception)
