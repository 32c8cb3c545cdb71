"""OpenTelemetry spans of every prediction (``VIGIL_SERVE_TRACING=true``, ``vigil[tracing]``).

Off by default. Off, nothing imports this module or OpenTelemetry: the request path tests
one attribute for ``None`` in the app, the data plane and the batcher (see
``bench/serving``: the cost is below the benchmark's noise). On, each prediction request
(REST native, v2 JSON and binary, MLflow, experiment endpoints, gRPC ``ModelInfer``) gets
a server span whose parent is the caller's W3C ``traceparent``/``tracestate`` (headers,
or gRPC metadata), with children for its stages::

    POST /v1/models/{name}/predict          server span: model, version, rows, status
    ├── decode                              body read and parsed, inputs decoded
    ├── validate                            checked against the signature
    ├── batch wait                          queued until its micro-batch started
    ├── predict                             the batch's model call (one span per batch)
    │   └── capture                         the batch's inference-log write
    └── encode                              the answer built

A micro-batch serves many requests, so its ``predict`` span is a child of the request
that started the batch and has a *link* to every request it answered (the others' traces
reach it through the link). The answer carries a ``traceresponse`` header (gRPC: trailing
metadata) naming the trace, and the access log its ``trace_id``. Spans go to an OTLP/HTTP
exporter configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers,
timeout, ...), sampled as ``OTEL_TRACES_SAMPLER`` says; the service is named ``vigil``
unless ``OTEL_SERVICE_NAME`` names it.

A span's status is ``ERROR`` on the stage that failed (a 422 fails ``validate``), and on
the server span when the answer is a server error (5xx), as OpenTelemetry's HTTP
conventions ask; the status code is an attribute either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from vigil.errors import VigilError, require
from vigil.version import VERSION

if TYPE_CHECKING:
    from vigil.serving.provider import ServedModel

_CURRENT: ContextVar[RequestTrace | None] = ContextVar("vigil_request_trace", default=None)
"""The trace of the request whose task this is (set by the app or the gRPC service)."""

SERVICE_NAME = "vigil"


class Tracing:
    """Starts the spans of requests and batches with ``provider``'s tracer.

    Parameters
    ----------
    provider:
        Where spans go (a test's provider with an in-memory exporter, say); built from the
        environment by :meth:`from_environment`.
    owned:
        Shut ``provider`` down (flushing its spans) in :meth:`shutdown`.
    """

    def __init__(self, provider: trace.TracerProvider, *, owned: bool = False) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("vigil.serving", VERSION)
        self._owned = owned

    @classmethod
    def from_environment(cls) -> Tracing:
        """An SDK tracer provider exporting in batches to OTLP over HTTP, configured by the
        ``OTEL_*`` variables; a missing extra fails with its ``pip install`` line."""
        require("opentelemetry.sdk", "tracing")
        exporter = require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "tracing")
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create(
            {
                "service.name": os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME,
                "service.version": VERSION,
            }
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(exporter.OTLPSpanExporter()))
        return cls(provider, owned=True)

    def shutdown(self) -> None:
        """Export the spans still held (blocking: call it off the event loop)."""
        if self._owned:
            self.provider.shutdown()  # type: ignore[attr-defined]

    # -- a request -----------------------------------------------------------------------

    def begin_http(
        self, method: str, template: str, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> RequestTrace:
        """The server span of an HTTP prediction request, its parent taken from the
        request's ``traceparent``/``tracestate`` headers (any propagator configured by
        ``OTEL_PROPAGATORS``); current in this task until :meth:`RequestTrace.finish`."""
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
        span = self.tracer.start_span(
            f"{method} {template}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": template, "url.path": path},
        )
        return RequestTrace(self, span)

    def begin_grpc(self, service: str, method: str, metadata: Mapping[str, str]) -> RequestTrace:
        """The server span of a gRPC call, its parent from the call's metadata."""
        span = self.tracer.start_span(
            f"{service}/{method}",
            context=propagate.extract(metadata),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
        )
        return RequestTrace(self, span)

    # -- the data plane and the batcher ----------------------------------------------------

    def entered(
        self, model: ServedModel, endpoint: str | None, variant: str | None
    ) -> RequestTrace | None:
        """The data plane took this task's request (decoding is over): the request's trace,
        now validating, or ``None`` when the task's request is not traced or already past
        the data plane (an experiment's shadow copy, predicted in a task of its own)."""
        found = _CURRENT.get()
        if found is None or found.entered:
            return None
        found.entered = True
        found.model_name, found.model_version = model.name, model.version
        span = found.span
        span.set_attribute("vigil.model", model.name)
        span.set_attribute("vigil.model.version", model.version)
        if endpoint is not None:
            span.set_attribute("vigil.endpoint", endpoint)
        if variant is not None:
            span.set_attribute("vigil.variant", variant)
        found.stage("validate")
        return found

    def start_batch(self, traces: Sequence[RequestTrace], rows: int, inline: bool) -> BatchTrace:
        """A micro-batch starts: every request's ``batch wait`` ends, and the batch's
        ``predict`` span starts, a child of the first request, linked to each."""
        first = traces[0]
        for t in traces:
            t.end_stage()
        span = self.tracer.start_span(
            "predict",
            context=first.context,
            links=[Link(t.span.get_span_context()) for t in traces],
            attributes={
                "vigil.model": first.model_name,
                "vigil.model.version": first.model_version,
                "vigil.batch.rows": rows,
                "vigil.batch.requests": len(traces),
                "vigil.batch.inline": inline,
            },
        )
        batch = BatchTrace(self, span)
        for t in traces:
            t.batch = batch
        return batch


class RequestTrace:
    """One request's server span and the stage span open under it (at most one)."""

    __slots__ = (
        "batch",
        "context",
        "current",
        "entered",
        "model_name",
        "model_version",
        "span",
        "token",
        "tracing",
    )

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span
        self.context: Context = trace.set_span_in_context(span)
        self.current: Span | None = None
        self.entered = False
        self.batch: BatchTrace | None = None
        self.model_name = ""
        self.model_version = 0
        self.token: Token[RequestTrace | None] = _CURRENT.set(self)

    @property
    def trace_id(self) -> str:
        return f"{self.span.get_span_context().trace_id:032x}"

    def traceresponse(self) -> str:
        """The W3C Trace Context ``traceresponse`` value: this server span's ids."""
        ctx = self.span.get_span_context()
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

    def stage(self, name: str) -> None:
        """End the open stage, if any, and start ``name`` under the server span."""
        self.end_stage()
        self.current = self.tracing.tracer.start_span(name, context=self.context)

    def end_stage(self) -> None:
        if self.current is not None:
            self.current.end()
            self.current = None

    def queued(self, rows: int) -> None:
        """Validated: ``rows`` rows wait for a micro-batch."""
        self.span.set_attribute("vigil.rows", rows)
        self.stage("batch wait")

    def answered(self) -> None:
        """The batch answered this request: its answer is being encoded."""
        self.stage("encode")

    def fail(self, exc: BaseException, status: int) -> None:
        """The request is answered ``status`` because of ``exc``: the stage it failed in
        is marked and ended, and the server span too for a server error."""
        if isinstance(exc, VigilError):
            kind, description = exc.code, exc.message
        else:
            kind, description = type(exc).__qualname__, "internal error"
        current = self.current
        if current is not None:
            current.set_attribute("error.type", kind)
            current.set_status(Status(StatusCode.ERROR, description))
            if not isinstance(exc, VigilError):
                current.record_exception(exc)
            self.end_stage()
        self.span.set_attribute("error.type", kind)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR, description))

    def abandon(self, exc: BaseException) -> None:
        """The request was cancelled before an answer (the client left, the server
        stopped): its spans end, marked with the cancellation."""
        self.fail(exc, 0)
        self.span.end()
        _CURRENT.reset(self.token)

    def finish(self, status: int, attribute: str = "http.response.status_code") -> None:
        """The answer (``status``) is sent: the server span ends; the task forgets it."""
        self.end_stage()
        self.span.set_attribute(attribute, status)
        self.span.end()
        _CURRENT.reset(self.token)


class BatchTrace:
    """One micro-batch's ``predict`` span."""

    __slots__ = ("span", "tracing")

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span

    def capture(self, entries: int) -> Span:
        """The span of the batch's inference-log write (ended by the caller)."""
        return self.tracing.tracer.start_span(
            "capture",
            context=trace.set_span_in_context(self.span),
            attributes={"vigil.capture.records": entries},
        )

    def end(self, outcomes: Sequence[Any]) -> None:
        """The model call is over; ``outcomes`` holds an exception for each request it
        failed."""
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            self.span.set_attribute("vigil.batch.failed", len(failed))
            first = failed[0]
            kind = first.code if isinstance(first, VigilError) else type(first).__qualname__
            self.span.set_attribute("error.type", kind)
            self.span.set_status(Status(StatusCode.ERROR, f"{len(failed)} request(s) failed"))
            if not isinstance(first, VigilError):
                self.span.record_exception(first)
        self.span.end()


def fail_capture(span: Span, exc: BaseException) -> None:
    """Mark a capture span failed (the inference log could not be written)."""
    kind = exc.code if isinstance(exc, VigilError) else type(exc).__qualname__
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, "the inference log could not be written"))
