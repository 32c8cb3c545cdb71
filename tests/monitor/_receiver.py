"""A real webhook receiver: an HTTP server on a loopback port, in a thread, recording bodies."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests._waiting import wait_for


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    content_type: str
    host: str = ""
    authorization: str = ""


@dataclass
class Receiver:
    """Answers ``fail_first`` calls with ``fail_status``, then 200; records every body."""

    fail_first: int = 0
    fail_status: int = 503
    calls: int = 0
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.calls += 1
                    failing = receiver.calls <= receiver.fail_first
                    if not failing:
                        receiver.received.append(
                            Received(
                                self.path,
                                json.loads(raw),
                                self.headers.get("content-type", ""),
                                self.headers.get("host", ""),
                                self.headers.get("authorization", ""),
                            )
                        )
                self.send_response(receiver.fail_status if failing else 200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def wait_calls(self, n: int) -> list[Received]:
        """The calls received, once there are at least ``n``."""

        def enough() -> list[Received]:
            with self._lock:
                return list(self.received) if len(self.received) >= n else []

        return wait_for(enough, what=f"{n} webhook call(s)")
