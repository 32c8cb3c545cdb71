"""The model and endpoint pages in a real headless Chromium (Debian's ``chromium``), rendered
through the stand-in ``base.html``: the DOM Chromium builds holds every chart and cell, and a
screenshot of each page is saved (to ``$VIGIL_UI_SCREENSHOTS`` when set, else the test's
temporary directory)."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import jinja2
import pytest
from tests._chromium import chromium
from tests.ui.pages.conftest import render

from vigil.app import Vigil
from vigil.experiments.config import parse_endpoint
from vigil.experiments.state import SqlPolicyState
from vigil.experiments.store import EndpointStore
from vigil.ui.pages.endpoint import endpoint_view
from vigil.ui.pages.model import model_view

pytestmark = pytest.mark.browser


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_pages_render_inchromium(
    vigil: Vigil, templates: jinja2.Environment, tmp_path: Path
) -> None:
    EndpointStore(vigil).create(
        parse_endpoint(
            {
                "name": "ramp",
                "variants": [
                    {"name": "stable", "model": "models:/churn/1"},
                    {"name": "canary", "model": "models:/churn/2"},
                ],
                "policy": {"kind": "canary", "stable": "stable", "canary": "canary"},
            }
        ),
        actor="ada",
    )
    state = SqlPolicyState(vigil.database)
    state.add("ramp", "stable", requests=950, errors=2, latency_ms=[5.0] * 950)
    state.add("ramp", "canary", requests=50, errors=1, latency_ms=[6.0] * 50)
    window = model_view(vigil, "churn").monitoring.window_ids[1]
    pages = {
        "model": render(templates, "model.html", model_view(vigil, "churn")),
        "model-drift": render(
            templates, "model.html", model_view(vigil, "churn", feature="age", window=str(window))
        ),
        "endpoint": render(templates, "endpoint.html", endpoint_view(vigil, "ramp")),
    }
    out = Path(os.environ.get("VIGIL_UI_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    for name, html in pages.items():
        page = tmp_path / f"{name}.html"
        page.write_text(html, encoding="utf-8")
        dom = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile").stdout
        assert dom.count("<svg") == html.count("<svg") > 0
        if name == "model":
            assert len(re.findall(r'<rect class="cell"', dom)) == 6
        shot = out / f"{name}.png"
        chromium([f"--screenshot={shot}", page.as_uri()], tmp_path / "profile")
        assert _png_size(shot) == (1280, 2400)
