"""What OpenTelemetry's Python SDK costs by itself: ``python -m bench.serving.tracing_floor``.

The spans of one traced request (a server span and six children, as
:mod:`vigil.serving.tracing` makes for a request alone in its batch) created and ended
``--requests`` times with the SDK's batch processor, exported to nowhere (``null``) or
encoded as OTLP protobuf as the OTLP exporter does before sending (``encode``); prints the
CPU time per request of each. The floor under ``vigil-traced`` in ``bench.serving``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class _Exporter(SpanExporter):
    def __init__(self, encode: bool) -> None:
        self.encode = encode

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self.encode:
            encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


def cost(encode: bool, requests: int) -> float:
    """CPU µs per request (this process, every thread: the exporter's too)."""
    # Room for every span: the floor, not the cost of dropping them.
    processor = BatchSpanProcessor(_Exporter(encode), max_queue_size=8 * requests)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("floor")
    started = time.process_time()
    for _ in range(requests):
        server = tracer.start_span("POST /v1/models/{name}/predict", attributes={"rows": 1})
        context = trace.set_span_in_context(server)
        for name in ("decode", "validate", "batch wait", "predict", "capture", "encode"):
            tracer.start_span(name, context=context).end()
        server.end()
    provider.shutdown()
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving.tracing_floor")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    for encode in (False, True):
        label = "encode" if encode else "null"
        print(f"{label}: {cost(encode, args.requests):.1f} µs CPU per 7-span request")


if __name__ == "__main__":
    main()
