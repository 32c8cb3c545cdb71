"""Settings of the serving core: limits, validation policy and batching, from ``VIGIL_SERVE_*``.

>>> ServingSettings(max_batch_size=8).max_wait_ms
2.0
>>> [ServingSettings().column_limit(n) for n in (4, 20, 5_000, 20_000)]
[80, 144, 10000, 20000]
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    NoDecode,
    SettingsConfigDict,
)

from vigil.durations import parse_duration
from vigil.names import check_model_name
from vigil.settings import VigilSettings, build_settings

SERVE_COMMAND_KEYS = frozenset({"aliases", "poll_interval"})
"""Keys of the ``serve:`` section of ``vigil.yaml`` read by ``vigil serve``, not settings."""

READINESS_CHECKS = ("database", "store", "redis")
"""The dependencies ``/readyz`` can check (``VIGIL_SERVE_READINESS_CHECKS``)."""

COLUMN_LIMIT_CAP = 10_000
"""The default column limit never exceeds this (unless the model has more features)."""


class CachePolicy(BaseModel):
    """How one model's predictions are cached in Redis (see :mod:`vigil.serving.cache`).

    >>> CachePolicy(ttl="5m").ttl_seconds, CachePolicy().max_entries
    (300.0, 100000)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: str | float = "300s"
    """How long an entry lives: a duration (``90s``, ``15m``, ``1h``) or seconds."""
    max_entries: int = Field(default=100_000, ge=1, le=100_000_000)
    """Most entries kept per model version, across every worker and replica; the oldest
    entries are dropped first."""

    @field_validator("ttl")
    @classmethod
    def _check_ttl(cls, value: str | float) -> str | float:
        seconds = parse_duration(value, what="cache ttl").total_seconds()
        if seconds < 0.001:
            raise ValueError("a cache ttl must be at least 1ms")
        return value

    @property
    def ttl_seconds(self) -> float:
        return parse_duration(self.ttl, what="cache ttl").total_seconds()


class ServingSettings(VigilSettings):
    """How the server validates, batches and limits requests. Every field can be set as
    ``VIGIL_SERVE_<FIELD>``."""

    yaml_section: ClassVar[str] = "serve"
    # `aliases` and `poll_interval` of the section are what `vigil serve` follows.
    yaml_ignore: ClassVar[frozenset[str]] = SERVE_COMMAND_KEYS

    model_config = SettingsConfigDict(env_prefix="VIGIL_SERVE_", extra="forbid", frozen=True)

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    """Largest request body accepted; larger bodies get 413 before they are read."""

    max_columns: int | None = Field(default=None, ge=1)
    """Most columns one request may send (named features and extra columns alike, and v2
    input tensors); more are refused with 413 before any value is read. Default: four times
    the model's features plus 64, at most 10,000; never fewer than the model's features."""

    max_cells: int = Field(default=1_000_000, ge=1)
    """Most values (rows x the model's features) one request may hold; more are refused
    with 413: send fewer rows per request. A large JSON body is refused before it is
    parsed when it holds more than about twice as many values (counting keys)."""

    max_batch_size: int = Field(default=64, ge=1)
    """Most rows the micro-batcher joins into one model call (1 disables batching)."""

    max_wait_ms: float = Field(default=2.0, ge=0)
    """Longest a request is held to fill a batch. A lone request is held for one turn of
    the event loop only (microseconds)."""

    inline_max_ms: float = Field(default=2.0, ge=0)
    """Model calls expected to take at most this long run on the event loop itself (the
    hand-off to the model's worker thread and back costs more than a linear model's call,
    and a call that holds the interpreter lock, as most of scikit-learn's per-call work
    does, stops the event loop just as long on the worker thread); longer ones run on the
    worker thread, so the server keeps decoding requests meanwhile.
    The cost is measured when the model is warmed and from every call. Only computation-only
    flavors (scikit-learn, XGBoost, LightGBM, ONNX) qualify. 0: always the thread."""

    gc_freeze: bool = False
    """Once the models are loaded, move everything alive out of the garbage collector's
    full passes (:mod:`vigil._heap`): much shorter pauses under load. ``vigil serve`` turns
    it on; an app built with ``create_app`` inside another program leaves that program's
    collector alone unless told."""

    extra_features: Literal["reject", "ignore"] = "reject"
    """What to do with input columns the signature does not declare."""

    unseen_categories: Literal["accept", "refuse"] = "accept"
    """A categorical value outside the categories the signature lists: ``accept`` lets it
    through and monitoring counts it (``quality.unseen_category_rate``); ``refuse``
    answers 422 naming the feature and the value."""

    allow_inf: bool = False
    """Accept +/-Inf in numeric features (rejected by default: most models mishandle it)."""

    default_alias: str = "production"
    """Alias served when a request names a model without a version or alias."""

    mlflow_model: str | None = None
    """Model answered by ``POST /invocations``; default: the only model served."""

    access_log: bool = False
    """Log one line per request on the ``vigil.access`` logger (request id, method, path,
    route, model, version, status, latency); off, the request path does no logging work."""
    metrics: bool = True
    """Record Prometheus metrics (``/metrics``)."""

    tracing: bool = False
    """Export OpenTelemetry spans of every prediction request (decode, validate, batch
    wait, predict, encode, capture; :mod:`vigil.serving.tracing`) to the OTLP/HTTP
    collector the standard ``OTEL_EXPORTER_OTLP_*`` variables name, continuing the
    caller's W3C ``traceparent``. Needs ``pip install 'vigil[tracing]'``. Off, OpenTelemetry
    is never imported and a request pays one attribute test."""

    auth: Literal["auto", "on", "off"] = "auto"
    """Require API keys (``Authorization: Bearer vk_...``). ``auto``: on unless the server
    binds a loopback address (``vigil serve`` decides, and refuses ``off`` elsewhere); an
    app built directly with ``create_app`` treats ``auto`` as off, since whoever binds the
    socket decides."""

    auth_cache_seconds: float = Field(default=5.0, ge=0)
    """How long a worker reuses a successful key check: the longest a revoked key keeps
    working."""

    drain_timeout: float = Field(default=30.0, ge=0)
    """Seconds a worker that was told to stop (SIGTERM, SIGINT) waits, once it has stopped
    accepting connections, for the requests it holds (in flight or queued for a batch) to
    be answered. Those still unanswered then get a 503 problem body (``shutting_down``).
    An orchestrator's grace period must cover ``shutdown_delay + drain_timeout`` and a few
    seconds more (Kubernetes: ``terminationGracePeriodSeconds``)."""

    shutdown_delay: float = Field(default=0.0, ge=0)
    """Seconds a worker keeps accepting and answering requests after SIGTERM, with
    ``/readyz`` already answering 503 (``draining``), before it closes its socket: the time
    a load balancer or Kubernetes' endpoint controller takes to stop sending it traffic
    (5 to 10 s in Kubernetes; 0, the default, stops at once where nothing routes by
    readiness). SIGINT (Ctrl-C) never waits."""

    readiness_checks: Annotated[tuple[str, ...], NoDecode] = ("database", "store", "redis")
    """Dependencies ``/readyz`` checks: any of ``database``, ``store`` (the artifact store)
    and ``redis`` (only when ``VIGIL_REDIS_URL`` is set). A comma-separated list in
    ``VIGIL_SERVE_READINESS_CHECKS``; empty: ``/readyz`` only says whether the models are
    loaded. Each is checked in the background, never by the probe itself."""

    readiness_interval: float = Field(default=2.0, gt=0)
    """Seconds between two checks of each dependency."""

    readiness_timeout: float = Field(default=1.0, gt=0)
    """Seconds a dependency check may take before it counts as failed."""

    readiness_grace: float = Field(default=6.0, ge=0)
    """Seconds a dependency must keep failing, every check of them, before ``/readyz``
    answers 503 for it (the body names it): a blip of the database or a failover does not
    take every replica out of its Service at once. 0: the first failed check counts."""

    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    """Host names the server answers for (the ``Host`` header, port ignored), besides
    ``localhost``, ``127.0.0.1``, ``::1`` and the address a request came in on; ``*``
    answers any. A comma-separated list in ``VIGIL_SERVE_ALLOWED_HOSTS``.

    Unset, a server with authentication off (loopback only) answers only those names, so a
    web page cannot reach it through DNS rebinding (421); a server with authentication on
    answers any Host, as behind a load balancer it is the public name and API keys guard
    every route a page could abuse. Set it to check the Host there too."""

    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    """Origins (``https://console.example.com``) whose web pages may call the admin and
    other state-changing routes, besides the server's own origin; any other ``Origin``
    gets 403. A comma-separated list in ``VIGIL_SERVE_ALLOWED_ORIGINS``."""

    cache: dict[str, CachePolicy] = Field(default_factory=dict)
    """Models whose predictions are cached in Redis (``VIGIL_REDIS_URL``), each with its
    ``ttl`` and ``max_entries``: ``{churn: {ttl: 5m, max_entries: 100000}}``, or the same
    as JSON in ``VIGIL_SERVE_CACHE``. Entries are keyed by the model version's digest and
    the validated row, so no two versions share one. Off for every model by default."""

    cache_timeout_ms: float = Field(default=50.0, gt=0)
    """Longest a cache lookup may take before the request is predicted as if uncached
    (the failure is counted); while Redis keeps failing the cache is skipped for a second
    at a time."""

    @field_validator("cache", mode="before")
    @classmethod
    def _check_cache(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                check_model_name(str(name))
            return {name: {} if spec is None else spec for name, spec in value.items()}
        return value

    @field_validator("readiness_checks", mode="before")
    @classmethod
    def _split_checks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip().lower() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            unknown = sorted(set(value) - set(READINESS_CHECKS))
            if unknown:
                raise ValueError(
                    f"unknown dependency {unknown[0]!r}; choose among "
                    f"{', '.join(READINESS_CHECKS)} (comma-separated, or empty for none)"
                )
            return tuple(dict.fromkeys(value))
        return value

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return tuple(
                str(v).strip().lower().rstrip(".").rstrip("/") for v in value if str(v).strip()
            )
        return value

    def column_limit(self, features: int) -> int:
        """The most columns a request to a model with ``features`` inputs may send."""
        if self.max_columns is not None:
            return max(self.max_columns, features)
        return max(features, min(4 * features + 64, COLUMN_LIMIT_CAP))


def json_values_limit(settings: ServingSettings) -> int:
    """The most values (keys, arrays and objects included) a JSON body is parsed with:
    room for ``max_cells`` values as records (a key each) or rows (an array each), plus
    request options.

    >>> json_values_limit(ServingSettings(max_cells=1000))
    67536
    """
    return 2 * settings.max_cells + 65_536


def load_serving_settings(**overrides: Any) -> ServingSettings:
    """Build :class:`ServingSettings`, turning pydantic's errors into one clear message.

    >>> import os; os.environ["VIGIL_SERVE_MAX_BATCH_SIZE"] = "0"
    >>> load_serving_settings()
    Traceback (most recent call last):
    ...
    vigil.errors.ConfigurationError: invalid setting VIGIL_SERVE_MAX_BATCH_SIZE: Input should be greater than or equal to 1
    >>> del os.environ["VIGIL_SERVE_MAX_BATCH_SIZE"]
    """
    return build_settings(ServingSettings, **overrides)
