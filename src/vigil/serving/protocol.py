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

import types
from typing import Any

from uvicorn.protocols.http import httptools_impl


class _Held:
    """Stands in for the transport from a response's start to its first body message:
    keeps what uvicorn writes, then :meth:`release` writes it at once. A ``close`` from
    outside a send (the app failed after starting its response) writes what is held and
    closes, as uvicorn would have."""

    __slots__ = ("closed", "parts", "sending", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.parts: list[bytes] = []
        self.closed = False
        self.sending = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True
        if not self.sending:
            self._flush(disconnected=False)

    def release(self, cycle: httptools_impl.RequestResponseCycle) -> None:
        """Put the real transport back on ``cycle`` and pass on what was held."""
        cycle.transport = self.transport
        self._flush(disconnected=cycle.disconnected)

    def _flush(self, *, disconnected: bool) -> None:
        parts, self.parts = self.parts, []
        if parts and not disconnected:  # a client gone: uvicorn writes nothing either
            self.transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
        if self.closed:
            self.transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info...: the real one's
        return getattr(self.transport, name)


class ResponseCycle(httptools_impl.RequestResponseCycle):
    """One request's ASGI cycle whose response head waits for the first body message."""

    async def send(self, message: Any) -> None:
        held: Any = self.transport  # the real transport, or the _Held standing in for it
        if type(held) is _Held:  # the first message after the start: out with the head
            held.sending = True
            try:
                await super().send(message)
            finally:
                held.release(self)
        elif message["type"] == "http.response.start" and not self.response_started:
            held = _Held(held)
            held.sending = True
            self.transport = held  # it answers what uvicorn's send uses of a transport
            try:
                await super().send(message)
            except BaseException:
                held.release(self)
                raise
            held.sending = False
        else:
            await super().send(message)


def _with_names(function: Any, **names: Any) -> Any:
    """``function`` itself (its code, unchanged) seeing ``names`` in place of the
    module-level names of its module: no copy of its source, and nothing patched."""
    return types.FunctionType(
        function.__code__,
        {**function.__globals__, **names},
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol whose requests run as :class:`ResponseCycle`: its own
    ``on_headers_complete``, building a :class:`ResponseCycle` where it built a
    ``RequestResponseCycle``."""

    on_headers_complete = _with_names(
        httptools_impl.HttpToolsProtocol.on_headers_complete, RequestResponseCycle=ResponseCycle
    )
