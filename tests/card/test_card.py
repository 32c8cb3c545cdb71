"""``vigil card``: the demo model's card with every section filled, as a self-contained
HTML page rendered in a real headless Chromium (scripts run, charts drawn, a screenshot)
and as Markdown; user text escaped; bad URIs are one line on stderr."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tests._chromium import chromium
from typer.testing import CliRunner

from vigil.app import Vigil
from vigil.cli import app
from vigil.demo._data import CARD

runner = CliRunner()
SECTIONS = [
    "overview",
    "lineage",
    "signature",
    "metrics",
    "baseline",
    "importance",
    "fairness",
    "monitoring",
    "alerts",
    "promotions",
]
CHARTS = 30 + 2 + 1 + 2
"""A baseline chart per feature, the prediction and the label; importance; two fairness
metrics by group."""


def _chromium(args: list[str], profile: Path) -> str:
    return chromium(args, profile).stdout


def _card(tmp_path: Path, uri: str = "models:/breast-cancer@production") -> tuple[str, str]:
    html, md = tmp_path / "card.html", tmp_path / "card.md"
    result = runner.invoke(app, ["card", uri, "--html", str(html), "--md", str(md)])
    assert result.exit_code == 0, result.output
    assert f"model card written to {html}" in result.stdout
    return html.read_text(encoding="utf-8"), md.read_text(encoding="utf-8")


@pytest.mark.browser
def test_the_demo_models_card_renders_in_chromium_with_every_section(
    demo_vigil: Vigil, tmp_path: Path
) -> None:
    html, _ = _card(tmp_path)
    # Self-contained: nothing to fetch, not even a font.
    assert not re.search(r"""(src|href)=["'](https?:|//)""", html)
    assert "@import" not in html and "url(" not in html
    page = tmp_path / "card.html"
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    assert 'data-ready="1"' in body[0] and "data-error" not in body[0], body[0]
    assert f'data-charts="{CHARTS}"' in body[0] and 'data-empty-charts="0"' in body[0], body[0]
    assert re.findall(r'<section class="card (\w+)" id="(\w+)"', dom) == [
        ("filled", s) for s in SECTIONS
    ]
    assert CARD["purpose"] in dom and "Never a diagnosis on its own." in dom
    # Baseline charts: the reference alone (no "current" side), one per column.
    charts = re.findall(r'<svg class="chart" data-column="([^"]*)".*?</svg>', dom, re.S)
    assert charts[0] == "prediction" and "mean_radius" in charts and len(charts) == 32
    for svg in re.findall(r'<svg class="chart" data-column=.*?</svg>', dom, re.S):
        assert 'class="bar reference"' in svg and 'class="bar current"' not in svg
        assert "current (n=" not in svg
    bars = re.findall(r'<svg class="chart bars" data-chart="([^"]*)"', dom)
    assert bars == ["Global importance", "size: accuracy", "size: selection_rate"]
    assert "drift_share" in dom and "rollback" in dom and "screening" in dom

    png = tmp_path / "card.png"
    _chromium([f"--screenshot={png}", page.as_uri()], tmp_path / "profile-shot")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2400)
    assert len(data) > 50_000  # a blank page compresses to a few KiB


def test_the_markdown_card_says_the_same(demo_vigil: Vigil, tmp_path: Path) -> None:
    _, md = _card(tmp_path)
    titles = re.findall(r"^## (.+)$", md, re.MULTILINE)
    assert titles == [
        "Overview",
        "Lineage",
        "Signature (30 inputs)",
        "Metrics at registration",
        "Baseline profile",
        "Global importance",
        "Fairness by group",
        "Monitoring",
        "Alert history",
        "Experiments and promotions",
    ]
    mv = demo_vigil.registry.get_version("breast-cancer", 1)
    assert md.startswith("# Model card: breast-cancer version 1\n")
    assert f"- **Owner:** {CARD['owner']}" in md
    assert "other populations or instruments.  \n  Never a diagnosis on its own." in md
    assert f"| accuracy | {mv.metrics['accuracy']:.6g} |" in md
    assert f"- **artifact sha256:** {mv.sha256}" in md
    assert (
        "- **reference data:** 398 rows, label target; sha256 not recorded (passed in memory)" in md
    )
    assert re.search(r"- \*\*environment:\*\* .*scikit-learn \d", md), md[:3000]
    # Both monitoring windows, newest first: the shifted one drifted on eight features.
    rows = re.findall(
        r"^\| \d{4}-\d\d-\d\d \d\d:\d\d UTC \| 1h or 1000 \| native\\_predict \| 171 \|.*$",
        md,
        re.M,
    )
    assert len(rows) == 2 and "| 8 |" in rows[0] and "| 0 |" in rows[1]
    assert "| size | demographic\\_parity\\_difference | 0.12 | 0.13 |" in md
    assert "| size | small | selection\\_rate | 0.53 |" in md
    assert re.search(r"\| drift\\_share \| firing \| warning \|", md)
    assert "| production | rollback | 2 | 1 | reviewer | back to version 1 |" in md
    assert "a → models:/breast-cancer@production, b → models:/breast-cancer@challenger" in md
    importance = mv.manifest["importance"]["features"]
    top = next(iter(importance))
    escaped = top.replace("_", "\\_")
    assert f"| {escaped} | {importance[top]:.4g} |" in md


def test_a_version_without_monitoring_says_what_is_missing(
    demo_vigil: Vigil, tmp_path: Path
) -> None:
    """The challenger: no card facts, no windows, no fairness: each section says how."""
    html, md = _card(tmp_path, "models:/breast-cancer@challenger")
    empty = re.findall(r'<section class="card empty" id="(\w+)"', html)
    assert empty == ["overview", "metrics", "fairness", "monitoring"]
    assert "Fairness is not configured for this model" in md
    assert "vigil model edit models:/breast-cancer/2 --purpose TEXT" in md
    assert "No monitoring window has been computed for this version yet" in md


def test_edited_facts_are_audited_and_escaped(demo_vigil: Vigil, tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script> **bold** | [x](javascript:y)\n# heading"
    result = runner.invoke(
        app, ["model", "edit", "models:/breast-cancer/1", "--owner", hostile, "--json"]
    )
    assert result.exit_code == 0, result.output
    (event, *_) = demo_vigil.registry.audit("breast-cancer")
    assert event.action == "update_card"
    assert event.before == {"owner": CARD["owner"]} and event.after == {"owner": hostile}
    html, md = _card(tmp_path)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold** | [x](javascript:y)" in html
    assert (
        "- **Owner:** &lt;script&gt;alert(1)&lt;/script&gt; \\*\\*bold\\*\\* \\| \\[x\\](javascript:y)  \n  \\# heading"
        in md
    )
    shown = runner.invoke(app, ["model", "show", "models:/breast-cancer/1"], env={"COLUMNS": "300"})
    assert "owner" in shown.stdout and "<script>alert(1)</script>" in shown.stdout


def test_bad_uris_are_one_line_errors(demo_vigil: Vigil) -> None:
    """One real process for the one-line rule (``vigil.cli.main``); the other refusals
    through the same function, without a process each."""
    from vigil.card import gather
    from vigil.errors import VigilError

    env = {**os.environ, "VIGIL_HOME": str(demo_vigil.settings.home)}
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "card", "models:/nope/1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'nope'" in lines[0], done.stderr
    for uri, message in [
        ("models:/breast-cancer@gone", "has no alias 'gone'"),
        ("models:/breast-cancer/9", "version 9"),
        ("s3://bucket/model", "invalid model URI"),
    ]:
        with pytest.raises(VigilError) as caught:
            gather(demo_vigil, uri)
        assert message in caught.value.message and "\n" not in caught.value.message, uri
