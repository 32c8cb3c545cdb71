"""``vigil report``: captured traffic against the baseline profile, same numbers as
``compare_to_profile``, the right rows in the window, clean errors."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tests.report._capture import CAPTURED, FEATURES, CaptureHome
from typer.testing import CliRunner

from vigil.app import Vigil
from vigil.cli import app, main
from vigil.drift import compare_to_profile
from vigil.drift.target import prediction_drift_to_profile
from vigil.profile_schema import BaselineProfile
from vigil.report.capture_report import report_from_table
from vigil.settings import load_settings

runner = CliRunner()


def _json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["report", *args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def _profile(home: Path, version: int) -> BaselineProfile:
    profile = Vigil(load_settings(home=home)).load(f"models:/churn/{version}").profile
    assert profile is not None
    return profile


def _check_same_numbers(data: dict[str, Any], home: CaptureHome, versions: list[int]) -> None:
    """The JSON's columns and prediction drift are compare_to_profile's on the same rows."""
    frame = pd.concat([home.captured[v] for v in versions], ignore_index=True)
    profile = _profile(home.home, data["baseline_version"])
    expected = compare_to_profile(profile, {c: frame[c].to_numpy() for c in frame})
    got = {c["column"]: c for c in data["columns"]}
    assert list(got) == FEATURES
    for c in expected.columns:
        row = got[c.column]
        assert row["method"] == c.method and row["drifted"] == c.drifted
        assert row["statistic"] == pytest.approx(c.statistic, rel=1e-12)
        assert row["effect_size"] == pytest.approx(c.effect_size, rel=1e-12)
        if c.p_value is not None:
            assert row["p_value_adjusted"] == pytest.approx(c.p_value_adjusted, rel=1e-9)
        assert (row["n_current"], row["current_missing"]) == (c.n_current, c.current_missing)
    assert data["dataset_drifted"] == expected.dataset_drifted
    assert data["share_drifted"] == pytest.approx(expected.share_drifted)
    preds = np.concatenate([home.predictions[v] for v in versions])
    assert profile.prediction is not None
    pred = prediction_drift_to_profile(
        profile.prediction, preds, sample=profile.sample_predictions or None
    )
    assert data["prediction"]["method"] == pred.method
    assert data["prediction"]["statistic"] == pytest.approx(pred.statistic, rel=1e-12)


def test_json_matches_compare_to_profile(use_capture_home: CaptureHome) -> None:
    data = _json("models:/churn@production")
    # Both versions' traffic (1 compacted, 2 still in a segment); the 422 is left out.
    assert data["current_rows"] == sum(CAPTURED.values())
    assert data["rows_by_version"] == {"1": 1500, "2": 1000}
    assert data["uri"] == "models:/churn@production" and data["baseline_version"] == 2
    assert data["reference_rows"] == 3000
    assert {c["column"] for c in data["columns"] if c["drifted"]} == {"age", "plan"}
    assert data["columns"][1]["column"] == "income" and data["columns"][1]["current_missing"] > 0
    _check_same_numbers(data, use_capture_home, [1, 2])
    assert data["not_compared"] == {} and data["html"] is None
    # Charts: the reference side is the profile's stored histogram / frequencies.
    profile = _profile(use_capture_home.home, 2)
    age = data["charts"]["age"]
    stored = profile.features["age"]
    assert age["reference"]["n"] == 3000 and age["current"]["n"] == 2500
    assert sum(age["current"]["proportions"]) == pytest.approx(1.0, abs=1e-3)
    if age["reference"]["edges"] == stored.hist_edges:  # current inside the reference range
        assert age["reference"]["proportions"] == pytest.approx(
            [c / 3000 for c in stored.hist_counts], abs=1e-4
        )
    plan = data["charts"]["plan"]
    shares = dict(zip(plan["current"]["labels"], plan["current"]["proportions"], strict=True))
    counts = pd.concat([use_capture_home.captured[v]["plan"] for v in (1, 2)]).value_counts()
    assert shares == pytest.approx({k: counts[k] / 2500 for k in counts.index}, abs=1e-4)
    assert data["prediction_chart"]["current"]["n"] == 2500


def test_version_and_window_pick_the_rows(use_capture_home: CaptureHome) -> None:
    data = _json("churn@production", "--version", "1")
    assert data["current_rows"] == 1500 and data["baseline_version"] == 1
    assert data["uri"] == "models:/churn/1" and data["rows_by_version"] == {"1": 1500}
    _check_same_numbers(data, use_capture_home, [1])

    recent = _json("models:/churn@production", "--since", "1h")
    assert recent["rows_by_version"] == {"2": 1000}
    _check_same_numbers(recent, use_capture_home, [2])

    now = datetime.now(UTC)
    window = _json(
        "models:/churn/2",
        "--since",
        (now - timedelta(hours=3)).isoformat(),
        "--until",
        (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),  # no zone: UTC
    )
    assert window["rows_by_version"] == {"1": 1500} and window["baseline_version"] == 2
    assert datetime.fromisoformat(window["since"]) == pytest.approx(
        now - timedelta(hours=3), abs=timedelta(seconds=1)
    )


def test_table_and_html_output(use_capture_home: CaptureHome, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "models:/churn@production", "--html", str(html)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    # Drifted features first, then the rest, then the model output (cells may wrap).
    at = [result.stdout.index(f"│ {name}") for name in ("age", "plan", "income", "predict")]
    assert at == sorted(at)
    assert "2,500 captured rows since" in text and "v1: 1,500, v2: 1,000" in text
    assert "dataset drift: 2 of 4 features (50%) drifted; the verdict needs ≥ 50%" in text
    assert "model output" in text and f"report written to {html}" in result.stdout.replace("\n", "")
    page = html.read_text(encoding="utf-8")
    assert page.count('<svg class="chart"') == 5  # four features and the model output
    assert 'id="prediction-verdict"' in page and "Drift report: models:/churn@production" in page


def _fail(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run the real entry point in-process; return its one stderr line."""
    monkeypatch.setattr(sys, "argv", ["vigil", "report", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code not in (0, None)
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: ")
    return err


def test_errors_are_one_line(
    use_capture_home: CaptureHome,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = _fail(["models:/churn@production", "--since", "5m"], capsys, monkeypatch)
    assert "no captured predictions for models:/churn@production since " in err
    assert err.endswith("serve traffic or widen --since")
    err = _fail(["models:/churn@production", "--version", "2", "--since", "90m", "--until",
                 "1h"], capsys, monkeypatch)  # fmt: skip
    assert "no captured predictions for models:/churn/2 between " in err
    err = _fail(["models:/churn@production", "--since", "yesterday"], capsys, monkeypatch)
    assert "invalid --since 'yesterday': write a duration back from now" in err
    assert "has no alias 'staging'" in _fail(["models:/churn@staging"], capsys, monkeypatch)
    assert "'nobody'" in _fail(["nobody"], capsys, monkeypatch)


def test_version_without_a_baseline_profile(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    from vigil.app import reset_default

    reset_default()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    Vigil(load_settings()).register(LogisticRegression().fit(X, X[:, 0] > 0), name="bare")
    err = _fail(["models:/bare/1"], capsys, monkeypatch)
    assert "models:/bare/1 has no baseline profile" in err and "--reference" in err
    reset_default()


def test_masked_and_missing_features_are_named_not_compared(capture_home: CaptureHome) -> None:
    profile = _profile(capture_home.home, 2)
    frame = capture_home.captured[2]
    table = pa.table(
        {
            "time": pa.array([datetime(2025, 1, 1, tzinfo=UTC)] * len(frame)),
            "version": pa.array([2] * len(frame)),
            "feature.age": pa.array([f"hash-{i}" for i in range(len(frame))]),
            "feature.plan": pa.array(frame["plan"].tolist()),
            "feature.region": pa.array(frame["region"].tolist()),
            "prediction": pa.array(capture_home.predictions[2].tolist()),
        }
    )
    result = report_from_table(
        profile, table, uri="models:/churn/2", model="churn", baseline_version=2
    )
    assert set(result.not_compared) == {"age", "income"}
    assert (
        "text" in result.not_compared["age"]
        and "not in the capture log" in (result.not_compared["income"])
    )
    assert [c.column for c in result.report.columns] == ["plan", "region"]
    expected = compare_to_profile(profile, frame, columns=["plan", "region"])
    assert [c.statistic for c in result.report.columns] == [c.statistic for c in expected.columns]
    assert result.rows_by_version == {2: len(frame)} and result.prediction is not None
