"""The gRPC server of one worker: ``grpc.aio`` on the worker's own event loop.

Started by the worker's app lifespan (:class:`~vigil.serving.app.ServingApp`) once its
models are loaded, and drained first when it stops. Several workers share one port as they
share the HTTP one: each binds it with ``SO_REUSEPORT`` and the kernel hands every new
connection to one of them, so a worker binds only when it can answer (a replacement
worker that is still loading takes no connection). A single worker binds without it, so a port another process
holds is an error at start instead of a silent split of the traffic.

Besides the inference protocol, the server answers the standard health service
(:mod:`vigil.serving.grpc.health`), as ``/readyz`` does.

Messages larger than the serve body limit (``VIGIL_SERVE_MAX_BODY_BYTES``) are refused by
gRPC itself with ``RESOURCE_EXHAUSTED`` before they are read.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import grpc

from vigil.errors import ConfigurationError
from vigil.serving.grpc.health import HealthService
from vigil.serving.grpc.service import InferenceService

if TYPE_CHECKING:
    from vigil.auth.authenticator import Authenticator
    from vigil.serving.dataplane import DataPlane

log = logging.getLogger("vigil.serving")

DRAIN_SECONDS = 5.0
"""How long in-flight calls may finish when the worker stops."""


class GrpcServer:
    """The v2 gRPC service of a worker on ``address`` (``host:port``; ``[::1]:port``).

    Parameters
    ----------
    address:
        Where to listen.
    reuse_port:
        Bind with ``SO_REUSEPORT`` (several workers on one port).
    """

    def __init__(self, address: str, *, reuse_port: bool = False) -> None:
        self.address = address
        self.reuse_port = reuse_port
        self._server: grpc.aio.Server | None = None

    async def start(self, dataplane: DataPlane, authenticator: Authenticator | None) -> None:
        """Bind and start answering calls with ``dataplane``'s models."""
        limit = dataplane.settings.max_body_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", -1),
            ]
        )
        server.add_generic_rpc_handlers(
            (
                InferenceService(dataplane, authenticator).handler(),
                HealthService(dataplane).handler(),
            )
        )
        cause: RuntimeError | None = None
        try:
            bound = server.add_insecure_port(self.address)
        except RuntimeError as exc:  # grpcio raises where it once answered port 0
            bound, cause = 0, exc
        if not bound:
            raise ConfigurationError(
                f"cannot listen for gRPC on {self.address} (the address is in use or not "
                "this machine's); choose another --grpc-port or stop the process that holds it"
            ) from cause
        await server.start()
        self._server = server

    async def stop(self, grace: float = DRAIN_SECONDS) -> None:
        """Stop taking calls and let those in flight finish for up to ``grace`` seconds."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
