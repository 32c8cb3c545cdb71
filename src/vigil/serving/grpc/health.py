"""``grpc.health.v1.Health``: the standard gRPC health service, answering as ``/readyz``.

Kubernetes' ``grpc`` probes, ``grpc_health_probe`` and gRPC load balancers ask this
service, not the inference protocol's ``ServerReady``. Both say the same thing, read from
the worker's :class:`~vigil.serving.readiness.Readiness`: ``SERVING`` while ``/readyz``
answers 200, ``NOT_SERVING`` while the models load, from the moment the worker is told to
stop (SIGTERM) and while a dependency is down past its grace period.

The services known are the server as a whole (``""``) and
``inference.GRPCInferenceService``; ``Check`` answers ``NOT_FOUND`` for any other, and
``Watch`` streams ``SERVICE_UNKNOWN``. ``Watch`` sends the status at once, then each
change within :data:`WATCH_INTERVAL` seconds. Like ``ServerReady``, the service needs no
API key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2

from vigil.serving.grpc.service import SERVICE as INFERENCE

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane

SERVICE = "grpc.health.v1.Health"
WATCH_INTERVAL = 0.25
"""Seconds between two looks at readiness for a ``Watch`` stream."""

_KNOWN = frozenset({"", INFERENCE})
_Status = health_pb2.HealthCheckResponse.ServingStatus
SERVING: int = _Status.SERVING
NOT_SERVING: int = _Status.NOT_SERVING
SERVICE_UNKNOWN: int = _Status.SERVICE_UNKNOWN


class HealthService:
    """``Check`` and ``Watch`` over ``dataplane``'s readiness."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def status(self, service: str) -> int:
        """``SERVING``, ``NOT_SERVING`` or ``SERVICE_UNKNOWN`` for ``service``."""
        if service not in _KNOWN:
            return SERVICE_UNKNOWN
        return SERVING if self.dataplane.takes_traffic else NOT_SERVING

    async def check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        status = self.status(request.service)
        if status == SERVICE_UNKNOWN:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown service {request.service!r}: ask for '' (the server) or {INFERENCE!r}",
            )
        return health_pb2.HealthCheckResponse(status=status)

    async def watch(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        last = None
        while True:
            status = self.status(request.service)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            await asyncio.sleep(WATCH_INTERVAL)

    def handler(self) -> grpc.GenericRpcHandler:
        """The method handlers, to add to a ``grpc.aio`` server."""
        request = health_pb2.HealthCheckRequest.FromString
        response = health_pb2.HealthCheckResponse.SerializeToString
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    self.check, request_deserializer=request, response_serializer=response
                ),
                "Watch": grpc.unary_stream_rpc_method_handler(
                    self.watch, request_deserializer=request, response_serializer=response
                ),
            },
        )
