"""What ``/readyz`` answers: loading, ready, draining, or a dependency down.

An orchestrator sends traffic to a worker while ``/readyz`` answers 200. It answers 503

* ``loading`` until every model is loaded and warmed;
* ``draining`` from the moment the worker is told to stop (see :mod:`vigil.serving.drain`);
* ``unavailable`` while a dependency (the database, the artifact store, Redis) has been
  failing for longer than the grace period; the body names it and says why.

Dependencies are checked in the background, each on a daemon thread of its own with a
timeout, every ``readiness_interval`` seconds: the probe itself only reads the last
results, so it stays cheap however often it comes and however slowly a dependency fails,
and a hung check never holds the event loop or the process's exit. A dependency counts
as down only once every check of it has failed for ``readiness_grace`` seconds, so a blip
or a database failover does not empty a Service of every replica at once. ``/livez``
never looks at dependencies: restarting a worker does not bring a database back.

>>> r = Readiness({"database": lambda: None}, grace=0)
>>> r.answer(ready=True, models=2)
(200, {'status': 'ready', 'models': 2})
>>> r.record("database", RuntimeError("connection refused"), now=10.0)
>>> r.answer(ready=True, models=2, now=10.0)
(503, {'status': 'unavailable', 'models': 2, 'failing': {'database': 'connection refused'}})
>>> r.begin_drain(); r.answer(ready=True, models=2)[1]["status"]
'draining'

Every protocol's readiness probe asks the same question (:meth:`Readiness.takes_traffic`):
the v2 ``/v2/health/ready`` and model-ready routes, gRPC's ``ServerReady`` and
``ModelReady``, and the standard ``grpc.health.v1.Health`` service answer "not ready"
exactly when ``/readyz`` answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vigil.errors import require

log = logging.getLogger("vigil.serving")

Check = Callable[[], object]
"""Uses a dependency once (a ``SELECT 1``, a ``PING``); raises when it cannot."""


@dataclass
class _State:
    failing_since: float | None = None
    error: str | None = None
    running: asyncio.Future[BaseException | None] | None = None


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message).strip().splitlines()[0][:300]


class Readiness:
    """The readiness of one worker: models loaded, not draining, dependencies reachable.

    Parameters
    ----------
    checks
        ``{name: check}``: each check uses its dependency once and raises when it cannot.
    interval
        Seconds between two checks of each dependency.
    timeout
        Seconds a check may take before it counts as failed (its thread is left to end).
    grace
        Seconds a dependency must keep failing before ``/readyz`` answers 503 for it.
    """

    def __init__(
        self,
        checks: Mapping[str, Check] | None = None,
        *,
        interval: float = 2.0,
        timeout: float = 1.0,
        grace: float = 6.0,
    ) -> None:
        self.checks = dict(checks or {})
        self.interval = interval
        self.timeout = timeout
        self.grace = grace
        self.draining = False
        """Set once the worker was told to stop: ``/readyz`` answers 503 from then on."""
        self._states = {name: _State() for name in self.checks}
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Readiness(checks={sorted(self.checks)}, grace={self.grace})"

    def begin_drain(self) -> None:
        """From now on, ``/readyz`` answers 503 ``draining`` (safe in a signal handler)."""
        self.draining = True

    # -- the answer ------------------------------------------------------------------------

    def record(self, name: str, error: BaseException | None, *, now: float | None = None) -> None:
        """Note the outcome of one check of ``name`` (``None``: it succeeded)."""
        state = self._states[name]
        if error is None:
            if state.failing_since is not None:
                log.warning("readiness: %s is reachable again", name)
            state.failing_since, state.error = None, None
            return
        if state.failing_since is None:
            state.failing_since = time.monotonic() if now is None else now
            log.warning("readiness: %s check failed: %s", name, _reason(error))
        state.error = _reason(error)

    def failing(self, *, now: float | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """``(down, degraded)``: the dependencies failing past the grace period, and those
        failing within it, each with the reason of its last failure."""
        now = time.monotonic() if now is None else now
        down: dict[str, str] = {}
        degraded: dict[str, str] = {}
        for name, state in self._states.items():
            if state.failing_since is None:
                continue
            seconds = now - state.failing_since
            reason = state.error or "failing"
            if seconds >= self.grace:
                down[name] = reason
            else:
                degraded[name] = f"failing for {seconds:.1f} s: {reason}"
        return down, degraded

    def answer(
        self, *, ready: bool, models: int, now: float | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The status and body of ``/readyz``."""
        if self.draining:
            return 503, {"status": "draining"}
        if not ready:
            return 503, {"status": "loading"}
        down, degraded = self.failing(now=now)
        # The number of model versions served: 0 is ready but useless, which the ready
        # line of `vigil serve` turns into a warning.
        if down:
            return 503, {"status": "unavailable", "models": models, "failing": down}
        body: dict[str, Any] = {"status": "ready", "models": models}
        if degraded:
            body["degraded"] = degraded
        return 200, body

    def takes_traffic(self, *, ready: bool) -> bool:
        """Whether ``/readyz`` answers 200 now (``ready``: the models are loaded): not
        draining, no dependency down past the grace period.

        >>> r = Readiness(); r.takes_traffic(ready=True), r.takes_traffic(ready=False)
        (True, False)
        >>> r.begin_drain(); r.takes_traffic(ready=True)
        False
        """
        return self.answer(ready=ready, models=0)[0] == 200

    # -- the background checks ---------------------------------------------------------------

    async def start(self) -> None:
        """Check every dependency once, then keep checking them in the background."""
        if not self.checks or self._task is not None:
            return
        await self.check_all()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_all()
            except Exception:  # a bug here must not end the checks for good
                log.exception("readiness checks failed")

    async def check_all(self) -> None:
        """Run every check once (at most ``timeout`` seconds) and record the outcomes."""
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._check(name) for name in names))
        for name, error in zip(names, outcomes, strict=True):
            self.record(name, error)

    async def _check(self, name: str) -> BaseException | None:
        state = self._states[name]
        if state.running is None or state.running.done():
            state.running = _on_daemon_thread(self.checks[name], f"vigil-ready-{name}")
        # else: the previous check still hangs; wait on it rather than start another.
        try:
            return await asyncio.wait_for(asyncio.shield(state.running), self.timeout)
        except TimeoutError:
            return TimeoutError(f"no answer within {self.timeout:g} s")


def _on_daemon_thread(check: Check, name: str) -> asyncio.Future[BaseException | None]:
    """Run ``check`` on a new daemon thread (one that hangs cannot hold the process's
    exit, as a pool's thread would); the future holds what it raised, or ``None``."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[BaseException | None] = loop.create_future()

    def settle(outcome: BaseException | None) -> None:
        if not future.done():
            future.set_result(outcome)

    def run() -> None:
        outcome: BaseException | None = None
        try:
            check()
        except BaseException as exc:  # every failure is an answer, not a crash
            outcome = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def redis_check(url: str, timeout: float) -> Check:
    """A check that PINGs the Redis at ``url`` over a connection of its own."""
    redis = require("redis", "redis")
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
    )

    def ping() -> object:
        return client.ping()

    return ping
