"""The HTML page: self-contained, escaped, numbers embedded as JSON, one chart per feature."""

from __future__ import annotations

import json
import re
from html import escape

from tests.report._data import ODD_NAME, frames

from vigil.drift import DriftReport, compare
from vigil.report import chart_distributions, render_html
from vigil.report.tables import is_categorical_type


def _page(title: str = "Drift <report>") -> tuple[str, DriftReport]:
    ref, cur = frames(n=1500)
    report = compare(ref, cur)
    cats = {c.column for c in report.columns if c.kind == "categorical"}
    r, c = chart_distributions(
        {k: ref[k].to_numpy() for k in ref}, {k: cur[k].to_numpy() for k in cur}, cats
    )
    return render_html(report, r, c, title=title, target=report.column("label")), report


def test_page_is_self_contained() -> None:
    page, _ = _page()
    # The only URL is the SVG namespace: no CDN, no fonts, no external scripts or images.
    assert re.findall(r"https?://[^\"' )]+", page) == ["http://www.w3.org/2000/svg"] * 5
    assert "<link" not in page and "src=" not in page and "@import" not in page


def test_user_strings_are_escaped() -> None:
    page, _ = _page(title="<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert ODD_NAME not in page  # raw, it would open a <b> element
    assert f'data-column="{escape(ODD_NAME)}"' in page
    # Inside the JSON block the name is \u-escaped, never a raw '<'.
    block = re.search(r'id="vigil-data">(.*?)</script>', page, re.S)
    assert block is not None and "<" not in block.group(1)


def test_embedded_json_holds_the_report_numbers() -> None:
    page, report = _page()
    block = re.search(r'<script type="application/json" id="vigil-data">(.*?)</script>', page, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    assert data["report"] == json.loads(json.dumps(report.to_dict()))
    assert data["target"]["column"] == "label"
    assert set(data["charts"]) == {"age", "income", "plan", ODD_NAME, "label"}


def test_one_chart_per_feature_and_the_verdict_first() -> None:
    page, _ = _page()
    charts = re.findall(r'<svg class="chart" data-column="([^"]*)"', page)
    assert charts == [escape(n) for n in ("age", "plan", "income", ODD_NAME, "label")]
    assert page.index('id="verdict"') < page.index('id="features"') < page.index("<svg")
    assert 'data-drifted="false"' in page and "2</strong> of 5 compared columns drifted" in page
    headline = re.search(r'<p class="headline">(.*?)</p>', page)
    assert headline is not None
    assert headline.group(1) == (
        "No dataset drift: 2 of 5 columns (40%) drifted; the verdict needs ≥ 50%"
    )
    rows = re.findall(r'<tr data-column="([^"]*)" class="(drifted|stable)"', page)
    assert rows[:2] == [("age", "drifted"), ("plan", "drifted")]


def test_arrow_kinds() -> None:
    import pyarrow as pa

    assert is_categorical_type(pa.string()) and is_categorical_type(pa.bool_())
    assert is_categorical_type(pa.dictionary(pa.int8(), pa.string()))
    assert not is_categorical_type(pa.int64()) and not is_categorical_type(pa.float32())
