"""Monitoring settings: environment, vigil.yaml, defaults and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.errors import ConfigurationError
from vigil.monitor.points import PERFORMANCE_MEASURES
from vigil.monitor.settings import load_monitor_settings


def test_defaults() -> None:
    s = load_monitor_settings()
    assert (s.window, s.interval_s, s.lookback, s.webhooks) == ("1h or 1000", 300.0, "7d", [])
    names = [r.name for r in s.rules]
    assert names[:2] == ["dataset_drift", "error_rate"]
    # One rule per performance measure, which watches the versions registered with it.
    assert {"accuracy_drop", "roc_auc_drop", "f1_drop", "rmse_rise", "log_loss_rise"} <= set(names)
    # And the accuracy (classifiers) and errors (regressors) estimated before labels,
    # against the labelled reference.
    assert names[-3:] == ["estimated_accuracy_drop", "estimated_mae_rise", "estimated_rmse_rise"]
    # And the four-fifths rule between the groups of any sensitive attribute.
    assert names[-4] == "fairness_disparity"
    assert len(names) == 6 + len(PERFORMANCE_MEASURES)
    assert (s.window_spec.seconds, s.window_spec.size) == (3600, 1000)


def test_cycle_timeout_follows_the_interval_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_monitor_settings().cycle_timeout == 900.0  # three 300 s intervals
    monkeypatch.setenv("VIGIL_MONITOR_INTERVAL_S", "600")
    assert load_monitor_settings().cycle_timeout == 1800.0
    monkeypatch.setenv("VIGIL_MONITOR_INTERVAL_S", "10")
    assert load_monitor_settings().cycle_timeout == 600.0  # at least ten minutes
    monkeypatch.setenv("VIGIL_MONITOR_CYCLE_TIMEOUT_S", "42")
    assert load_monitor_settings().cycle_timeout == 42.0
    monkeypatch.setenv("VIGIL_MONITOR_CYCLE_TIMEOUT_S", "0")
    with pytest.raises(ConfigurationError, match="VIGIL_MONITOR_CYCLE_TIMEOUT_S"):
        load_monitor_settings()


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_MONITOR_WINDOW", "500")
    monkeypatch.setenv("VIGIL_MONITOR_SLACK", "true")
    monkeypatch.setenv("VIGIL_MONITOR_WEBHOOKS", json.dumps(["https://hooks.example/x?t=1"]))
    monkeypatch.setenv(
        "VIGIL_MONITOR_RULES",
        json.dumps([{"name": "p", "metric": "drift.prediction_drifted", "threshold": 0.5}]),
    )
    s = load_monitor_settings()
    assert s.window_spec.size == 500
    assert [(r.name, r.comparison, r.for_windows) for r in s.rules] == [("p", ">", 1)]
    assert [w.format for w in s.targets()] == ["slack"]


def test_yaml_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(
        "monitor:\n"
        "  window: 15m\n"
        "  webhooks:\n"
        "    - {url: 'https://hooks.slack.com/services/T/B/X', format: slack}\n"
        "    - https://alerts.example/hook\n"
        "  rules:\n"
        "    - {name: churn_drift, metric: drift.share, comparison: '>=', threshold: 0.3,\n"
        "       for_windows: 2, labels: {model: churn}}\n"
    )
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    monkeypatch.setenv("VIGIL_MONITOR_WINDOW", "30m")  # the environment wins over the file
    s = load_monitor_settings()
    assert s.window == "30m"
    assert [w.format for w in s.targets()] == ["slack", "json"]
    (rule,) = s.rules
    assert (rule.metric, rule.comparison, rule.for_windows, rule.labels) == (
        "drift.share",
        ">=",
        2,
        {"model": "churn"},
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window": "soon"}, "VIGIL_MONITOR_WINDOW: Value error, invalid window 'soon'"),
        ({"lookback": "ever"}, "VIGIL_MONITOR_LOOKBACK: Value error, invalid lookback 'ever'"),
        (
            {"rules": [{"name": "x", "metric": "drift.psi", "threshold": 1}]},
            "VIGIL_MONITOR_RULES (rules.0.metric): Value error, unknown metric 'drift.psi'",
        ),
        (
            {"rules": [{"name": "x", "metric": "drift.share", "comparison": "=>", "threshold": 1}]},
            "VIGIL_MONITOR_RULES (rules.0.comparison): Input should be '>', '>=',",
        ),
        (
            {"rules": [{"name": "x", "metric": "drift.share", "threshold": 1, "for_windows": 0}]},
            "(rules.0.for_windows): Input should be greater than or equal to 1",
        ),
        (
            {
                "rules": [
                    {"name": "x", "metric": "drift.share", "threshold": 1, "labels": {"m": "a"}}
                ]
            },
            "unknown label(s) ['m']; filter on model, version, route, feature",
        ),
        (
            {"rules": [{"name": "a b", "metric": "drift.share", "threshold": 1}]},
            "invalid rule name 'a b'",
        ),
        (
            {"rules": [{"name": "x", "metric": "drift.share", "threshold": 1}] * 2},
            "two rules are named 'x'",
        ),
        ({"webhooks": ["ftp://example.com/x"]}, "must start with http:// or https://"),
        ({"interval_s": -1}, "VIGIL_MONITOR_INTERVAL_S: Input should be greater than or equal"),
    ],
)
def test_invalid_settings_say_what_to_fix(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_monitor_settings(**overrides)
    assert message in str(info.value)


def test_webhook_secrets_stay_out_of_reprs_and_errors() -> None:
    s = load_monitor_settings(webhooks=["https://hooks.example/T0/secret-token"])
    assert "secret-token" not in repr(s) and "secret-token" not in str(s.targets())
    assert s.targets()[0].label.startswith("https://hooks.example/…#")
