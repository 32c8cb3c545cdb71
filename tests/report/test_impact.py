"""``vigil report`` ranks the drifted features by impact: drift weighted by the version's
stored global importance, in its JSON and its HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.report._capture import CaptureHome
from typer.testing import CliRunner

from vigil.app import default
from vigil.cli import app


def test_drifted_features_are_ranked_by_impact(
    use_capture_home: CaptureHome, tmp_path: Path
) -> None:
    html = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", "models:/churn@production", "--html", str(html), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    importance = default().registry.resolve("models:/churn@production").manifest["importance"]
    weights = importance["features"]
    compared = [c for c in out["columns"] if c["method"] != "none"]
    total = sum(weights[c["column"]] for c in compared)
    expected = {c["column"]: c["effect_size"] * weights[c["column"]] / total for c in compared}
    drifted = [c["column"] for c in compared if c["drifted"]]
    assert len(drifted) >= 2
    ranked = out["drifted_by_impact"]
    assert [r["feature"] for r in ranked] == sorted(drifted, key=lambda n: -expected[n])
    for r in ranked:
        assert r["impact"] == pytest.approx(expected[r["feature"]], rel=1e-12)
        assert r["importance_share"] == pytest.approx(weights[r["feature"]] / total)

    page = html.read_text(encoding="utf-8")
    assert '<th data-key="impact" data-type="number"' in page
    rows = re.findall(r'<tr data-column="([^"]*)" class="(drifted|stable)"', page)
    assert [name for name, state in rows if state == "drifted"] == [r["feature"] for r in ranked]
    shown = re.search(r'<span id="drifted-by-impact">(.*?)</span>', page)
    assert shown is not None
    assert shown[1] == ", ".join(f"{r['feature']} ({r['impact']:.2g})" for r in ranked)
    data = json.loads(re.search(r'id="vigil-data">(.*?)</script>', page, re.S)[1])  # type: ignore[index]
    impacts = {c["column"]: c["impact"] for c in data["report"]["columns"]}
    assert impacts == pytest.approx(expected)

    text = CliRunner().invoke(app, ["report", "models:/churn@production"])
    assert text.exit_code == 0, text.output
    assert (
        "drifted features by impact (effect size × importance share): "
        + ", ".join(f"{r['feature']} ({r['impact']:.2g})" for r in ranked)
    ) in text.stdout
