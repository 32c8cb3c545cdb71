"""``/docs``: Swagger UI from an installed package's files, served by this server alone
(no CDN), pointing at ``/openapi.json``; and, in a real Chromium that can reach nothing
but this server, the page draws every operation with its "Try it out" button."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from tests.serving.conftest import SETTINGS, ServerThread, StaticProvider, bundles

from vigil.serving import docs_ui
from vigil.serving.app import create_app
from vigil.serving.routes import ROUTES


@pytest.fixture(scope="module")
def docs_server(models) -> Iterator[ServerThread]:
    with ServerThread(create_app(StaticProvider(bundles(models), settings=SETTINGS))) as server:
        yield server


def _package_file(name: str) -> bytes:
    dist = metadata.distribution(docs_ui.DISTRIBUTION)
    return Path(str(dist.locate_file(f"fastapi_offline/static/{name}"))).read_bytes()


def test_the_page_loads_only_local_assets(docs_server: ServerThread) -> None:
    page = httpx.get(f"{docs_server.url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sources = re.findall(r"(?:src|href)='([^']*)'", page.text)
    assert sources == [
        "/docs/favicon.png",
        "/docs/swagger-ui.css",
        "/openapi.json",  # in the <noscript> list
        "/docs/swagger-ui-bundle.js",
        "/docs/init.js",
    ]
    assert "://" not in page.text  # nothing from another host, no CDN
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert all(r.template in page.text for r in ROUTES)  # readable without scripts too


def test_the_assets_are_the_packaged_swagger_ui(docs_server: ServerThread) -> None:
    for name, kind in (
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon.png", "image/png"),
    ):
        r = httpx.get(f"{docs_server.url}/docs/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].startswith(kind)
        assert r.content == _package_file(name)
        assert r.headers["cache-control"] == "public, max-age=86400"
    init = httpx.get(f"{docs_server.url}/docs/init.js").text
    assert 'url: "/openapi.json"' in init and "tryItOutEnabled: true" in init
    missing = httpx.get(f"{docs_server.url}/docs/../../etc/passwd")
    assert missing.status_code == 404
    assert httpx.get(f"{docs_server.url}/docs/nothing.js").json()["error"] == "not_found"


def test_the_document_declares_the_api_key_scheme(docs_server: ServerThread) -> None:
    doc = httpx.get(f"{docs_server.url}/openapi.json").json()
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    predict = doc["paths"]["/v1/models/{name}/predict"]["post"]
    assert predict["security"] == [{"apiKey": []}]
    assert "security" not in doc["paths"]["/livez"]["get"]


def test_without_the_package_docs_is_the_plain_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docs_ui, "DISTRIBUTION", "no-such-distribution-xyz")
    text = docs_ui.page(ROUTES)
    assert "<script" not in text and "pip install 'vigil[serve]'" in text
    assert all(r.template in text for r in ROUTES)


@pytest.mark.browser
def test_swagger_ui_renders_offline_in_chromium(docs_server: ServerThread, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make test` as root (it installs chromium)")
    dom = subprocess.run(
        [
            chromium,
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            "--disable-background-networking",
            # Every name but this server's address resolves to nothing: offline for real.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{docs_server.url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "swagger-ui" in dom and "vigil model server" in dom, dom[:1000]
    # One block per operation, drawn from /openapi.json by the script.
    drawn = set(re.findall(r'id="operations-[^"]*?-(\w+)"', dom))
    assert {r.name for r in ROUTES} <= drawn, sorted({r.name for r in ROUTES} - drawn)[:10]
    assert "Authorize" in dom  # the API-key button, for "Try it out" with a key
