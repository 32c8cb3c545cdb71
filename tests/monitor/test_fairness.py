"""Fairness by group in monitoring windows: the stored ``fairness.*`` series equal
Fairlearn's values on the window's rows; settings are validated with clear errors; the
default ``fairness_disparity`` rule fires on the four-fifths rule; the exporter exports them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score
from tests.monitor._data import FEATURES, Trained, capture_sink, make_frame, write_traffic
from typer.testing import CliRunner

from vigil.app import Vigil
from vigil.cli import app as cli
from vigil.errors import ConfigurationError
from vigil.monitor.alerts import evaluate_rules
from vigil.monitor.engine import monitor_windows
from vigil.monitor.exporter import MonitorExporter
from vigil.monitor.prometheus import REGISTRY
from vigil.monitor.rules import default_rules
from vigil.monitor.series import read_series
from vigil.monitor.settings import MonitorSettings, load_monitor_settings

T0 = datetime(2025, 3, 1, tzinfo=UTC)
FAIRNESS = {"churn": {"attributes": ["plan"], "min_group_size": 60}}


def _traffic(vigil: Vigil, trained: Trained) -> tuple[list[int], list[int], list[str]]:
    """One hour of 600 rows, all labelled; the plan mix leaves 'basic' a small group."""
    frame = make_frame(600, seed=5, shift_plan=True)
    sink = capture_sink(vigil)
    write_traffic(sink, trained.model, frame, start=T0, step=timedelta(seconds=5), batch=1)
    sink.close()
    store = vigil.feedback_store()
    labels = [
        {"request_id": f"r{i:06d}", "row": 0, "label": int(v), "time": T0 + timedelta(hours=2)}
        for i, v in enumerate(frame["label"])
    ]
    assert store.submit(labels).accepted == 600
    store.close()
    y_pred = [int(v) for v in trained.model.predict(frame[FEATURES])]
    return [int(v) for v in frame["label"]], y_pred, list(frame["plan"])


def test_fairness_series_equal_fairlearn_on_the_windows_rows(
    vigil: Vigil, trained: Trained, tmp_path: Path
) -> None:
    y_true, y_pred, plan = _traffic(vigil, trained)
    settings = MonitorSettings(window="1h", rules=[], grace_s=0, fairness=FAIRNESS)
    results = monitor_windows(vigil, now=T0 + timedelta(hours=3), settings=settings).results
    assert len(results) == 1 and results[0].n_labelled == 600
    stored = {
        p.metric: p.value for p in read_series(vigil.database) if p.metric.startswith("fairness.")
    }

    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=plan,
    )
    sizes = {g: plan.count(g) for g in set(plan)}
    assert min(sizes.values()) < 60 <= max(sizes.values())  # one group is below the minimum
    for group, expected in frame.by_group.iterrows():
        for metric in ("selection_rate", "accuracy", "tpr", "fpr"):
            assert stored[f"fairness.plan.{group}.{metric}"] == pytest.approx(
                expected[metric], abs=1e-12
            )
        assert stored[f"fairness.plan.{group}.count"] == sizes[str(group)]
        assert stored[f"fairness.plan.{group}.small"] == float(sizes[str(group)] < 60)
    big = [i for i, g in enumerate(plan) if sizes[g] >= 60]
    args = {
        "y_true": [y_true[i] for i in big],
        "y_pred": [y_pred[i] for i in big],
        "sensitive_features": [plan[i] for i in big],
    }
    assert stored["fairness.plan.demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(**args), abs=1e-12
    )
    assert stored["fairness.plan.disparate_impact_ratio"] == pytest.approx(
        demographic_parity_ratio(**args), abs=1e-12
    )
    assert stored["fairness.plan.equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(**args), abs=1e-12
    )
    assert stored["fairness.plan.small_groups"] == 1.0
    summary = results[0].summary()["fairness"]["plan"]
    assert summary["groups"]["basic"]["small"] == 1.0 and summary["min_group_size"] == 60

    # The built-in rule watches every attribute's disparate impact ratio (four-fifths).
    rule = next(r for r in default_rules() if r.name == "fairness_disparity")
    events = evaluate_rules(vigil.database, [rule], since=T0, window="1h")
    ratio = stored["fairness.plan.disparate_impact_ratio"]
    assert ratio < 0.8  # the model selects 'plus' customers far less than 'pro' ones
    assert [e.status for e in events] == ["firing"]
    assert events[0].labels["metric"] == "fairness.plan.disparate_impact_ratio"
    assert events[0].metric == "fairness.plan.disparate_impact_ratio"
    assert "fairness.plan.disparate_impact_ratio = 0.4117" in events[0].summary

    # Drawn in the HTML report of the captured traffic (`vigil report --html`).
    page = tmp_path / "report.html"
    since, until = T0.isoformat(), (T0 + timedelta(hours=3)).isoformat()
    out = CliRunner().invoke(
        cli, ["report", "churn", "--since", since, "--until", until, "--html", str(page)]
    )
    assert out.exit_code == 0, out.output
    html = page.read_text()
    assert "<h2>Fairness by group</h2>" in html and "<h3>By plan</h3>" in html
    assert "basic (small)" in html and 'stroke-dasharray="4 3"' in html
    assert f"<td>disparate_impact_ratio</td><td>{ratio:.4g}</td>" in html

    # Exported like every other series, on /metrics.
    MonitorExporter(vigil, settings.model_copy(update={"lookback": "5000d"})).refresh()
    labels = {"model": "churn", "version": "1", "route": "native_predict", "feature": ""}
    for metric in ("fairness.plan.disparate_impact_ratio", "fairness.plan.basic.selection_rate"):
        exported = REGISTRY.get_sample_value("vigil_monitor_value", {**labels, "metric": metric})
        assert exported == pytest.approx(stored[metric])


def test_fairness_settings_are_validated_with_clear_errors() -> None:
    ok = load_monitor_settings(
        fairness={"churn": {"attributes": ["plan", {"name": "sex", "source": "passthrough"}]}}
    )
    assert [a.column for a in ok.fairness["churn"].attributes] == [
        "feature.plan",
        "passthrough.sex",
    ]
    with pytest.raises(ConfigurationError, match=r"invalid sensitive attribute name 'a\.b'"):
        load_monitor_settings(fairness={"churn": {"attributes": ["a.b"]}})
    with pytest.raises(ConfigurationError, match="declared twice"):
        load_monitor_settings(fairness={"churn": {"attributes": ["plan", "plan"]}})
    with pytest.raises(ConfigurationError, match="source"):
        load_monitor_settings(
            fairness={"churn": {"attributes": [{"name": "x", "source": "header"}]}}
        )
    with pytest.raises(ConfigurationError, match="min_group_size"):
        load_monitor_settings(fairness={"churn": {"attributes": ["plan"], "min_group_size": 0}})
    with pytest.raises(ConfigurationError, match="invalid model name"):
        load_monitor_settings(fairness={"../x": {"attributes": ["plan"]}})


def test_the_light_copies_of_names_match_what_they_name() -> None:
    """Settings load without PyArrow or SciPy, so the column prefixes and measure names are
    spelt where they load; these must stay equal to the modules that produce them."""
    from vigil.capture.table import FEATURE_PREFIX, PASSTHROUGH_PREFIX
    from vigil.monitor.fairness import FEATURE_COLUMN, PASSTHROUGH_COLUMN
    from vigil.monitor.points import BETWEEN_METRICS, FOUR_FIFTHS, GROUP_METRICS
    from vigil.stats import fairness

    assert (FEATURE_COLUMN, PASSTHROUGH_COLUMN) == (FEATURE_PREFIX, PASSTHROUGH_PREFIX)
    report = fairness.fairness_report({"a": fairness.GroupCounts(3, 1)}, min_group_size=1)
    assert tuple(report.between) == BETWEEN_METRICS
    assert tuple(report.groups["a"].values) == GROUP_METRICS
    assert fairness.FOUR_FIFTHS == FOUR_FIFTHS
