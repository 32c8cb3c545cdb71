"""The serving ASGI application: a lean router over the data plane.

No web framework on the hot path: the app reads the method, path and six headers from the
ASGI scope, refuses a foreign ``Host`` (421) and, on admin and state-changing routes, a
foreign ``Origin`` (403) (see :mod:`vigil.serving.guards`), checks the API key against the
route's role when authentication is on (401/403, see :mod:`vigil.auth.authenticator`),
enforces the content type (415: state-changing routes need ``application/json`` even
without a body, but the web console's form routes, guarded by a session and a CSRF token,
take only a form; a prediction also takes a JSON body sent as a form, as ``curl -d`` does) and the body limit (413 before reading an oversized body), decodes a large
JSON body on a worker thread (:mod:`vigil.serving.executors`), calls the route's handler,
and maps every error to its status and JSON body in one place
(:func:`~vigil.serving.problems.error_response`). An unexpected exception is logged and
answered 500 without a traceback; the server keeps serving.

The lifespan loads and warms every model (``/readyz`` turns 200 only then), then starts
the worker's gRPC server when it has one (:mod:`vigil.serving.grpc`), and drains them
at shutdown, with the experiment endpoints and the capture runtime (see
:class:`~vigil.serving.dataplane.DataPlane`) and scheduled monitoring
(:mod:`vigil.monitor.scheduler`) when the composition root gave them. It also starts the
background dependency checks behind ``/readyz`` (:mod:`vigil.serving.readiness`). A worker
told to stop drains first (:mod:`vigil.serving.drain`): :meth:`ServingApp.begin_drain`
turns ``/readyz`` 503 and closes every connection after its answer, and past the drain
timeout :meth:`ServingApp.expire` makes each request still held answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

import vigil._heap as _heap
from vigil.capture.sink import CaptureSink
from vigil.errors import (
    AuthenticationError,
    ConfigurationError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    VigilError,
)
from vigil.serving import metrics
from vigil.serving.capture_runtime import CaptureRuntime
from vigil.serving.codecs.recording import record_rejected, recorded_style
from vigil.serving.config import ServingSettings, json_values_limit, load_serving_settings
from vigil.serving.dataplane import DataPlane
from vigil.serving.executors import INLINE_BODY_BYTES, Executors
from vigil.serving.explaining import Explanations
from vigil.serving.guards import check_origin, host_guard
from vigil.serving.http import FORM, Request, Response, Route, Router, media_type, takes_media
from vigil.serving.lane import FastLane
from vigil.serving.logs import ACCESS_LOGGER
from vigil.serving.problems import SHUTTING_DOWN, error_response
from vigil.serving.provider import ModelProvider, StaticProvider
from vigil.serving.readiness import Readiness
from vigil.serving.routes import ROUTES

if TYPE_CHECKING:
    from vigil.auth.authenticator import Authenticator
    from vigil.experiments.services import ExperimentServices
    from vigil.monitor.scheduler import MonitorScheduler
    from vigil.serving.cache import PredictionCache
    from vigil.serving.endpoints import EndpointRouter
    from vigil.serving.tracing import RequestTrace, Tracing

log = logging.getLogger("vigil.serving")

USAGE_INTERVAL_S = 5.0
"""How often every worker refreshes its memory and CPU series. A scrape refreshes only the
worker that answers it, and Prometheus keeps its connection, so it reaches the same worker
each time: without this the other workers' series would stay as they were at start-up."""

Scope = dict[str, Any]
Message = dict[str, Any]

_JSON_TYPES = ("application/json", "text/csv")
_JSON_BODIES = ("json", "json_or_tensors")
# Sent with every 401, as RFC 6750 asks of a bearer-token server.
_CHALLENGE = (b"www-authenticate", b'Bearer realm="vigil"')
# Sent while draining: a keep-alive client opens its next connection, which a load
# balancer that has seen /readyz turn 503 sends to another replica.
_CLOSE = (b"connection", b"close")


# What `curl -d` sends unless told otherwise: the fix, spelt out in every 415.
_HOW = (
    "with curl, use --json '{...}' or add -H 'Content-Type: application/json' "
    "(-d alone sends application/x-www-form-urlencoded)"
)


class SideServer(Protocol):
    """Another protocol's server in the same worker (gRPC: :mod:`vigil.serving.grpc`),
    started and stopped with the app over its data plane."""

    async def start(self, dataplane: DataPlane, authenticator: Authenticator | None) -> None: ...

    async def stop(self) -> None: ...


class Background(Protocol):
    """A loop of a layer above serving that runs in every worker (started once the models
    are loaded, from the event loop; stopped at shutdown)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


def _form_body_ok(body: bytes) -> bool:
    """Whether a body sent as a form is JSON after all (an object or an array), as
    `curl -d '{...}'` sends it.

    >>> _form_body_ok(b' {"instances": []}'), _form_body_ok(b"tenure=3&plan=basic")
    (True, False)
    """
    return body.lstrip()[:1] in (b"{", b"[")


def _unsupported_media_type(route: Route, content_type: str | None) -> UnsupportedMediaTypeError:
    got = "none" if content_type is None else repr(content_type[:80])
    if route.body == "form":
        return UnsupportedMediaTypeError(
            f"send the console's form as Content-Type: {FORM}; got {got}",
            detail={"expected": FORM, "got": None if content_type is None else content_type[:80]},
        )
    if route.needs_json:
        why = (
            " (state-changing operations need it, even without a body, so that no web "
            "page's form can call them)"
        )
    elif content_type is not None and media_type(content_type) == FORM:
        why = " and a JSON body (a form's fields are not read)"
    else:
        why = ""
    return UnsupportedMediaTypeError(
        f"send Content-Type: application/json{why}; got {got}; {_HOW}",
        detail={
            "expected": "application/json",
            "got": None if content_type is None else content_type[:80],
            "fix": "curl --json '{...}' URL, or -H 'Content-Type: application/json'",
        },
    )


class ServingApp:
    """ASGI application answering the native, v2 and MLflow protocols for a data plane."""

    def __init__(
        self,
        dataplane: DataPlane,
        *,
        routes: list[Route] | None = None,
        authenticator: Authenticator | None = None,
        monitor: MonitorScheduler | None = None,
        grpc: SideServer | None = None,
        background: Sequence[Background] = (),
    ) -> None:
        self.dataplane = dataplane
        self.settings = dataplane.settings
        self.router = Router(routes or ROUTES)
        dataplane.routes = tuple(self.router.routes)
        self.authenticator = authenticator
        """Checks API keys against each route's role; ``None``: authentication is off."""
        self._limit = self.settings.max_body_bytes
        self._executors = dataplane.executors
        self._max_values = json_values_limit(self.settings)
        self._metrics = self.settings.metrics
        self._tally = metrics.RequestTally() if self._metrics else None
        """Requests in flight and answered, added to the metrics once per loop turn."""
        self._hosts = host_guard(
            self.settings.allowed_hosts, authentication=authenticator is not None
        )
        """Refuses a foreign Host (DNS rebinding); ``None``: any Host is answered."""
        self._origins = frozenset(o.encode("latin-1") for o in self.settings.allowed_origins)
        self.monitor = monitor
        """Scheduled monitoring, started with the app (``None``: monitoring is off)."""
        self.background = tuple(background)
        """Other loops the composition root runs in every worker (the update policies'),
        started after the models are loaded and stopped before the data plane."""
        self._access = logging.getLogger(ACCESS_LOGGER) if self.settings.access_log else None
        """The access log (:mod:`vigil.serving.logs`); ``None``: off, and no work done."""
        self._usage: asyncio.Task[None] | None = None
        """Refreshes this worker's memory and CPU series (see :data:`USAGE_INTERVAL_S`)."""
        self.grpc = grpc
        """The worker's gRPC server (``None``: no ``--grpc-port``): started once the models
        are loaded, as the HTTP socket only accepts then (with several workers on one port,
        a worker being replaced must not take connections it cannot answer yet), and
        stopped first at shutdown."""
        self.readiness = dataplane.readiness
        self._expired = False
        """Set when the drain timeout ran out: requests still unanswered get a 503."""
        self._tracing = dataplane.tracing
        """OpenTelemetry spans of prediction requests (:mod:`vigil.serving.tracing`);
        ``None``: off, and a request pays this one test."""
        self.lane = (
            FastLane(dataplane, self.router, self._tally, self._hosts, authenticator, self.failed)
            if self._tracing is None and self._access is None
            else None
        )
        """Answers plain native predictions from the HTTP protocol, without an ASGI cycle
        (:mod:`vigil.serving.lane`); ``None`` where the server does what the lane does not
        (tracing, the access log)."""

    def begin_drain(self) -> None:
        """The worker was told to stop (:mod:`vigil.serving.drain`): ``/readyz`` answers
        503 ``draining`` from now on, and every answer closes its connection. Requests
        are still answered. Safe to call from a signal handler."""
        self.readiness.begin_drain()

    def expire(self) -> None:
        """The drain timeout ran out: a request cancelled from now on (the server cancels
        those it still holds) is answered 503 ``shutting_down`` instead of dropped."""
        self._expired = True

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.dataplane.startup()
                    if self.grpc is not None:
                        await self.grpc.start(self.dataplane, self.authenticator)
                    if self.monitor is not None:
                        self.monitor.start()
                    for loop in self.background:
                        loop.start()
                    await self.readiness.start()
                except Exception as exc:
                    if self.grpc is not None:
                        await self.grpc.stop()
                    if isinstance(exc, VigilError):  # its message says what to do
                        log.error("worker start-up failed: %s", exc.message)
                    else:
                        log.exception("worker start-up failed (model loading or the gRPC port)")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self._metrics:
                    rss = metrics.record_process_memory()
                    metrics.record_process_cpu()
                    self._usage = asyncio.get_running_loop().create_task(self._record_usage())
                    log.info(
                        "worker %d ready: %d model version(s), %.0f MiB resident",
                        os.getpid(),
                        len(self.dataplane.models()),
                        rss / 2**20,
                    )
                if self.settings.gc_freeze:
                    _heap.enable()
                    _heap.settle(collect=False)  # nothing to free worth a full pass (_heap)
                await send({"type": "lifespan.startup.complete"})
                self.dataplane.started()
            elif message["type"] == "lifespan.shutdown":
                if self._usage is not None:
                    self._usage.cancel()
                await self.readiness.stop()
                if self.grpc is not None:
                    await self.grpc.stop()
                if self.monitor is not None:
                    await self.monitor.stop()
                for loop in self.background:
                    await loop.stop()
                await self.dataplane.shutdown()
                if self._tracing is not None:  # the spans still held go out before exit
                    await asyncio.to_thread(self._tracing.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _record_usage(self) -> None:
        while True:
            await asyncio.sleep(USAGE_INTERVAL_S)
            metrics.record_process_memory()
            metrics.record_process_cpu()

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        started = perf_counter()
        route: Route | None = None
        request: Request | None = None
        traced: RequestTrace | None = None
        tally = self._tally
        if tally is not None:
            tally.started()
        try:
            content_type = request_id = None
            authorization: bytes | None = None
            host: bytes | None = None
            origin: bytes | None = None
            inference_header: bytes | None = None
            length = -1
            for key, value in scope["headers"]:
                if key == b"host":
                    host = value
                elif key == b"content-type":
                    content_type = value.decode("latin-1")
                elif key == b"content-length":
                    length = -1
                    if value.isdigit():
                        # 19 digits or more is past any limit (and int() of thousands
                        # of digits raises).
                        length = int(value) if len(value) < 19 else 2**63
                elif key == b"x-request-id":
                    request_id = value.decode("latin-1")
                elif key == b"authorization":
                    authorization = value
                elif key == b"origin":
                    origin = value
                elif key == b"inference-header-content-length":
                    inference_header = value
            hosts = self._hosts
            if hosts is not None and host is not None and host not in hosts.admitted:
                hosts.check(host, scope.get("server"))
            route, params = self.router.match(scope["method"], scope["path"])
            if origin is not None and route.same_origin:
                check_origin(origin, host, self._origins)
            request = Request(  # positional: keyword matching costs on every request
                scope["method"],
                scope["path"],
                params,
                content_type,
                request_id,
                b"",
                scope["headers"],
                inference_header,
                scope.get("query_string", b""),
                scope.get("scheme", "http"),
            )
            request.route = route.name
            if self._tracing is not None and route.prediction:
                traced = self._tracing.begin_http(
                    scope["method"], route.template, scope["path"], scope["headers"]
                )
            # Before the body is read: an unauthenticated client cannot make us read 10 MB.
            if route.role is not None and self.authenticator is not None:
                principal = await self.authenticator.authorize(authorization, route.role)
                request.key_id, request.key_role = principal.key_id, principal.role
            mime = None if content_type is None else media_type(content_type)
            if (route.needs_json or route.body != "none") and not takes_media(route, mime):
                raise _unsupported_media_type(route, content_type)
            if route.body != "none":
                if traced is not None:
                    traced.stage("decode")
                # The body's first message read here, not in a coroutine of its own: one
                # frame less on every request (almost every body comes in one message).
                limit = (
                    self._limit
                    if route.max_body_bytes is None
                    else min(route.max_body_bytes, self._limit)
                )
                if length > limit:
                    raise self._too_large(length, limit)
                message = await receive()
                request.body = message.get("body", b"")
                if message.get("more_body", False):
                    request.body = await self._read_rest(receive, request.body, limit)
                elif len(request.body) > limit:
                    raise self._too_large(len(request.body), limit)
                if route.prediction and mime == FORM and not _form_body_ok(request.body):
                    raise _unsupported_media_type(route, content_type)
                if route.body in _JSON_BODIES and len(request.body) > INLINE_BODY_BYTES:
                    # Megabytes of JSON take orjson a good part of a second: off the loop.
                    await self._executors.decoding(request.read_json, self._max_values)
            response = await route.handler(self.dataplane, request)
        except asyncio.CancelledError as exc:
            if not self._expired:
                if traced is not None:
                    traced.abandon(exc)
                raise
            # The drain timeout ran out (see expire): an answer, not a dropped connection.
            style = route.style if route is not None else "ops"
            rid = request.request_id if request is not None and style == "native" else None
            response = error_response(style, SHUTTING_DOWN, rid)
            if traced is not None:
                traced.fail(SHUTTING_DOWN, response.status)
        except Exception as exc:
            response = await self.failed(route, request, exc)
            if traced is not None:
                traced.fail(exc, response.status)
        if self.readiness.draining:
            response.headers = [*(response.headers or ()), _CLOSE]
        if traced is not None:
            header = (b"traceresponse", traced.traceresponse().encode())
            response.headers = [*(response.headers or ()), header]
        headers = [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
        ]
        if response.headers:
            headers.extend(response.headers)
        try:
            # Here, not in a coroutine of its own: one frame less on every request.
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": response.body})
        finally:
            if traced is not None:
                traced.finish(response.status)
        if self._access is not None:
            trace_id = traced.trace_id if traced is not None else None
            self._log_access(scope, route, request, response, perf_counter() - started, trace_id)
        if request is not None and len(request.body) > INLINE_BODY_BYTES:
            # Freed on a worker thread: the objects of a large decoded body are as many as
            # decoding made, and the loop would spend a good part of that time freeing them.
            held = request.detach()
            with contextlib.suppress(RuntimeError):  # the pool stopped: freed here instead
                self._executors.decode.submit(held.clear)
        if tally is not None:
            tally.answered(
                route.name if route else "unmatched",
                request.model if request else "",
                request.version if request else "",
                response.status,
                perf_counter() - started,
            )

    async def failed(
        self, route: Route | None, request: Request | None, exc: Exception
    ) -> Response:
        """The answer to a request that raised ``exc`` (``route`` and ``request`` are
        ``None`` when it failed before they were known): a rejected prediction is logged
        first, the error counted, and a 500 stands for anything unexpected."""
        style = route.style if route is not None else "ops"
        if route is not None and request is not None and isinstance(exc, VigilError):
            recorded = recorded_style(route.handler)
            if recorded is not None:  # a rejected prediction: in the inference log too
                await record_rejected(self.dataplane, request, recorded, exc)
        rid = request.request_id if request is not None and style == "native" else None
        response = error_response(style, exc, rid)
        if isinstance(exc, AuthenticationError):
            response.headers = [*(response.headers or ()), _CHALLENGE]
        if self._metrics:
            kind = exc.code if isinstance(exc, VigilError) else "internal_error"
            metrics.record_error(route.name if route else "unmatched", kind)
        return response

    def _log_access(
        self,
        scope: Scope,
        route: Route | None,
        request: Request | None,
        response: Response,
        seconds: float,
        trace_id: str | None = None,
    ) -> None:
        assert self._access is not None
        path = scope["path"][:200]
        model = request.model if request is not None else ""
        version = request.version if request is not None else ""
        # A prediction's id is known; any other request gets one only here (log is on).
        rid = request.request_id if request is not None else None
        latency_ms = round(seconds * 1000, 3)
        self._access.info(
            "%s %s %d %.1f ms%s",
            scope["method"],
            path,
            response.status,
            latency_ms,
            f" {model} v{version}" if model else "",
            extra={
                "request_id": rid,
                "method": scope["method"],
                "path": path,
                "route": route.name if route is not None else "unmatched",
                "model": model or None,
                "version": version or None,
                "status": response.status,
                "latency_ms": latency_ms,
                "trace_id": trace_id,
            },
        )

    async def _read_rest(self, receive: Any, body: bytes, limit: int) -> bytes:
        """The body after its first message, ``body`` (which said more was coming), up to
        ``limit`` bytes in all."""
        chunks = [body]
        size = len(body)
        message: dict[str, Any] = {"more_body": True}
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(size, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, size: int, limit: int) -> PayloadTooLargeError:
        if limit < self._limit:  # the route's own limit: its bodies are small
            advice = "this operation takes a body of a few fields"
        else:
            advice = "send fewer rows per request or raise VIGIL_SERVE_MAX_BODY_BYTES"
        return PayloadTooLargeError(
            f"the request body ({size} bytes or more) exceeds the limit of {limit} bytes; "
            + advice,
            detail={"limit": limit, "size": size},
        )


def create_app(
    provider: ModelProvider,
    settings: ServingSettings | None = None,
    *,
    capture: CaptureRuntime | CaptureSink | None = None,
    authenticator: Authenticator | None = None,
    endpoints: EndpointRouter | None = None,
    monitor: MonitorScheduler | None = None,
    services: ExperimentServices | None = None,
    executors: Executors | None = None,
    readiness: Readiness | None = None,
    cache: PredictionCache | None = None,
    tracing: Tracing | None = None,
    routes: Sequence[Route] = (),
    background: Sequence[Background] = (),
    explanations: Explanations | None = None,
) -> ServingApp:
    """The serving app for the models ``provider`` serves, with what it is given: the
    inference log (``capture``, a sink is wrapped in a runtime), API-key checks, the
    experiment endpoints' router, scheduled monitoring and the installation behind the
    admin API. Each is optional: without them this serves a fixed set of models.

    :meth:`vigil.app.Vigil.serving_app` builds all of them from the settings, as
    ``vigil serve`` does; ``executors`` are the pools the authenticator was given;
    ``readiness`` holds the dependency checks behind ``/readyz`` (none by default);
    ``cache`` is the Redis prediction cache of the models ``settings.cache`` names.
    ``tracing`` the OpenTelemetry spans (default: from the OTLP environment when
    ``VIGIL_SERVE_TRACING`` is on, else none); ``routes`` are operations of layers above
    serving (the update policies' admin API) added to the server's own, and ``background``
    loops that run with the app: the composition root hands them in, so serving never
    imports them;
    ``explanations`` are the served models' explainers (default: from the loaded bundles).

    >>> from vigil.serving.provider import StaticProvider
    >>> app = create_app(StaticProvider([]))
    >>> app.router.match("POST", "/v1/models/churn@production/predict")[1]
    {'name': 'churn', 'alias': 'production'}
    """
    if settings is None:
        settings = provider.settings if isinstance(provider, StaticProvider) else None
    settings = settings or load_serving_settings()
    if settings.auth == "on" and authenticator is None:
        raise ConfigurationError(
            "authentication is on but this server has no registry to read API keys from; "
            "serve registered models (vigil serve), or set VIGIL_SERVE_AUTH=off on loopback"
        )
    if isinstance(capture, CaptureSink):
        capture = CaptureRuntime(capture)
    if tracing is None and settings.tracing:
        # OpenTelemetry is imported only here, when tracing is on: off, no request path
        # and no cold start loads it.
        from vigil.serving.tracing import Tracing

        tracing = Tracing.from_environment()
    dataplane = DataPlane(
        provider,
        settings=settings,
        capture=capture,
        # shut down by the data plane when the app stops
        executors=executors or Executors.create(),
        endpoints=endpoints,
        services=services,
        readiness=readiness,
        explanations=explanations,
        cache=cache,
        tracing=tracing,
    )
    return ServingApp(
        dataplane,
        routes=[*ROUTES, *routes] if routes else None,
        authenticator=authenticator,
        monitor=monitor,
        background=background,
    )
