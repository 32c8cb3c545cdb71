"""One experiment endpoint as a worker routes it, and the variant picked for one request.

:class:`LiveEndpoint` is an :class:`~vigil.experiments.config.EndpointConfig` compiled for
the hot path (hasher, weights, the canary's share, a bandit's snapshot);
:class:`~vigil.serving.endpoints.router.EndpointRouter` builds and keeps them current.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vigil.errors import VigilError
from vigil.experiments.assign import UnitHasher, UnitReader, WeightedChoice
from vigil.experiments.config import EndpointConfig
from vigil.experiments.state import LATENCY_BOUNDS_MS, VariantStats
from vigil.uri import parse_model_ref

if TYPE_CHECKING:
    from vigil.bandits import BanditPolicy, BanditState
    from vigil.serving.provider import ServedModel

__all__ = ["LiveEndpoint", "Routed", "Tally", "target_of"]

_N_BUCKETS = len(LATENCY_BOUNDS_MS) + 1


class Tally:
    """One variant's routed requests since the router last moved them to its
    :class:`~vigil.experiments.buffer.BufferedPolicyState`: counted by the event loop
    alone, so the request path takes no lock (feedback, which may come from another
    thread, still goes to the buffer)."""

    __slots__ = ("buckets", "errors", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.buckets = [0] * _N_BUCKETS
        """Requests per bucket of :data:`~vigil.experiments.state.LATENCY_BOUNDS_MS`."""

    def take(self) -> VariantStats | None:
        """The counts so far (``None``: none), and start again from zero."""
        if not self.requests:
            return None
        taken = VariantStats(
            requests=self.requests, errors=self.errors, latency_buckets=self.buckets
        )
        self.requests = self.errors = 0
        self.buckets = [0] * _N_BUCKETS
        return taken


@dataclass
class LiveEndpoint:
    """One endpoint as a worker routes it: its configuration compiled for the hot path."""

    config: EndpointConfig
    revision: int
    targets: dict[str, tuple[str, str]]
    """Variant → (model name, provider selector: ``"@alias"`` or ``"3"``)."""
    kind: str
    hasher: UnitHasher
    primary: str = ""
    """The variant of ``fixed`` and ``shadow``; the stable one of ``canary``."""
    canary: str = ""
    percent: float = 0.0
    """The canary's share of traffic (0-100), from the last control read."""
    choice: WeightedChoice | None = None
    shadows: tuple[str, ...] = ()
    sample_rate: float = 1.0
    bandit: BanditPolicy | None = None
    snapshot: BanditState | None = None
    propensities: dict[str, float] | None = None
    """Each variant's chance of being picked from ``snapshot`` (logged with every request
    the bandit routes, for off-policy evaluation); ``None`` before the first snapshot."""
    refresh_s: float = 1.0
    refreshed_at: float = -math.inf
    refreshing: bool = False
    arms: dict[str, Routed] = field(default_factory=dict)
    """Each variant's :class:`Routed`, resolved once per ``generation`` of the provider
    (what a request needs of its variant, without a lookup)."""
    generation: int = -1
    """The provider's generation ``arms`` were resolved at."""
    unit: Callable[[Mapping[bytes, bytes], Any], str | None] = field(init=False)
    """Reads the request's unit id where the configuration says (a
    :class:`~vigil.experiments.assign.UnitReader`'s bound ``__call__``: calling a bound
    method costs less than calling an instance)."""
    unit_header: bytes | None = field(init=False)
    """The header :attr:`unit` reads (lower case; ``None``: none), for a caller that scans
    the raw header list itself."""
    unit_field: str | None = field(init=False)
    """The body field :attr:`unit` also reads (``None``: none): without one, such a caller
    has the unit id from its scan alone."""
    points: dict[str, float] = field(init=False)
    """The points ``hasher`` remembers (unit id → point), for a look-up before the call."""
    point: Callable[[str], float] = field(init=False)
    """``hasher``'s bound ``__call__``: the unit's point, for the same reason."""
    name: str = field(init=False)
    """The configuration's name (an attribute: read twice per request)."""

    _headers: dict[str, tuple[tuple[bytes, bytes], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        reader = UnitReader(self.config.unit)
        self.unit = reader.__call__
        self.unit_header = None if reader.header is None else reader.header.lower()
        self.unit_field = reader.field
        self.points = self.hasher.points
        self.point = self.hasher.__call__
        self.name = self.config.name

    def headers(self, variant: str) -> tuple[tuple[bytes, bytes], ...]:
        """The ``X-Vigil-Endpoint`` and ``X-Vigil-Variant`` headers of ``variant``'s answers
        (encoded once per variant)."""
        found = self._headers.get(variant)
        if found is None:
            found = (
                (b"x-vigil-endpoint", self.name.encode()),
                (b"x-vigil-variant", variant.encode()),
            )
            self._headers[variant] = found
        return found


@dataclass(slots=True)
class Routed:
    """The variant picked for one request and the served model that answers it (one per
    variant, reused by every request routed to it, except a bandit's: its propensity is
    the request's own)."""

    endpoint: LiveEndpoint
    variant: str
    served: ServedModel
    propensity: float | None = None
    """The probability the endpoint's policy gave ``variant`` for this request (bandits and
    weighted splits; ``None`` where it is not random: fixed, shadow, canary)."""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """The answer's ``X-Vigil-Endpoint`` and ``X-Vigil-Variant`` headers."""
    head: bytes = b""
    """The same headers as lines of an HTTP head (``name: value\r\n`` each), for a writer
    that formats its head in one go."""
    tally: Tally = field(default_factory=Tally)
    """Where the variant's outcomes are counted."""
    cache: bool = True
    """Whether the prediction cache may answer (see the router's ``_uses_cache``)."""


def target_of(uri: str) -> tuple[str, str]:
    """``(model name, provider selector)`` of a variant's ``models:/`` URI.

    >>> target_of("models:/churn@production"), target_of("models:/churn/3")
    (('churn', '@production'), ('churn', '3'))
    """
    ref = parse_model_ref(uri)
    if ref.alias is not None:
        return ref.name, "@" + ref.alias
    if ref.version is not None:
        return ref.name, str(ref.version)
    raise VigilError(f"{uri!r} names neither a version nor an alias")
