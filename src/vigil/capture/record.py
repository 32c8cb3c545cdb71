"""What the inference log holds: one :class:`CaptureRecord` per predicted row.

A batch request with N rows becomes N records sharing its ``request_id`` and numbered by
``row`` (0..N-1), so feedback for one row joins on ``(request_id, row)`` without
unpacking lists. ``endpoint`` and ``variant`` name the experiment endpoint that routed the
request and the arm it picked (both ``None`` outside experiments); ``caller`` is the id of
the API key that made the call; ``cached`` is true when the prediction cache answered it;
``propensity`` the probability the endpoint's policy gave that arm (bandits and weighted
splits). Both are absent from records written before they existed, which read as ``None``.
A rejected request (4xx) is one record with ``row = 0``, no features, its error code and
message, and its raw body kept as truncated text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(slots=True)
class CaptureRecord:
    """One predicted row (or one rejected request) as it is written to the log.

    >>> from datetime import datetime, UTC
    >>> r = CaptureRecord("r1", 0, datetime(2025, 1, 2, tzinfo=UTC), "native", "churn", 3,
    ...                   features={"age": 41}, prediction=1, latency_ms=2.5)
    >>> r.to_dict()["time"], r.to_dict()["features"]
    ('2025-01-02T00:00:00+00:00', {'age': 41})
    """

    request_id: str
    row: int
    time: datetime
    route: str
    model: str
    version: int | None
    features: dict[str, Any] = field(default_factory=dict)
    prediction: Any = None
    probabilities: dict[str, float] | None = None
    latency_ms: float | None = None
    """Milliseconds the server spent predicting the request: validation, time queued for a
    micro-batch and the model call (decoding the body and sending the reply excluded)."""
    status: int = 200
    variant: str | None = None
    caller: str | None = None
    endpoint: str | None = None
    propensity: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw_body: str | None = None
    cached: bool | None = None
    """True when the prediction cache answered the row (``False`` when a model call did;
    ``None`` for a rejected request, and in records written before the cache existed)."""

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-ready values (time as ISO 8601 UTC)."""
        return {
            "request_id": self.request_id,
            "row": self.row,
            "time": self.time.astimezone(UTC).isoformat(),
            "route": self.route,
            "model": self.model,
            "version": self.version,
            "variant": self.variant,
            "caller": self.caller,
            "endpoint": self.endpoint,
            "propensity": self.propensity,
            "features": self.features,
            "prediction": self.prediction,
            "probabilities": self.probabilities,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "raw_body": self.raw_body,
            "cached": self.cached,
        }


def safe_text(body: bytes | str | None, limit: int) -> str | None:
    """A rejected body as text, cut to ``limit`` characters; invalid UTF-8 is replaced.

    >>> safe_text(b"\\xff{\\"a\\": NaN}", 6) == "\\ufffd{\\"a\\"…"
    True
    """
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
