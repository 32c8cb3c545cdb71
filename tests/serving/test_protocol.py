"""vigil's uvicorn protocol: every response leaves in one write, and uvicorn's behaviour
(keep-alive, pipelining, HEAD, errors after the start, disconnects) is unchanged."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.server import ServerState

from vigil.serving.protocol import HttpToolsProtocol, ResponseCycle
from vigil.serving.server import config, free_port


class _Transport(asyncio.Transport):
    """Records what the protocol writes, one entry per ``write`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _json_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["path"] == "/fail-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("the app failed after starting its response")
    body = b'{"ok":true}'
    if scope["path"] == "/stream":  # two body messages: the head goes with the first
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _serve(data: bytes, *, turns: int = 20) -> _Transport:
    config = Config(_json_app, http=HttpToolsProtocol, lifespan="off", log_level="critical")
    config.load()
    protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.data_received(data)
    for _ in range(turns):
        await asyncio.sleep(0)
    return transport


def test_a_response_is_one_write_of_head_and_body():
    transport = asyncio.run(_serve(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    (written,) = transport.writes
    assert written.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"\r\ncontent-length: 11\r\n" in written
    assert written.endswith(b'\r\n\r\n{"ok":true}')
    assert not transport.closed  # keep-alive as before


def test_pipelined_requests_each_get_one_write_in_order():
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    transport = asyncio.run(_serve(request * 3))
    assert len(transport.writes) == 3
    assert all(w.startswith(b"HTTP/1.1 201") and w.endswith(b"}") for w in transport.writes)


def test_head_answers_the_head_alone():
    transport = asyncio.run(_serve(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"))
    (written,) = transport.writes
    assert written.startswith(b"HTTP/1.1 201") and written.endswith(b"\r\n\r\n")


def test_connection_close_is_honoured_after_the_write():
    transport = asyncio.run(_serve(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert len(transport.writes) == 1 and transport.closed


def test_a_streamed_body_sends_its_head_with_the_first_part():
    transport = asyncio.run(_serve(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"))
    first, second = transport.writes
    assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"2\r\nab\r\n")  # chunked
    assert second == b"2\r\ncd\r\n0\r\n\r\n"


def test_an_app_failing_after_the_start_closes_the_connection():
    transport = asyncio.run(_serve(b"GET /fail-after-start HTTP/1.1\r\nHost: x\r\n\r\n"))
    # As uvicorn: the head it had written, then the connection closes (no complete answer).
    (written,) = transport.writes
    assert written.startswith(b"HTTP/1.1 200") and written.endswith(b"\r\n\r\n")
    assert transport.closed


def test_requests_run_in_the_one_write_cycle():
    seen: list[type] = []
    original = ResponseCycle.send

    async def spy(self: ResponseCycle, message: Any) -> None:
        seen.append(type(self))
        await original(self, message)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ResponseCycle, "send", spy)
        asyncio.run(_serve(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert seen == [ResponseCycle, ResponseCycle]


def test_the_serving_stack_runs_it(client: httpx.Client):
    """The session's real server (vigil.serving.server.config) answers through it, a
    prediction and a 4xx problem body alike."""
    from vigil.serving.server import config

    assert config(_json_app).http is HttpToolsProtocol
    r = client.get("/livez")
    assert r.status_code == 200 and r.json()["status"] == "live"
    r = client.post("/v1/models/nope/predict", json={"instances": []})
    assert r.status_code == 404 and r.json()["error"] == "model_not_found"


def test_an_idle_connection_closes_after_the_keep_alive_timeout_and_a_busy_one_stays():
    """One timer a connection: each answer restarts the idle time it measures."""
    port = free_port()
    server = uvicorn.Server(config(_json_app, port=port, lifespan="off", timeout_keep_alive=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            started = time.monotonic()
            for _ in range(7):  # 3 s of requests half a second apart: past the 2 s timeout
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 201")
                time.sleep(0.5)
            assert time.monotonic() - started > 3
            idle = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server once idle for 2 s
            assert 1.0 < time.monotonic() - idle < 15
    finally:
        server.should_exit = True
        thread.join(timeout=30)
