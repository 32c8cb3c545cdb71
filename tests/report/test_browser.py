"""The HTML report in a real headless Chromium: scripts run, table sorts, charts render."""

from __future__ import annotations

import re
import struct
import subprocess
from html import escape
from pathlib import Path

import pytest
from tests._chromium import chromium
from tests.report._capture import FEATURES, CaptureHome
from tests.report._data import ODD_NAME, write_pair
from typer.testing import CliRunner

from vigil.cli import app

pytestmark = pytest.mark.browser


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return chromium(args, profile, window="1280,2000")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("browser")
    ref, cur = write_pair(directory)
    html = directory / "report.html"
    result = CliRunner().invoke(app, ["drift", str(ref), str(cur), "--html", str(html)])
    assert result.exit_code == 0, result.output
    return html


def _body(dom: str) -> str:
    match = re.search(r"<body[^>]*>", dom)
    assert match is not None, dom[:500]
    return match.group(0)


def _rows(dom: str) -> list[str]:
    return re.findall(r'<tr data-column="([^"]*)"', dom)


def test_page_runs_its_script_and_draws_every_chart(report_html: Path, tmp_path: Path) -> None:
    dom = _run(["--dump-dom", report_html.as_uri()], tmp_path / "profile").stdout
    body = _body(dom)
    assert 'data-ready="1"' in body and "data-error" not in body, body
    assert 'data-charts="5"' in body
    names = ["age", "plan", "income", ODD_NAME, "label"]
    charts = re.findall(r'<svg class="chart" data-column="([^"]*)"', dom)
    assert charts == [escape(n, quote=False).replace('"', "&quot;") for n in names]
    # Every chart has bars for both sides, axes and a legend.
    for svg in re.findall(r"<svg class=\"chart\".*?</svg>", dom, re.S):
        assert svg.count('class="bar reference"') >= 2 and svg.count('class="bar current"') >= 2
        assert "share of rows" in svg and "reference (n=3,000)" in svg
    assert _rows(dom)[:2] == ["age", "plan"]


def test_table_sorts_from_the_embedded_data(report_html: Path, tmp_path: Path) -> None:
    by_name = _run(["--dump-dom", report_html.as_uri() + "#sort=column:asc"], tmp_path / "p1")
    body = _body(by_name.stdout)
    assert 'data-sort-key="column"' in body and "data-error" not in body
    expected = sorted(["age", "plan", "income", ODD_NAME, "label"])
    assert [
        r.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&quot;", '"')
        for r in _rows(by_name.stdout)
    ] == expected
    assert re.search(r'<th data-key="column"[^>]*aria-sort="ascending"', by_name.stdout)

    by_effect = _run(
        ["--dump-dom", report_html.as_uri() + "#sort=effect_size:asc"], tmp_path / "p2"
    )
    rows = _rows(by_effect.stdout)
    assert rows[0] == "label" and rows[-1] == "age"  # smallest JS first, the age shift last


def test_screenshot_is_a_real_picture(report_html: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    _run([f"--screenshot={png}", report_html.as_uri()], tmp_path / "profile")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert len(data) > 50_000  # a blank page compresses to a few KiB


def test_capture_report_renders_with_a_screenshot(
    use_capture_home: CaptureHome, tmp_path: Path
) -> None:
    """``vigil report``'s page: script ran, five charts drawn (four features and the model
    output), the prediction verdict shown, and a real screenshot written."""
    html = tmp_path / "capture-report.html"
    result = CliRunner().invoke(
        app, ["report", "models:/churn@production", "--html", str(html), "--json"]
    )
    assert result.exit_code == 0, result.output
    dom = _run(["--dump-dom", html.as_uri()], tmp_path / "profile").stdout
    body = _body(dom)
    assert 'data-ready="1"' in body and "data-error" not in body, body
    assert 'data-charts="5"' in body
    charts = re.findall(r'<svg class="chart" data-column="([^"]*)"', dom)
    assert charts[0] == "prediction" and sorted(charts[1:]) == sorted(FEATURES)
    for svg in re.findall(r"<svg class=\"chart\".*?</svg>", dom, re.S):
        assert svg.count('class="bar reference"') >= 2 and svg.count('class="bar current"') >= 2
        assert "reference (n=3,000)" in svg and "current (n=2,500)" in svg
    assert re.search(r'<p id="prediction-verdict" data-drifted="(true|false)">', dom)
    assert _rows(dom)[:2] == ["age", "plan"]

    png = tmp_path / "capture-report.png"
    _run([f"--screenshot={png}", html.as_uri()], tmp_path / "profile-shot")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2000)
    assert len(data) > 50_000
