"""The fast lane: a plain prediction answered without an ASGI cycle or a task of its own.

Most requests a model server answers are the same plain case: ``POST`` one record of
float features to a model's (or an experiment endpoint's) native predict route, as JSON,
nothing else asked. Through ASGI each one costs the server a scope, an ASGI cycle, a task
and its coroutines, two message dicts and the response head built from a header list,
and the app a :class:`~vigil.serving.http.Request`, the route's handler and the data
plane's coroutine: more than the prediction itself (see ``docs/benchmarks.md``, "Hot
path").

:class:`FastLane` answers that case from the HTTP protocol's own callback
(:mod:`vigil.serving.protocol`), once a request's whole body is in: it checks what the app
checks (route, ``Host``, API key, media type, body size, the body's shape, the
validator's fused check of one record), picks an endpoint's variant as the endpoint route
does, queues the record with its model's batch through
:meth:`~vigil.serving.dataplane.DataPlane.submit_one` (logged with its batch as any
prediction), and answers from the batch's future. It takes nothing else: whenever a check
does not pass (an API key that its cache has not admitted included), or the server runs
with what the lane does not do (tracing, the access log, a drain under way), it declines
*before doing anything* but draw a variant, and the request goes through the ASGI app as
usual, which then judges it (a declined split without a unit id draws its variant again),
errors included. So every error, and every answer but the plain one, still comes from one
place (:class:`~vigil.serving.app.ServingApp`); the lane's answers are the same bytes the
app would send (``tests/serving/test_lane.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import orjson

from vigil.errors import VigilError
from vigil.serving import endpoint_routes
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
    from vigil.serving.endpoints import Routed
    from vigil.serving.endpoints.live import LiveEndpoint
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
_ENDPOINT_HEAD = _PLAIN_HEAD + b"%s"
"""With the endpoint's headers (:attr:`~vigil.serving.endpoints.live.Routed.head`)."""


class _Entry:
    """A path the lane answers: its route, and the model (name and selector) or the
    experiment endpoint it names."""

    __slots__ = ("endpoint", "name", "route", "selector")

    def __init__(self, route: Route, name: str, selector: str | None, endpoint: str | None) -> None:
        self.route = route
        self.name = name
        self.selector = selector
        self.endpoint = endpoint


class FastLane:
    """Answers plain native predictions over ``dataplane`` (see the module's docstring).

    ``router`` matches paths as the app does, ``tally`` counts requests as the app does
    (``None``: metrics off), ``hosts`` is the app's ``Host`` guard (``None``: any),
    ``authenticator`` its API-key checks (``None``: off; the lane takes a key its cache
    admits, and leaves any other to the app) and ``failed`` the app's own answer to a
    request that raised (after it was queued: the model failed, the log could not be
    written)."""

    def __init__(
        self,
        dataplane: DataPlane,
        router: Router,
        tally: RequestTally | None,
        hosts: HostGuard | None,
        authenticator: Authenticator | None,
        failed: Callable[[Route, Request, Exception], Awaitable[Response]],
    ) -> None:
        self.dataplane = dataplane
        self._authenticator = authenticator
        self._router = router
        self.tally = tally
        self._hosts = hosts
        self.failed = failed
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
        dataplane = self.dataplane
        endpoints = dataplane.endpoints
        live: LiveEndpoint | None = None
        unit_header = unit = None
        if entry.endpoint is not None:
            live = None if endpoints is None else endpoints.routed(entry.endpoint)
            if live is None:
                return None
            unit_header = live.unit_header
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
            elif key == unit_header:
                unit = value  # the last one, as the app's header mapping keeps it
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
        payload = _object(body)
        if payload is None:
            return None
        routed: Routed | None = None
        try:
            if live is None:
                if not _PLAIN_KEYS.issuperset(payload):
                    return None
                table, want_proba = native.decode(payload)
                served = dataplane.model(entry.name, entry.selector)
            else:
                assert endpoints is not None
                # The unit from its header or its body field (taken out of the body).
                if live.unit_field is None:  # the header alone, found in the scan above
                    found = unit.decode("latin-1") if unit else None
                else:
                    found = live.unit({unit_header: unit} if unit_header and unit else {}, payload)
                if not _PLAIN_KEYS.issuperset(payload):
                    return None
                table, want_proba = native.decode(payload)
                routed = endpoints.route(live, found)
                served = routed.served
        except VigilError:
            return None
        rid = request_id_from(None if request_id is None else request_id.decode("latin-1"))
        key_id = None if caller is None else caller.key_id
        rows = getattr(table, "rows", None)  # another shape: the data plane declines it
        if routed is None:
            called = started
            future = dataplane.submit_one(
                served, rows, want_proba, rid, route.name, started, key_id
            )
        else:
            called = perf_counter()  # where the endpoint route starts its variant's time
            future = dataplane.submit_one(
                served,
                rows,
                want_proba,
                rid,
                route.name,
                started,
                key_id,
                routed.endpoint.name,
                routed.variant,
                routed.propensity,
                routed.cache,
            )
        if future is None:
            return None
        if self.tally is not None:
            self.tally.started()
        call = _Call(self, route, served, routed, table, want_proba, rid, started, called, caller)
        call.answer, call.request = answer, (path, headers, body)
        future.add_done_callback(call.done)
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
            entry = _Entry(route, params["name"], selector, None)
        elif route.handler is endpoint_routes.predict:
            entry = _Entry(route, "", None, params["endpoint"])
        if len(path) <= _PATH_KEPT_CHARS:
            if len(self._paths) >= _PATHS_KEPT:
                self._paths.clear()
            self._paths[path] = entry
        return entry


class _Call:
    """One request the lane took, until it is answered."""

    __slots__ = (
        "answer",
        "called",
        "caller",
        "lane",
        "request",
        "rid",
        "route",
        "routed",
        "served",
        "started",
        "table",
        "want_proba",
    )

    def __init__(
        self,
        lane: FastLane,
        route: Route,
        served: ServedModel,
        routed: Routed | None,
        table: Any,
        want_proba: bool,
        rid: str,
        started: float,
        called: float,
        caller: Principal | None,
    ) -> None:
        self.lane = lane
        self.route = route
        self.served = served
        self.routed = routed
        self.table = table
        self.want_proba = want_proba
        self.rid = rid
        self.started = started
        self.called = called
        self.caller = caller
        self.answer: Answer
        self.request: tuple[str, list[tuple[bytes, bytes]], bytearray]
        """The request's path, headers and body, for the app should the call fail."""

    @property
    def key_id(self) -> str | None:
        return None if self.caller is None else self.caller.key_id

    def done(self, future: asyncio.Future[BatchResult]) -> None:
        """The batch answered (or failed, or the drain's deadline cancelled the request)."""
        if future.cancelled() or future.exception() is not None:
            self._failed(future)
            return
        result = future.result()
        rid, served, routed = self.rid, self.served, self.routed
        proba = result.probabilities if self.want_proba else None
        if routed is None:
            content = native.encode(rid, served, result.predictions, proba)
            # The app's headers for this answer (content type, length, request id), in its
            # order, formatted at once.
            self.answer(200, _PLAIN_HEAD % (len(content), rid.encode()), content)
        else:
            endpoints = self.lane.dataplane.endpoints
            assert endpoints is not None
            endpoints.answered(
                routed,
                self.called,
                self.table,
                self.want_proba,
                rid,
                self.route.name,
                self.key_id,
            )
            content = endpoint_routes.encode(rid, routed, result.predictions, proba)
            self.answer(200, _ENDPOINT_HEAD % (len(content), rid.encode(), routed.head), content)
        tally = self.lane.tally
        if tally is not None:
            tally.answered(
                self.route.name,
                served.name,
                served.version_label,
                200,
                perf_counter() - self.started,
            )

    def _failed(self, future: asyncio.Future[BatchResult]) -> None:
        """A failure after the request was queued (the model raised, the log could not be
        written) or the drain's deadline: answered by the app, as it answers any."""
        path, headers, body = self.request
        exc = None if future.cancelled() else future.exception()
        params = {} if self.routed is None else {"endpoint": self.routed.endpoint.name}
        request = Request("POST", path, params, None, self.rid, bytes(body), headers)
        request.route = self.route.name
        request.model, request.version = self.served.name, self.served.version_label
        if self.caller is not None:
            request.key_id, request.key_role = self.caller.key_id, self.caller.role
        if self.routed is not None and exc is not None:
            endpoints = self.lane.dataplane.endpoints
            assert endpoints is not None
            endpoints.failed(self.routed, self.called, exc)  # counted, its error body tagged
        asyncio.get_running_loop().create_task(self._answer_failure(request, exc))

    async def _answer_failure(self, request: Request, exc: BaseException | None) -> None:
        route = self.route
        if exc is None:  # cancelled: only the drain does, once its deadline ran out
            response = error_response(route.style, SHUTTING_DOWN, request.request_id)
        else:
            failure = exc if isinstance(exc, Exception) else RuntimeError(exc)
            response = await self.lane.failed(route, request, failure)
        lines = [
            b"content-type: ",
            response.content_type,
            b"\r\ncontent-length: ",
            str(len(response.body)).encode(),
            b"\r\n",
        ]
        for name, value in response.headers or ():
            lines += (name, b": ", value, b"\r\n")
        self.answer(response.status, b"".join(lines), response.body)
        tally = self.lane.tally
        if tally is not None:
            tally.answered(
                route.name,
                request.model,
                request.version,
                response.status,
                perf_counter() - self.started,
            )


def _object(body: bytearray) -> dict[str, Any] | None:
    """The body's JSON value when it is an object (``None`` for anything else)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload if type(payload) is dict else None


_UNSEEN: Any = object()
