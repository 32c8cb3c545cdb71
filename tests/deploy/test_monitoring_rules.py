"""The deployment's Prometheus rules and Alertmanager example pass their own tools:
``promtool check rules``, the ``promtool test rules`` unit tests next to them, and
``amtool check-config`` with the routing each alert is meant to take.

That every expression returns data from a real vigil server is
tests/deploy/test_dashboards.py's part."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vigil.serving.routes import ROUTES

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
RULES_TEST = MONITORING / "prometheus" / "rules_test.yml"
ALERTMANAGER = MONITORING / "alertmanager" / "alertmanager.yml"
DOC = "docs/deploy-monitoring.md"


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
    )
    if found is None:
        pytest.fail(f"{name} is missing: run `apt-get install {package}` (or `make test` as root)")
    return found


def _run(*command: str, cwd: Path | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    output = _run(_tool("promtool", "prometheus"), "check", "rules", str(RULES))
    assert f"SUCCESS: {len(_rules())} rules found" in output


def test_promtool_unit_tests_pass_and_cover_every_alert() -> None:
    output = _run(
        _tool("promtool", "prometheus"), "test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent
    )
    assert "SUCCESS" in output and "FAILED" not in output
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]  # a case where the alert fires, not only one where it stays silent
    }
    assert tested == {str(rule["alert"]) for rule in _rules() if "alert" in rule}


def test_every_alert_has_a_severity_or_inherits_vigils_and_says_what_happened() -> None:
    for rule in _rules():
        if "alert" not in rule:
            assert re.fullmatch(r"\w+:\w+:\w+", str(rule["record"])), rule[
                "record"
            ]  # level:metric:ops
            continue
        labels = rule.get("labels") or {}
        assert isinstance(labels, dict)
        # VigilMonitoringAlert keeps the severity of vigil's own rule, from the series.
        assert "severity" in labels or "severity" in str(rule["expr"]), rule["alert"]
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and {"summary", "description"} <= set(annotations)


def test_the_prediction_route_matcher_selects_exactly_the_prediction_routes() -> None:
    matchers = set(re.findall(r'route=~"([^"]+)"', RULES.read_text()))
    assert len(matchers) == 1, matchers  # one definition of "a prediction route"
    pattern = re.compile(matchers.pop())  # PromQL regexes are anchored, as fullmatch is
    names = {route.name for route in ROUTES}
    # Explanations take a prediction's body and guards (Route.prediction) but are not in
    # the prediction SLO: a sampled explanation takes up to seconds by design.
    predictions = {r.name for r in ROUTES if r.prediction and "explain" not in r.name}
    assert {n for n in names if pattern.fullmatch(n)} == predictions
    assert {r.name for r in ROUTES if r.prediction} - predictions == {
        "native_explain",
        "native_explain_alias",
        "native_explain_version",
    }


def test_amtool_accepts_the_alertmanager_example_and_routes_as_documented() -> None:
    amtool = _tool("amtool", "prometheus-alertmanager")
    output = _run(amtool, "check-config", str(ALERTMANAGER))
    assert "SUCCESS" in output and "3 receivers" in output
    expected = {
        ("severity=critical", "alertname=VigilHighErrorRate"): "ml-platform-oncall",
        ("severity=critical", "alertname=VigilReplicaDown"): "ml-platform-oncall",
        ("severity=warning", "alertname=VigilQueueSaturated"): "ml-platform",
        ("severity=critical", "alertname=VigilMonitoringAlert", "source=vigil-monitor"): (
            "model-owners"
        ),
    }
    for labels, receiver in expected.items():
        _run(
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER}",
            f"--verify.receivers={receiver}",
            *labels,
        )


def test_the_doc_names_every_alert() -> None:
    text = (ROOT / DOC).read_text()
    for rule in _rules():
        if "alert" in rule:
            assert f"| `{rule['alert']}` |" in text, rule["alert"]
