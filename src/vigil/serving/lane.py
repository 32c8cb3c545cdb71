"""The fast lane: a plain prediction answered without an ASGI cycle or a task of its own.

Most requests a model server answers are the same plain case: ``POST`` one record of
float features to a model's native predict route, as JSON, nothing else asked. Through
ASGI each one costs the server a scope, an ASGI cycle, a task and its coroutines, two
message dicts and the response head built from a header list, and the app a
:class:`~vigil.serving.http.Request`, the route's handler and the data plane's coroutine:
more than the prediction itself (see ``docs/benchmarks.md``, "Hot path").

:class:`FastLane` answers that case from the HTTP protocol's own callback
(:mod:`vigil.serving.protocol`), once a request's whole body is in: it checks what the app
checks (route, ``Host``, media type, body size, the body's shape, the validator's fused
check of one record), queues the record with its model's batch through
:meth:`~vigil.serving.data plane.DataPlane.submit_one` (logged with its batch as any
prediction), and answers from the batch's future. It takes nothing else: whenever a check
does not pass (an API key that its cache has not admitted included), or the server runs
with what the lane does not do (tracing, the access log, a drain under way), it declines *before doing anything*, and the request goes
through the ASGI app as usual, which then judges it, errors included. So every error, and
every answer but the plain one, still comes from one place (:class:`~vigil.serving.app.
ServingApp`); the lane's answers are the same bytes the app would send
(``tests/serving/test_lane.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import orjson

from vigil.errors import VigilError
from vigil.serving.codecs import native
from vigil.serving.dataplane import request_id_from
from vigil.serving.executors import INLINE_BODY_BYTES
from vigil.serving.http import JSON, Request, Response, Route, Router, media_type
from vigil.serving.problems import SHUTTING_DOWN, error_response

if TYPE_CHECKING:
    from vigil.auth.authenticator import Authenticator
    from vigil.auth.keys import Principal
    from vigil.serving.batching import BatchResult
    from vigil.serving.dataplane import DataPlane
    from vigil.serving.guards import HostGuard
    from vigil.serving.metrics import RequestTally
    from vigil.serving.provider import ServedModel

Answer = Callable[[int, bytes, bytes], None]
"""``answer(status, headers, body)``: the protocol writes the response, ``headers`` being
its header lines after the server's own (each ending in CRLF)."""

_PATHS_KEPT = 1024
_PATH_KEPT_CHARS = 256
_PLAIN_KEYS = frozenset(("instances", "inputs", "return_proba"))
_PLAIN_HEAD = b"content-type: " + JSON + b"\r\ncontent-length: %d\r\nx-request-id: %s\r\n"


class _Entry:
    """A path the lane answers: its route, and the model name and selector in it."""

    __slots__ = ("name", "route", "selector")

    def __init__(self, route: Route, name: str, selector: str | None) -> None:
        self.route = route
        self.name = name
        self.selector = selector


class FastLane:
    """Answers plain native predictions over ``dataplane`` (see the module's docstring).

    ``router`` matches paths as the app does, ``tally`` counts requests as the app does
    (``None``: metrics off), ``hosts`` is the app's ``Host`` guard (``None``: any),
    ``authenticator`` its API-key checks (``None``: off; the lane takes a key its cache
    admits, and leaves any other to the app) and ``failed`` the app's own answer to a request that raised (after it was queued: the
    model failed, the log could not be written)."""

    def __init__(
        self,
        dataplane: DataPlane,
        router: Router,
        tally: RequestTally | None,
        hosts: HostGuard | None,
        authenticator: Authenticator | None,
        failed: Callable[[Route, Request, Exception], Awaitable[Response]],
    ) -> None:
        self._dataplane = dataplane
        self._authenticator = authenticator
        self._router = router
        self._tally = tally
        self._hosts = hosts
        self._failed = failed
        self._readiness = dataplane.readiness
        self._limit = min(dataplane.settings.max_body_bytes, INLINE_BODY_BYTES)
        self._paths: dict[str, _Entry | None] = {}
        """Paths seen so far and what they are (``None``: not the lane's), at most
        :data:`_PATHS_KEPT` of them."""

    def offer(
        self, path: str, headers: list[tuple[bytes, bytes]], body: bytearray, answer: Answer
    ) -> asyncio.Future[BatchResult] | None:
        """Take the ``POST`` to ``path`` with ``headers`` and ``body`` (all of it): queue it and
        return its batch's future (``answer`` is called once it is answered), or ``None``,
        having done nothing, when it is not the plain case."""
        started = perf_counter()
        if len(body) > self._limit or self._readiness.draining:
            return None
        entry = self._paths.get(path, _UNSEEN)
        if entry is _UNSEEN:
            entry = self._learn(path)
        if entry is None:
            return None
        content_type = request_id = host = authorization = None
        for key, value in headers:
            if key == b"content-type":
                content_type = value
            elif key == b"x-request-id":
                request_id = value
            elif key == b"host":
                host = value
            elif key == b"authorization":
                authorization = value
            elif key == b"origin" or key == b"inference-header-content-length":
                return None  # checks the app makes: rare on this route, left to it
        hosts = self._hosts
        if hosts is not None and host is not None and host not in hosts.admitted:
            return None
        route = entry.route
        caller: Principal | None = None
        if self._authenticator is not None:
            assert route.role is not None
            caller = self._authenticator.cached(authorization, route.role)
            if caller is None:
                return None  # a key to look up, or to refuse: the app does
        if (
            content_type is not None
            and content_type != b"application/json"
            and media_type(content_type.decode("latin-1")) != "application/json"
        ):
            return None  # no type is taken as JSON on a prediction, as the app takes it
        payload = _plain_payload(body)
        if payload is None:
            return None
        try:
            table, want_proba = native.decode(payload)
            served = self._dataplane.model(entry.name, entry.selector)
        except VigilError:
            return None
        rid = request_id_from(None if request_id is None else request_id.decode("latin-1"))
        key_id = None if caller is None else caller.key_id
        future = self._dataplane.submit_one(
            served, getattr(table, "rows", None), want_proba, rid, route.name, started, key_id
        )
        if future is None:
            return None
        tally = self._tally
        if tally is not None:
            tally.started()

        def answered(done: asyncio.Future[BatchResult]) -> None:
            self._answered(
                done, route, served, want_proba, rid, started, path, headers, body, caller, answer
            )

        future.add_done_callback(answered)
        return future

    def _learn(self, path: str) -> _Entry | None:
        entry: _Entry | None = None
        try:
            route, params = self._router.match("POST", path)
        except VigilError:
            return None  # not remembered: the app answers it (404, 405)
        if route.handler is native.predict:
            selector = params.get("version") or (
                ("@" + params["alias"]) if "alias" in params else None
            )
            entry = _Entry(route, params["name"], selector)
        if len(path) <= _PATH_KEPT_CHARS:
            if len(self._paths) >= _PATHS_KEPT:
                self._paths.clear()
            self._paths[path] = entry
        return entry

    def _answered(
        self,
        done: asyncio.Future[BatchResult],
        route: Route,
        served: ServedModel,
        want_proba: bool,
        rid: str,
        started: float,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytearray,
        caller: Principal | None,
        answer: Answer,
    ) -> None:
        if not done.cancelled() and done.exception() is None:
            result = done.result()
            proba = result.probabilities if want_proba else None
            content = native.encode(rid, served, result.predictions, proba)
            # The app's headers for this answer (content type, length, request id), in its
            # order, formatted at once.
            answer(200, _PLAIN_HEAD % (len(content), rid.encode()), content)
            if self._tally is not None:
                self._tally.answered(
                    route.name, served.name, served.version_label, 200, perf_counter() - started
                )
            return
        # A failure after the request was queued (the model raised, the log could not be
        # written) or the drain's deadline: answered by the app, as it answers any.
        request = Request("POST", path, {}, None, rid, bytes(body), headers, None, b"", "http")
        request.route, request.model, request.version = (
            route.name,
            served.name,
            served.version_label,
        )
        if caller is not None:
            request.key_id, request.key_role = caller.key_id, caller.role
        asyncio.get_running_loop().create_task(self._fail(done, route, request, started, answer))

    async def _fail(
        self,
        done: asyncio.Future[BatchResult],
        route: Route,
        request: Request,
        started: float,
        answer: Answer,
    ) -> None:
        exc = done.exception() if not done.cancelled() else None
        if exc is None:  # cancelled: only the drain does, once its deadline ran out
            response = error_response(route.style, SHUTTING_DOWN, request.request_id)
        else:
            response = await self._failed(
                route, request, exc if isinstance(exc, Exception) else RuntimeError(exc)
            )
        self._reply(answer, response)
        if self._tally is not None:
            self._tally.answered(
                route.name,
                request.model,
                request.version,
                response.status,
                perf_counter() - started,
            )

    @staticmethod
    def _reply(answer: Answer, response: Response) -> None:
        lines = [
            b"content-type: ",
            response.content_type,
            b"\r\ncontent-length: ",
            str(len(response.body)).encode(),
            b"\r\n",
        ]
        for name, value in response.headers or ():
            lines += (name, b": ", value, b"\r\n")
        answer(response.status, b"".join(lines), response.body)


def _plain_payload(body: bytearray) -> dict[str, Any] | None:
    """The body's JSON object when it is one with nothing but the plain case's keys."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(payload) is not dict or not _PLAIN_KEYS.issuperset(payload):
        return None
    return payload


_UNSEEN: Any = object()
