"""Experiment endpoints inside a serving worker: routing, reloads, canary ticks, shadows.

:class:`~vigil.serving.endpoints.router.EndpointRouter` is built by the composition root
(:meth:`vigil.app.Vigil.endpoint_router`) and handed to the data plane; the experiments
package keeps what is pure or persistent (configurations, the endpoint store, the shared
policy state, canary decisions, assignment).
"""

from __future__ import annotations

from vigil.serving.endpoints.live import LiveEndpoint, Routed
from vigil.serving.endpoints.router import EndpointRouter

__all__ = ["EndpointRouter", "LiveEndpoint", "Routed"]
