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

import asyncio
import types
from functools import partial
from typing import Any

from uvicorn.protocols.http import httptools_impl

from vigil.serving.executors import INLINE_BODY_BYTES


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
    ``RequestResponseCycle``.

    When the app has a fast lane (:mod:`vigil.serving.lane`), a ``POST`` is offered to it
    once its whole body is in, instead of starting the app's ASGI task: the lane answers a
    plain prediction from its batch's future with one write, and declines anything else,
    which then runs through the app as usual (its body already read). A request the lane
    holds is in the server's task set as its future, so the drain waits for it (and at its
    deadline cancels it, answered 503) as it waits for a task; pipelining, keep-alive and
    the response's completion go through uvicorn's own cycle and callbacks."""

    on_headers_complete = _with_names(
        httptools_impl.HttpToolsProtocol.on_headers_complete, RequestResponseCycle=ResponseCycle
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lane: Any = getattr(self.app, "lane", None)
        self._waiting: httptools_impl.RequestResponseCycle | None = None
        """A ``POST`` for the lane whose body is still coming in."""
        self._defaults: tuple[list[tuple[bytes, bytes]], bytes] = ([], b"")
        """The server's default header lines (its ``date``, renewed each second), joined
        once per list."""
        self._idle_since: float | None = None
        """When the last response left with nothing after it (``None``: busy)."""
        self._idle_timer: asyncio.TimerHandle | None = None

    # The keep-alive timeout: one timer a connection that checks how long it has been idle
    # when it fires, where uvicorn's own starts a timer after every response and cancels
    # it at the next request's first bytes (two timer operations on every request).

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next pipelined request, now that this one is answered
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy: the answer in progress re-arms it
        remaining = idle_since + self.timeout_keep_alive - self.loop.time()
        if remaining > 0:
            self._idle_timer = self.loop.call_later(remaining, self._idle_check)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if (
            self._lane is not None
            and app is self.app  # not uvicorn's 503 for too many connections
            and cycle.scope["method"] == "POST"
            and not cycle.waiting_for_100_continue
        ):
            if cycle.more_body:
                self._waiting = cycle  # offered by on_message_complete
                return
            if self._offer(cycle):
                return
        super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        cycle = self._waiting
        if cycle is not None and len(cycle.body) > INLINE_BODY_BYTES:
            # More than the lane takes: the app reads the rest (uvicorn stops reading past
            # its high-water mark until the app's receive resumes it).
            self._waiting = None
            super()._start_asgi_task(cycle, self.app)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self._waiting
        if cycle is not None and cycle is self.cycle:
            self._waiting = None
            if not self._offer(cycle):
                super()._start_asgi_task(cycle, self.app)

    def _offer(self, cycle: Any) -> bool:
        taken = self._lane.offer(
            cycle.scope["path"], cycle.scope["headers"], cycle.body, partial(self._answer, cycle)
        )
        if taken is None:
            return False
        self.tasks.add(taken)
        taken.add_done_callback(self.tasks.discard)
        return True

    def _answer(self, cycle: Any, status: int, headers: bytes, body: bytes) -> None:
        """Write the lane's answer to ``cycle``, as uvicorn's ``send`` would have written
        the same response in one go."""
        if cycle.disconnected:
            return  # the client went away: uvicorn's send writes nothing either
        cycle.response_started = cycle.response_complete = True
        defaults = cycle.default_headers
        if defaults is not self._defaults[0]:
            lines = b"".join(b"%s: %s\r\n" % pair for pair in defaults)
            self._defaults = (defaults, lines)
        close = b"" if cycle.keep_alive else b"connection: close\r\n"
        head = httptools_impl.STATUS_LINE[status] + self._defaults[1] + headers + close
        self.transport.write(b"".join((head, b"\r\n", body)))
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()
