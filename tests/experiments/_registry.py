"""For the control-plane tests: a registry of small fake bundles (fast: nothing is fitted)
and a real local webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vigil.app import Vigil
from vigil.settings import load_settings


def vigil_with_models(
    home: Path, make_bundle: Callable[..., Path], *, database_url: str | None = None
) -> Vigil:
    """A vigil with ``churn`` 1 (production), 2, 3 (challenger) and ``fraud`` 1."""
    settings: dict[str, Any] = {"home": home, "actor": "ada"}
    if database_url is not None:
        settings["database_url"] = database_url
    app = Vigil(load_settings(**settings))
    registry = app.registry
    registry.register_version("churn", make_bundle("churn-1"), alias="production")
    registry.register_version("churn", make_bundle("churn-2"))
    registry.register_version("churn", make_bundle("churn-3"), alias="challenger")
    registry.register_version("fraud", make_bundle("fraud-1"))
    return app


def split_endpoint(name: str = "checkout", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "salt": "pepper",
        "variants": [
            {"name": "a", "model": "models:/churn@production"},
            {"name": "b", "model": "models:/churn/2"},
        ],
        "policy": {"kind": "split", "weights": {"a": 90, "b": 10}},
        **extra,
    }


class WebhookReceiver:
    """An HTTP server on a free loopback port that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
