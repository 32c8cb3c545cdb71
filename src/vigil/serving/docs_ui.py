"""``/docs``: the interactive OpenAPI UI (Swagger UI, "try it out"), served offline.

The Swagger UI assets come from a maintained package that ships them (``fastapi-offline``,
in the ``serve`` extra): they are read from its installed files, without importing it or
FastAPI, once per worker on first use, and served from this server's own origin, so the
page works with no network and loads nothing from a CDN. The page's script is a file too
(no inline script), which lets its Content-Security-Policy allow scripts from this origin
only. Without the package, ``/docs`` is the plain list of operations (it is also the page's
``<noscript>`` content) with the line that installs it.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.version import VERSION

if TYPE_CHECKING:
    from vigil.serving.http import Route

DISTRIBUTION = "fastapi-offline"
_STATIC = "fastapi_offline/static"
ASSETS: dict[str, tuple[str, bytes]] = {
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", b"text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui.css", b"text/css; charset=utf-8"),
    "favicon.png": ("favicon.png", b"image/png"),
}
"""``/docs/{asset}`` name → (file in the package, content type)."""

INIT_JS = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
};
"""


def _file(name: str) -> Path | None:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"{_STATIC}/{name}")))
    return path if path.is_file() else None


def available() -> bool:
    """Whether the Swagger UI assets are installed."""
    return _file("swagger-ui-bundle.js") is not None


@cache
def asset(name: str) -> tuple[bytes, bytes] | None:
    """``(body, content type)`` of ``/docs/{name}``, or ``None`` if there is no such asset."""
    if name == "init.js":
        return INIT_JS, b"text/javascript; charset=utf-8"
    if name not in ASSETS:
        return None
    filename, content_type = ASSETS[name]
    path = _file(filename)
    return (path.read_bytes(), content_type) if path is not None else None


def _operations(routes: list[Route]) -> str:
    rows = "\n".join(
        f"<tr><td><code>{html.escape(r.method)}</code></td><td><code>{html.escape(r.template)}"
        f"</code></td><td>{html.escape(r.summary)}</td></tr>"
        for r in routes
    )
    return f"<table><tr><th>Method</th><th>Path</th><th>What it does</th></tr>{rows}</table>"


def page(routes: list[Route]) -> str:
    """The ``/docs`` page: Swagger UI when its assets are installed, else the list."""
    title = f"vigil model server {html.escape(VERSION)}"
    listing = (
        f"<h1>{title}</h1>"
        "<p>Machine-readable description: <a href='/openapi.json'>/openapi.json</a></p>"
        f"{_operations(routes)}"
    )
    if not available():
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>vigil API</title>"
            "<style>body{font-family:sans-serif;margin:2em}td{padding:.2em .8em}"
            "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
            f"{listing}<p>For the interactive page, run: pip install 'vigil[serve]'</p>"
            "</body></html>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title>"
        "<link rel='icon' type='image/png' href='/docs/favicon.png'>"
        "<link rel='stylesheet' href='/docs/swagger-ui.css'></head><body>"
        f"<div id='swagger-ui'></div><noscript>{listing}</noscript>"
        "<script src='/docs/swagger-ui-bundle.js'></script>"
        "<script src='/docs/init.js'></script>"
        "</body></html>"
    )
