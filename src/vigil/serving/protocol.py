"""uvicorn's httptools protocol, answering each response with one write instead of two.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body on ``http.response.body``: two ``write`` system
calls and two TCP segments for every small JSON answer, which on the serving hot path
cost more than the app's own routing. :class:`HttpToolsProtocol` here is uvicorn's, with
one change: the head of a response is held until the first body message and written with
it. Everything else (parsing, keep-alive, pipelining, flow control, ``100 Continue``,
shutdown and the supervisor's bookkeeping) is uvicorn's own, unchanged.

uvicorn imports nothing of this module's at start-up: :func:`vigil.serving.server.config`
imports it only when it builds a server.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http import httptools_impl


class _Written:
    """Stands in for the transport while uvicorn's ``send`` runs: keeps what it writes
    and whether it asked to close, for the caller to pass on in one write."""

    __slots__ = ("closed", "parts", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info...: the real one's
        return getattr(self.transport, name)


class ResponseCycle(httptools_impl.RequestResponseCycle):
    """One request's ASGI cycle whose response head waits for the first body message."""

    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.response_started:
            self._head = b"".join((await self._send_through(message)).parts)
            return
        head = self._head
        if head is None or kind != "http.response.body":
            await super().send(message)
            return
        self._head = None
        written = await self._send_through(message)
        if self.disconnected:  # the client went away: uvicorn wrote nothing either
            return
        transport = self.transport
        transport.write(head + b"".join(written.parts) if written.parts else head)
        if written.closed:
            transport.close()

    async def _send_through(self, message: Any) -> _Written:
        transport = self.transport
        written = _Written(transport)
        self.transport = written  # type: ignore[assignment]  # it answers what send uses
        try:
            await super().send(message)
        finally:
            self.transport = transport
        return written


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol whose requests run as :class:`ResponseCycle`."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # uvicorn built a new cycle (not an upgrade) whose task has not started yet: it
        # looks up `send` when it does, so the class can still change.
        if cycle is not before and type(cycle) is httptools_impl.RequestResponseCycle:
            cycle.__class__ = ResponseCycle
