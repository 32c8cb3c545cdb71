"""The transport-free core of serving: resolve a model, validate, batch, predict, capture.

Every protocol adapter (native JSON, Open Inference Protocol v2, MLflow) decodes its body
into a raw table and calls :meth:`DataPlane.predict`; nothing here knows about HTTP.

With a :class:`~vigil.serving.capture_runtime.CaptureRuntime`, every answered prediction
is in the inference log before :meth:`DataPlane.predict` returns (written by the
micro-batcher with the others of its model call, before any of them is released), so a
reply is only ever sent for a logged request; when the log cannot be written the call
raises a 503-class error instead. Rejected requests are logged by
:meth:`DataPlane.record_failure`, and feedback enters through
:meth:`DataPlane.submit_feedback`, which also tells every :attr:`DataPlane.feedback_listeners`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

from vigil.capture.sink import Answered
from vigil.errors import NotFoundError, ServiceUnavailableError, ValidationError
from vigil.serving import metrics
from vigil.serving.cache import decode_entries, encode_entry, row_hashes
from vigil.serving.config import ServingSettings, load_serving_settings
from vigil.serving.executors import INLINE_CELLS, Executors
from vigil.serving.explaining import Explanations
from vigil.serving.readiness import Readiness

if TYPE_CHECKING:
    import numpy as np

    from vigil.experiments.services import ExperimentServices
    from vigil.feedback.record import FeedbackResult, MatchedFeedback
    from vigil.serving.batching import BatchResult, Output
    from vigil.serving.cache import Namespace, PredictionCache
    from vigil.serving.capture_runtime import CaptureRuntime
    from vigil.serving.endpoints import EndpointRouter
    from vigil.serving.http import Route
    from vigil.serving.provider import ModelProvider, ServedModel
    from vigil.serving.tracing import RequestTrace, Tracing
    from vigil.serving.validation import RawTable

log = logging.getLogger("vigil.serving")

FeedbackListener = Callable[[list["MatchedFeedback"]], Awaitable[None] | None]
"""Called with the accepted feedback that matched a captured prediction (each item holds
the feedback's label and reward and the prediction's model, version, endpoint and variant),
after it is stored. May be a plain function or a coroutine function."""

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_FRESH_IDS: list[str] = []
# A forked child must not hand out the ids its parent still holds.
os.register_at_fork(after_in_child=_FRESH_IDS.clear)


def new_request_id() -> str:
    """A fresh request id: 128 random bits from the OS's CSPRNG as 32 hex digits, the
    shape of ``uuid4().hex``. Drawn 256 at a time: one ``os.urandom`` call per id is a
    system call on every request.

    >>> a, b = new_request_id(), new_request_id()
    >>> len(a), a != b, int(a, 16) >= 0
    (32, True, True)
    """
    try:
        return _FRESH_IDS.pop()
    except IndexError:
        pool = os.urandom(16 * 256).hex()
        _FRESH_IDS.extend(pool[i : i + 32] for i in range(0, len(pool), 32))
        return _FRESH_IDS.pop()


def request_id_from(header: str | None) -> str:
    """The client's ``X-Request-ID`` when it is a safe token, else a fresh one.

    >>> request_id_from("abc-123")
    'abc-123'
    >>> len(request_id_from("bad id\\n"))
    32
    """
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return new_request_id()


class _Answering(NamedTuple):
    """What the inference log needs of a request besides its answer."""

    request_id: str
    model: ServedModel
    features: Any
    route: str
    started: float
    variant: str | None
    key_id: str | None
    endpoint: str | None
    trace: RequestTrace | None
    propensity: float | None
    cached: bool = False
    passthrough: Mapping[str, Sequence[Any]] | None = None


_answered = partial(tuple.__new__, Answered)
_answering = partial(tuple.__new__, _Answering)
"""An :class:`_Answering` (and ``_answered`` an :class:`~vigil.capture.sink.Answered`) from
a tuple of all its fields in order: a named tuple's own constructor takes its fields as
arguments in Python, about three times the cost, on every request."""


def _check_passthrough(passthrough: Mapping[str, Sequence[Any]], n_rows: int) -> None:
    for name, values in passthrough.items():
        if len(values) != n_rows:
            raise ValidationError(
                f"passthrough field {name!r} has {len(values)} values for {n_rows} rows; "
                "send one value per row",
                detail={
                    "field": f"passthrough.{name}",
                    "row": None,
                    "expected": n_rows,
                    "got": len(values),
                },
            )


@dataclass(slots=True)
class Prediction:
    """The answer to one predict call, before any protocol encodes it."""

    request_id: str
    model: str
    version: int
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    classes: list[Any] | None
    cached: bool = False
    """Answered from the prediction cache."""


class DataPlane:
    """Answers predictions and metadata questions for the models a provider serves.

    Parameters
    ----------
    provider:
        Where the models come from.
    settings:
        Serving limits and batching.
    capture:
        The inference log and feedback store; ``None`` serves without capture.
    executors:
        The thread pools for key checks, feedback and large bodies (fresh ones by
        default); shut down by :meth:`shutdown`.
    endpoints:
        The experiment endpoints' router, started and stopped with the data plane;
        ``None`` on a server without a registry.
    services:
        The installation the admin API reads and changes (registry, endpoints); ``None``
        for a fixed set of models, whose server has no admin API.
    readiness:
        The dependency checks and drain state behind ``/readyz`` (none by default).
    cache:
        The Redis prediction cache, used for the models whose settings ask for it
        (:mod:`vigil.serving.cache`); ``None``: nothing is cached.
    tracing:
        Starts the OpenTelemetry spans of requests and batches (:mod:`vigil.serving.tracing`);
        ``None``, the default: tracing is off.
    explanations:
        The served models' explainers and their thread (built on first use).
    """

    def __init__(
        self,
        provider: ModelProvider,
        *,
        settings: ServingSettings | None = None,
        capture: CaptureRuntime | None = None,
        executors: Executors | None = None,
        endpoints: EndpointRouter | None = None,
        services: ExperimentServices | None = None,
        readiness: Readiness | None = None,
        cache: PredictionCache | None = None,
        tracing: Tracing | None = None,
        explanations: Explanations | None = None,
    ):
        self.provider = provider
        self.settings = settings or load_serving_settings()
        self.capture = capture
        self.executors = executors or Executors.create()
        self.endpoints = endpoints
        self.services = services
        self.readiness = readiness or Readiness()
        """What ``/readyz`` answers besides the models: draining, dependencies down."""
        self.cache = cache
        self._hits: list[tuple[_Answering, Output]] = []
        self._hits_logged: asyncio.Future[None] | None = None
        self.tracing = tracing
        """OpenTelemetry spans (``None``: off, and the request path pays one ``None`` test)."""
        self.explanations = explanations or Explanations()
        self.feedback_listeners: list[FeedbackListener] = []
        self.routes: tuple[Route, ...] = ()
        """Every operation this server answers, set by the app that serves this data plane:
        ``/openapi.json`` and ``/docs`` describe them (the layers above serving add theirs)."""
        """Subscribers to accepted feedback (e.g. bandit policies learning from rewards)."""

    # -- lifecycle -----------------------------------------------------------------------

    async def startup(self) -> None:
        """Load and warm the models, then the experiment endpoints' (before ready)."""
        await self.provider.start()
        if self.cache is not None:
            await self.cache.start()
        if self.endpoints is not None:
            await self.endpoints.start(self)

    def started(self) -> None:
        """The worker takes traffic: start what may wait until then. The capture's
        background work (building the feedback store and compactor, importing PyArrow,
        the first compaction pass) would only compete with start-up for the CPU; its sink,
        all a prediction needs, is ready from the first request."""
        if self.capture is not None:
            self.capture.start()

    async def shutdown(self) -> None:
        if self.endpoints is not None:
            await self.endpoints.stop()
        await self.provider.stop()
        if self.cache is not None:
            await self.cache.stop()
        # The pools first: feedback being stored must finish before its log closes.
        await asyncio.to_thread(self.executors.shutdown)
        await asyncio.to_thread(self.explanations.shutdown)
        if self.capture is not None:
            await self.capture.stop()

    @property
    def live(self) -> bool:
        return True

    @property
    def ready(self) -> bool:
        """Every model is loaded (the rest of readiness: :attr:`takes_traffic`)."""
        return self.provider.ready

    @property
    def takes_traffic(self) -> bool:
        """What ``/readyz`` says: models loaded, not draining, no dependency down. Every
        protocol's readiness probe answers this."""
        return self.readiness.takes_traffic(ready=self.provider.ready)

    # -- models --------------------------------------------------------------------------

    def model(self, name: str, selector: str | None = None) -> ServedModel:
        """The served version ``selector`` picks; raises a 404-class error when there is none."""
        return self.provider.get(name, selector)

    def models(self) -> list[ServedModel]:
        return self.provider.list()

    def model_ready(self, name: str, selector: str | None = None) -> bool:
        return self.provider.get(name, selector).ready

    # -- predict -------------------------------------------------------------------------

    async def predict(
        self,
        name: str,
        selector: str | None,
        table: RawTable,
        *,
        want_proba: bool = False,
        request_id: str | None = None,
        served: ServedModel | None = None,
        route: str = "",
        key_id: str | None = None,
        variant: str | None = None,
        endpoint: str | None = None,
        cache: bool = True,
        propensity: float | None = None,
        passthrough: Mapping[str, Sequence[Any]] | None = None,
    ) -> Prediction:
        """Validate ``table`` against the model's signature and predict it (batched).

        ``served`` skips the lookup when the caller already resolved the model. ``route``,
        ``key_id``, ``endpoint`` and ``variant`` (the experiment endpoint and the arm that
        chose the model, and the chance the endpoint's policy gave that arm) describe the
        call for the inference log. ``cache=False`` skips the prediction cache of a model
        that has one (bandit and canary endpoints). ``passthrough`` holds fields sent
        beside the features, one value per row, logged but never given to the model.
        """
        model = served or self.provider.get(name, selector)
        trace = None if self.tracing is None else self.tracing.entered(model, endpoint, variant)
        if not model.ready:
            raise ServiceUnavailableError(
                f"model {model.name} version {model.version} is still loading; retry shortly"
            )
        if want_proba and not model.has_proba:
            raise ValidationError(
                f"model {model.name} version {model.version} has no class probabilities; "
                "ask without return_proba / predict_proba",
                detail={"field": "return_proba", "row": None, "expected": False, "got": True},
            )
        started = perf_counter()
        validator = model.validator
        if validator.values(table) <= INLINE_CELLS:
            valid = validator.validate(table)
        else:  # a large table: checked and converted on a worker thread
            valid = await self.executors.decoding(validator.validate, table)
        if passthrough:
            _check_passthrough(passthrough, valid.n_rows)
        request_id = request_id or new_request_id()
        note = (
            None
            if self.capture is None
            else _answering(
                (
                    request_id,
                    model,
                    valid.X,
                    route,
                    started,
                    variant,
                    key_id,
                    endpoint,
                    trace,
                    propensity,
                    False,
                    passthrough or None,
                )
            )
        )
        namespace = model.cache if cache and self.cache is not None else None
        hashes: list[str] | None = None
        if namespace is not None:
            if validator.values(table) <= INLINE_CELLS:
                hashes = row_hashes(valid.X)
            else:
                hashes = await self.executors.decoding(row_hashes, valid.X)
            needs_proba = want_proba or model.capture_proba
            if trace is not None:
                trace.stage("cache lookup")
            hit = await self._cached(namespace, hashes, needs_proba)
            if hit is not None:
                if note is not None:
                    await self._log_hit(note._replace(cached=True), hit)
                if trace is not None:
                    trace.answered()
                return Prediction(
                    request_id=request_id,
                    model=model.name,
                    version=model.version,
                    predictions=hit[0],
                    probabilities=hit[1] if want_proba else None,
                    classes=model.classes,
                    cached=True,
                )
        if trace is not None:
            trace.queued(valid.n_rows)
        if note is None:
            result = await model.batcher.submit(
                valid.X, valid.n_rows, want_proba, None, None, trace
            )
        else:
            # Probabilities for the log when monitoring needs them (a version registered
            # with ROC AUC, say), even if this client asked for classes only.
            result = await model.batcher.submit(
                valid.X,
                valid.n_rows,
                want_proba or model.capture_proba,
                self._log_answers,
                note,
                trace,
            )
        if hashes is not None and namespace is not None and self.cache is not None:
            proba = result.probabilities
            entries = [
                encode_entry(p, None if proba is None else proba[i])
                for i, p in enumerate(result.predictions)
            ]
            self.cache.put(namespace, hashes, entries)
        if trace is not None:
            trace.answered()
        return Prediction(
            request_id,
            model.name,
            model.version,
            result.predictions,
            result.probabilities if want_proba else None,
            model.classes,
        )

    def submit_one(
        self,
        model: ServedModel,
        records: Any,
        want_proba: bool,
        request_id: str,
        route: str,
        started: float,
        key_id: str | None = None,
        endpoint: str | None = None,
        variant: str | None = None,
        propensity: float | None = None,
        cache: bool = True,
    ) -> asyncio.Future[BatchResult] | None:
        """:meth:`predict`'s plain case without a coroutine: one record of float features
        (``records``) that the validator's fused check takes, for a ready model whose
        prediction cache is off (or not asked: ``cache``), tracing off, no passthrough;
        ``key_id``, ``endpoint``, ``variant`` and ``propensity`` describe the call for the
        log as :meth:`predict`'s do. Queues it with its model's batch (logged as
        :meth:`predict` logs it) and returns the batcher's future; ``None`` when the call
        is not that plain case, and nothing was done: :meth:`predict` decides it, errors
        included."""
        if self.tracing is not None or not model.ready:
            return None
        if (want_proba and not model.has_proba) or (
            cache and self.cache is not None and model.cache is not None
        ):
            return None
        valid = model.validator.one_record(records)
        if valid is None:
            return None
        if self.capture is None:
            return model.batcher.submit(valid.X, 1, want_proba, None, None, None)
        note = _answering(
            (
                request_id,
                model,
                valid.X,
                route,
                started,
                variant,
                key_id,
                endpoint,
                None,
                propensity,
                False,
                None,
            )
        )
        return model.batcher.submit(
            valid.X, 1, want_proba or model.capture_proba, self._log_answers, note, None
        )

    async def _cached(
        self, namespace: Namespace, hashes: list[str], needs_proba: bool
    ) -> Output | None:
        """The answer of every row from the prediction cache, or ``None`` (a miss: some
        row is not there, or lacks the probabilities the request needs; or Redis failed)."""
        assert self.cache is not None
        found = await self.cache.get(namespace, hashes)
        outcome = "error"
        answer: Output | None = None
        if found is not None:
            outcome = "miss"
            if all(entry is not None for entry in found):
                try:
                    answer = decode_entries(found)  # type: ignore[arg-type]
                except (ValueError, TypeError, IndexError, KeyError):
                    answer = None  # an entry another version of vigil wrote: predict again
                if answer is not None and (answer[1] is not None or not needs_proba):
                    outcome = "hit"
                else:
                    answer = None
        if self.settings.metrics:
            metrics.record_cache(namespace.model, namespace.version, outcome)
        return answer

    def _log_hit(self, note: _Answering, answer: Output) -> asyncio.Future[None]:
        """Log a cache hit with the others of this turn of the event loop (the hits of one
        ``MGET`` wake together): one write for all of them, as the batcher does for the
        requests of one model call. Resolves once they are logged (or fails as they do)."""
        self._hits.append((note, answer))
        if self._hits_logged is None:
            loop = asyncio.get_running_loop()
            self._hits_logged = loop.create_future()
            loop.call_soon(self._flush_hits)
        return self._hits_logged

    def _flush_hits(self) -> None:
        hits, self._hits = self._hits, []
        logged, self._hits_logged = self._hits_logged, None
        assert logged is not None
        try:
            self._log_answers(hits)
        except Exception as exc:
            logged.set_exception(exc)
        else:
            logged.set_result(None)

    # -- capture and feedback ------------------------------------------------------------

    def _log_answers(self, answers: list[tuple[_Answering, Output]]) -> None:
        """Log the requests one model call answered, with one write, before any reply."""
        assert self.capture is not None
        now = perf_counter()
        # From one tuple of the fields in Answered's order (see _answering).
        entries = [
            _answered(
                (
                    a.request_id,
                    a.model.name,
                    a.model.version,
                    a.features,
                    a.model.validator.names,
                    predictions,
                    probabilities,
                    a.model.classes,
                    a.route,
                    (now - a.started) * 1000.0,
                    a.variant,
                    a.key_id,
                    a.endpoint,
                    a.cached,
                    a.propensity,
                    a.passthrough,
                )
            )
            for a, (predictions, probabilities) in answers
        ]
        span = None
        if self.tracing is not None:
            batch = next((a.trace.batch for a, _ in answers if a.trace is not None), None)
            span = None if batch is None else batch.capture(len(entries))
        try:
            self.capture.commit.write(entries)
        except ServiceUnavailableError as exc:
            if span is not None:
                from vigil.serving.tracing import fail_capture  # loaded: tracing is on

                fail_capture(span, exc)
            metrics.CAPTURE_WRITE_FAILURES.labels("answered").inc()
            raise ServiceUnavailableError(
                f"the prediction was not answered because the inference log cannot be "
                f"written ({exc.message}); retry once the server's capture directory is fixed",
                detail={"reason": "capture_unavailable"},
            ) from exc
        finally:
            if span is not None:
                span.end()

    def record_failure(
        self,
        *,
        request_id: str,
        status: int,
        error_code: str,
        message: str,
        body: bytes | None,
        route: str = "",
        model: str = "",
        version: int | None = None,
        key_id: str | None = None,
        variant: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Log a rejected predict request (its body masked and cut); never raises, since
        the client is being answered with an error anyway."""
        if self.capture is None:
            return
        try:
            self.capture.sink.record_failure(
                request_id=request_id,
                status=status,
                error_code=error_code,
                error_message=message,
                model=model,
                version=version,
                body=body,
                route=route,
                caller=key_id,
                variant=variant,
                endpoint=endpoint,
            )
        except Exception:
            metrics.CAPTURE_WRITE_FAILURES.labels("rejected").inc()
            log.warning("could not log rejected request %s", request_id, exc_info=True)

    async def submit_feedback(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        key_id: str | None = None,
        admin: bool = False,
    ) -> FeedbackResult:
        """Store labels and rewards (off the event loop) and tell the feedback listeners.

        ``key_id`` is the API key sending them (``None`` with authentication off) and
        ``admin`` whether it may label any prediction; other keys only label their own
        (see :mod:`vigil.feedback.owner`). Raises a 422-class error naming every invalid
        item and a 403-class one naming every item about another key's prediction (nothing
        is stored then), and a 404-class one when this server keeps no feedback (capture
        is off).
        """
        feedback = self.capture.feedback if self.capture is not None else None
        if feedback is None:
            raise NotFoundError(
                "this server keeps no feedback: capture is off (serve registered models with "
                "`vigil serve` and VIGIL_CAPTURE_ENABLED=true, or load labels with "
                "`vigil feedback FILE`)",
                detail={"reason": "feedback_disabled"},
            )
        loop = asyncio.get_running_loop()
        submit = partial(feedback.submit, caller=key_id, admin=admin)
        result = await loop.run_in_executor(self.executors.feedback, submit, list(items))
        if result.matched:
            for listener in list(self.feedback_listeners):
                try:
                    outcome = listener(list(result.matched))
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception:
                    # The feedback is stored; a subscriber's bug must not fail the client.
                    log.exception("feedback listener %r failed", listener)
        return result
