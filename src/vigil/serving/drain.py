"""Graceful shutdown for orchestrators: uvicorn's server, draining as Kubernetes expects.

On SIGTERM a worker

1. answers ``/readyz`` with 503 ``draining`` at once, and closes the connection after
   every answer (:meth:`~vigil.serving.app.ServingApp.begin_drain`);
2. keeps accepting and answering requests for ``shutdown_delay`` seconds, the time a load
   balancer or Kubernetes' endpoint controller takes to stop routing to it (connections
   still arriving then are served, not refused);
3. closes its listening socket and idle connections, and waits up to ``drain_timeout``
   seconds for every request it holds, in flight or queued for a micro-batch, to be
   answered; those still unanswered then get a 503 problem body (``shutting_down``)
   rather than a dropped connection;
4. shuts the app down, which stops the models and closes the live capture segments, so
   every answered prediction is in the inference log;
5. exits with status 0.

SIGINT (Ctrl-C) does the same without the delay; a second SIGINT stops at once. With
several workers, ``vigil serve``'s supervisor passes SIGTERM on to each of them as it
arrives, takes the shared socket out of the listening state once the delay is over (new
connections are refused, as with one worker, rather than held until it exits), and exits
once all have. The ``ServingSettings`` behind both durations
are read from the app (``VIGIL_SERVE_SHUTDOWN_DELAY``, ``VIGIL_SERVE_DRAIN_TIMEOUT``);
any other ASGI app gets uvicorn's ``timeout_graceful_shutdown`` and no delay.

uvicorn is imported at the top: this module is imported only by a process that serves.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess

log = logging.getLogger("vigil.serving")

_ANSWER_WAIT = 5.0
"""Seconds the requests cancelled at the drain deadline get to send their 503."""


def _serving_app(app: Any) -> Any:
    """The app behind uvicorn's wrappers that can drain (``begin_drain``), or ``None``."""
    for _ in range(8):
        if app is None or hasattr(app, "begin_drain"):
            return app
        app = getattr(app, "app", None)
    return None


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the shutdown of this module's docstring."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop_asked: float | None = None
        self._delay = 0.0

    @property
    def app(self) -> Any:
        return _serving_app(getattr(self.config, "loaded_app", None))

    def _durations(self) -> tuple[float, float | None]:
        """``(shutdown_delay, drain_timeout)`` of the app (``None``: no bound)."""
        settings = getattr(self.app, "settings", None)
        if settings is None:
            return 0.0, self.config.timeout_graceful_shutdown
        return float(settings.shutdown_delay), float(settings.drain_timeout)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = self._stop_asked is None and not self.should_exit
        if first:
            self._stop_asked = time.monotonic()
            app = self.app
            if app is not None:
                app.begin_drain()
            delay, timeout = self._durations()
            self._delay = delay if sig == signal.SIGTERM else 0.0
            log.warning(
                "worker received %s: draining (readyz 503; new connections for %g s, then "
                "in-flight requests for up to %s s)",
                signal.Signals(sig).name,
                self._delay,
                "unbounded" if timeout is None else f"{timeout:g}",
            )
        if sig == signal.SIGTERM:
            # Not uvicorn's: it would set should_exit now (no delay) and raise SIGTERM
            # again once stopped, which kills the process with status -15 instead of 0.
            # on_tick sets should_exit once the delay is over.
            return
        super().handle_exit(sig, frame)  # SIGINT: stop now; a second one forces it

    async def on_tick(self, counter: int) -> bool:
        if (
            self._stop_asked is not None
            and not self.should_exit
            and time.monotonic() - self._stop_asked >= self._delay
        ):
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.app
        if app is not None:
            app.begin_drain()  # also when stopping for another reason (max requests)
        _, timeout = self._durations()
        for server in self.servers:
            server.close()  # no new connection
        for sock in sockets or []:
            sock.close()
        # Idle keep-alive connections close now; busy ones after their answer.
        for connection in list(self.server_state.connections):
            connection.shutdown()
        state = self.server_state
        deadline = None if timeout is None else time.monotonic() + timeout
        while state.tasks and not self.force_exit:
            if deadline is not None and time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        if state.tasks and not self.force_exit:
            log.error(
                "drain timeout of %g s ran out with %d request(s) unanswered: answering 503",
                timeout,
                len(state.tasks),
            )
            if app is not None:
                app.expire()
            for task in list(state.tasks):
                task.cancel()
            waited = time.monotonic() + _ANSWER_WAIT
            while state.tasks and not self.force_exit and time.monotonic() < waited:
                await asyncio.sleep(0.01)
        # Let the last answers leave before their connections are dropped.
        waited = time.monotonic() + _ANSWER_WAIT
        while state.connections and not self.force_exit and time.monotonic() < waited:
            await asyncio.sleep(0.01)
        for connection in list(state.connections):
            connection.transport.close()
        if not self.force_exit:
            await self.lifespan.shutdown()  # stops models and closes the capture segments


class DrainingProcess(multiprocess.Process):
    """One worker of uvicorn's supervisor, running :class:`DrainingServer`."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


def use_draining_workers() -> None:
    """Make uvicorn's supervisor start :class:`DrainingProcess` workers.

    Its methods build workers from the ``Process`` of their own module (at start, when one
    dies, on SIGHUP and SIGTTIN), with no way to pass another class; this process only
    supervises vigil's workers, so the name is pointed at ours.
    """
    multiprocess.Process = DrainingProcess  # type: ignore[misc]
