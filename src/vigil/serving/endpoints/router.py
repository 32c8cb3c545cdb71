"""The endpoint router: the data plane of experiments, one per serving worker.

For every request to ``/v1/endpoints/{endpoint}/...`` the router picks the variant
(:mod:`vigil.experiments.assign`), hands the prediction to that variant's served model
through :meth:`DataPlane.predict <vigil.serving.dataplane.DataPlane.predict>` (which writes
the endpoint and variant into the capture record), counts the outcome, and starts shadow
copies once the primary's answer is ready. Nothing on that path touches SQL or Redis:

* endpoint configurations are cached and reloaded when
  :meth:`EndpointStore.list_revisions <vigil.experiments.store.EndpointStore.list_revisions>`
  (one query, every ``poll_interval``) shows a change; a new or changed endpoint's models
  are loaded and warmed (:meth:`RegistryProvider.ensure
  <vigil.serving.registry_provider.RegistryProvider.ensure>`) before it takes traffic;
* counters go to a :class:`~vigil.experiments.buffer.BufferedPolicyState` flushed every
  ``flush_interval``;
* a canary's share comes from the control record read after each controller tick
  (:class:`~vigil.experiments.canary.CanaryController`, run off the event loop every
  ``poll_interval`` by every worker: its compare-and-set lets exactly one apply a step);
* a bandit decides from a snapshot of the shared reward counters, re-read in the
  background at most every ``refresh_s`` of its configuration.

Feedback (``POST /v1/feedback``) reaches the router through the data plane's feedback
listeners: its reward and label are added to the counters of the variant that the capture
record names, in whichever worker receives it. Feedback about a prediction another replica
answered (still in that replica's live capture segment) is credited once that replica has
compacted it (:meth:`FeedbackStore.rematch <vigil.feedback.store.FeedbackStore.rematch>`,
tried every compaction interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Coroutine, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.errors import EndpointNotFoundError, ModelInputError, VigilError
from vigil.experiments.assign import (
    UnitHasher,
    WeightedChoice,
    bandit_policy,
    bandit_state,
    canary_side,
)
from vigil.experiments.buffer import BufferedPolicyState
from vigil.experiments.canary import CanaryController, canary_percent
from vigil.experiments.config import BanditTrafficPolicy as BanditConfig
from vigil.experiments.config import (
    CanaryPolicy,
    EndpointConfig,
    FixedPolicy,
    ShadowPolicy,
    SplitPolicy,
)
from vigil.experiments.state import LATENCY_BOUNDS_MS, RedisPolicyState
from vigil.experiments.store import EndpointStore
from vigil.names import check_name
from vigil.serving.endpoints import metrics
from vigil.serving.endpoints.feedback import variant_counts
from vigil.serving.endpoints.live import LiveEndpoint, Routed, Tally, target_of
from vigil.serving.endpoints.shadow import ShadowRunner

if TYPE_CHECKING:
    from vigil.experiments.services import ExperimentServices
    from vigil.experiments.state import PolicyStateStore
    from vigil.feedback.record import MatchedFeedback
    from vigil.serving.capture_runtime import CaptureRuntime
    from vigil.serving.dataplane import DataPlane, Prediction
    from vigil.serving.registry_provider import RegistryProvider
    from vigil.serving.validation import RawTable

__all__ = ["EndpointRouter"]

log = logging.getLogger("vigil.experiments")
REMATCH_START_DELAY_S = 5.0
"""How long after start the matching of feedback to other replicas' predictions begins."""

# A request for an endpoint this worker does not know reloads the list, at most this often
# per name, so a new endpoint answers at once but one unknown name cannot hammer the database.
_MISS_RELOAD_S = 0.25
_MISSES_KEPT = 1024
# An endpoint whose models could not be loaded (a registry hiccup, a deleted alias) is tried
# again this long after, even if its configuration does not change.
_RETRY_FAILED_S = 30.0


def _server_side(exc: BaseException) -> bool:
    """Whether a failure is the model's or the server's (counted against the variant),
    not the client's bad input. A model that refuses a well-formed input (422
    ``model_rejected_input``) counts against its variant: its rival may answer it."""
    if isinstance(exc, ModelInputError):
        return True
    return not isinstance(exc, VigilError) or exc.status >= 500


def _count(tally: Tally, started: float, *, error: bool) -> None:
    """Count one request begun at ``perf_counter()`` ``started`` in ``tally``."""
    tally.requests += 1
    if error:
        tally.errors += 1
    tally.buckets[bisect_left(LATENCY_BOUNDS_MS, (perf_counter() - started) * 1000.0)] += 1


def _uses_cache(live: LiveEndpoint) -> bool:
    """Whether an endpoint's requests may be answered from the prediction cache: not on a
    canary or bandit (its latency and reward comparisons would count cached answers),
    unless its configuration asks for it."""
    return live.kind in ("fixed", "split", "shadow") or live.config.cache


class EndpointRouter:
    """Routes endpoint requests of one worker; see the module documentation.

    Parameters
    ----------
    vigil
        The installation (endpoint store, registry and alerts for the canary controller).
    provider
        The worker's :class:`~vigil.serving.registry_provider.RegistryProvider`.
    state
        The shared policy state (SQL or Redis); the router buffers its writes.
    poll_interval
        Seconds between two reads of the endpoint revisions, and between two canary ticks.
    flush_interval
        Seconds between two flushes of the buffered counters.
    shadow_limit
        Shadow predictions running at once in this worker before copies are dropped.
    seed
        Seed of the per-request randomness (requests without a unit id, bandits, shadow
        sampling); ``None`` for fresh entropy.
    """

    def __init__(
        self,
        app: ExperimentServices,
        provider: RegistryProvider,
        state: PolicyStateStore,
        *,
        poll_interval: float = 1.0,
        flush_interval: float = 0.5,
        shadow_limit: int = 64,
        seed: int | None = None,
    ) -> None:
        self.vigil = app
        self.provider = provider
        self.state = state
        self.store = EndpointStore(app)
        self.buffer = BufferedPolicyState(
            state, interval=flush_interval, on_flushed=metrics.count_flushed
        )
        self.shadow = ShadowRunner(limit=shadow_limit)
        self.poll_interval = poll_interval
        self._endpoints: dict[str, LiveEndpoint] = {}
        self._random = random.Random(seed)  # noqa: S311 (routing, not cryptography)
        self._rng = np.random.default_rng(seed)
        self._dataplane: DataPlane | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reload = asyncio.Lock()
        self._missed: dict[str, float] = {}
        self._failed: dict[str, tuple[int, float]] = {}
        self._controller: CanaryController | None = None
        self._ticking: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._tallies: dict[tuple[str, str], Tally] = {}

    def __repr__(self) -> str:
        return f"EndpointRouter(endpoints={sorted(self._endpoints)}, state={self.state!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, dataplane: DataPlane) -> None:
        """Load every endpoint (and its models), then keep them current in the background."""
        self._dataplane = dataplane
        dataplane.feedback_listeners.append(self.on_feedback)
        try:
            await self.reload()
        except Exception:
            # The models the server was asked for are up; endpoints retry at the next poll.
            log.exception("loading the experiment endpoints failed; retrying in the background")
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._maintain(), name="vigil-endpoints"),
            loop.create_task(self._flusher(), name="vigil-policy-flush"),
        ]
        if dataplane.capture is not None:
            task = loop.create_task(self._rematcher(dataplane.capture), name="vigil-rematch")
            self._tasks.append(task)

    async def stop(self) -> None:
        """Stop the background work, let shadow copies finish briefly, flush the counters."""
        tasks = [*self._tasks, *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.shadow.drain(timeout=5.0)
        self._take_tallies()
        await asyncio.to_thread(self.buffer.flush)
        if isinstance(self.state, RedisPolicyState):
            self.state.close()  # its connection pool is ours; a SQL store shares vigil's

    # -- configurations ----------------------------------------------------------------

    def names(self) -> list[str]:
        """The endpoints this worker routes now."""
        return sorted(self._endpoints)

    def routed(self, name: str) -> LiveEndpoint | None:
        """The endpoint ``name`` if this worker routes it now (:meth:`lookup` also tries a
        reload for a name it does not know)."""
        return self._endpoints.get(name)

    async def reload(self) -> None:
        """Read the endpoint revisions and (re)load every endpoint that changed."""
        async with self._reload:
            revisions = await asyncio.to_thread(self.store.list_revisions)
            current = dict(self._endpoints)
            for name in set(current) - set(revisions):
                del current[name]
                log.warning("endpoint %s was deleted; no longer routed", name)
            for name, revision in sorted(revisions.items()):
                live = current.get(name)
                if live is not None and live.revision == revision:
                    continue
                failed = self._failed.get(name)
                if failed is not None and failed[0] == revision and time.monotonic() < failed[1]:
                    continue  # retried when it changes, or after _RETRY_FAILED_S
                try:
                    config = await asyncio.to_thread(self.store.get, name)
                    current[name] = await self._compile(config, revision)
                except Exception as exc:
                    if failed is None or failed[0] != revision:
                        log.error("endpoint %s (revision %d) not routed: %s", name, revision, exc)
                    self._failed[name] = (revision, time.monotonic() + _RETRY_FAILED_S)
                    continue
                self._failed.pop(name, None)
                log.warning(
                    "endpoint %s revision %d routed (%s)", name, revision, current[name].kind
                )
            self._endpoints = current  # one assignment: requests see the old or the new table

    async def _compile(self, config: EndpointConfig, revision: int) -> LiveEndpoint:
        await self.provider.ensure([v.model for v in config.variants])
        policy = config.policy
        live = LiveEndpoint(
            config=config,
            revision=revision,
            targets={v.name: target_of(v.model) for v in config.variants},
            kind=policy.kind,
            hasher=UnitHasher(config.salt),
        )
        if isinstance(policy, FixedPolicy):
            live.primary = policy.variant
        elif isinstance(policy, SplitPolicy):
            live.choice = WeightedChoice(policy.normalised_weights(config.variant_names))
        elif isinstance(policy, CanaryPolicy):
            live.primary, live.canary = policy.stable, policy.canary
            await self._read_control(live)
        elif isinstance(policy, ShadowPolicy):
            live.primary = policy.primary
            live.shadows = tuple(policy.shadows)
            live.sample_rate = policy.sample_rate
        elif isinstance(policy, BanditConfig):
            live.bandit = bandit_policy(policy, config.variant_names)
            live.refresh_s = policy.refresh_s
            await self._refresh_bandit(live)
        return live

    async def _read_control(self, live: LiveEndpoint) -> None:
        assert isinstance(live.config.policy, CanaryPolicy)
        control = await asyncio.to_thread(self.state.control, live.name)
        live.percent = canary_percent(live.config.policy, control.data)
        metrics.set_canary_percent(live.name, live.percent)

    async def _refresh_bandit(self, live: LiveEndpoint) -> None:
        live.refreshing = True
        try:
            stats = await asyncio.to_thread(self.state.stats, live.name)
            snapshot = bandit_state(live.config.variant_names, stats)
            assert live.bandit is not None
            # Off the event loop: Thompson sampling's are estimated by posterior draws.
            chances = await asyncio.to_thread(live.bandit.assignment_probabilities, snapshot)
            live.snapshot = snapshot
            live.propensities = dict(zip(snapshot.arms, chances.tolist(), strict=True))
            live.refreshed_at = time.monotonic()
        except Exception:
            log.exception("reading the bandit state of %s failed; using the last one", live.name)
            live.refreshed_at = time.monotonic()
        finally:
            live.refreshing = False

    # -- background --------------------------------------------------------------------

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.reload()
                await self._tick_canaries()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("maintaining the experiment endpoints failed; retrying")

    async def _tick_canaries(self) -> None:
        canaries = [e for e in self._endpoints.values() if e.kind == "canary"]
        if not canaries:
            return
        if self._controller is None:
            self._controller = CanaryController(self.vigil, self.state)
        loop = asyncio.get_running_loop()
        for live in canaries:
            # The share is re-read every poll even while a tick is busy with its side effects
            # (an alert to a slow webhook): a rollback applied by any worker takes effect here
            # within one poll interval.
            try:
                await self._read_control(live)
            except Exception:
                log.exception("reading the canary control of %s failed; retrying", live.name)
            if live.name not in self._ticking:
                self._ticking.add(live.name)
                task = loop.create_task(self._tick(live), name=f"vigil-canary-{live.name}")
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _tick(self, live: LiveEndpoint) -> None:
        assert self._controller is not None
        try:
            decision = await asyncio.to_thread(self._controller.tick, live.config, time.time())
            if decision is not None:
                log.warning("canary %s: %s (%s)", live.name, decision.action, decision.reason)
                await self._read_control(live)
        except Exception:
            log.exception("the canary controller of %s failed; retrying", live.name)
        finally:
            self._ticking.discard(live.name)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.buffer.interval)
            self._take_tallies()
            if self.buffer.pending():
                await asyncio.to_thread(self.buffer.flush)

    def _take_tallies(self) -> None:
        """Move the requests counted on the event loop to the buffer (on the loop, so no
        request is counted while its variant's tally is being taken)."""
        for (endpoint, variant), tally in self._tallies.items():
            taken = tally.take()
            if taken is not None:
                self.buffer.merge(endpoint, variant, taken)

    def _tally(self, endpoint: str, variant: str) -> Tally:
        """The tally of ``variant`` of ``endpoint``: one per pair, kept across reloads (a
        request routed before a reload is counted after it)."""
        tally = self._tallies.get((endpoint, variant))
        if tally is None:
            tally = self._tallies[endpoint, variant] = Tally()
        return tally

    async def _rematcher(self, capture: CaptureRuntime) -> None:
        """Credit feedback that arrived here before its prediction, answered by another
        replica, reached the shared store (see :meth:`FeedbackStore.rematch
        <vigil.feedback.store.FeedbackStore.rematch>`)."""
        # The capture runtime builds the feedback store (PyArrow behind it) once the worker
        # is up; wait for that instead of building it on the way to /readyz.
        await asyncio.sleep(REMATCH_START_DELAY_S)
        feedback = await asyncio.to_thread(lambda: capture.feedback)
        if feedback is None:
            return
        while True:
            await asyncio.sleep(feedback.rematch_interval)
            if not feedback.pending():
                continue
            try:
                matched = await asyncio.to_thread(feedback.rematch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("matching feedback to other replicas' predictions failed; retrying")
                continue
            if matched:
                self.on_feedback(matched)

    # -- the hot path ------------------------------------------------------------------

    async def lookup(self, name: str) -> LiveEndpoint:
        """The endpoint ``name``; an unknown name reloads the list once (rate-limited)
        before answering :class:`~vigil.errors.EndpointNotFoundError` (404)."""
        live = self._endpoints.get(name)
        if live is not None:
            return live
        check_name("endpoint name", name)
        now = time.monotonic()
        if now - self._missed.get(name, -math.inf) > _MISS_RELOAD_S:
            if len(self._missed) >= _MISSES_KEPT:
                self._missed.clear()
            self._missed[name] = now
            await self.reload()
        elif self._reload.locked():
            # Another request's reload is loading it (models warm first): wait for that one
            # rather than answer 404 for an endpoint that is a moment from being routed.
            async with self._reload:
                pass
        live = self._endpoints.get(name)
        if live is not None:
            return live
        names = self.names()
        known = f"endpoints: {', '.join(names)}" if names else "no endpoints are routed here"
        raise EndpointNotFoundError(
            f"no endpoint named {name!r}; {known} (GET /v1/admin/endpoints lists them)",
            detail={"endpoint": name, "endpoints": names},
        )

    def route(self, live: LiveEndpoint, unit: str | None) -> Routed:
        """Pick the variant for one request (sticky by ``unit`` for weights and canaries)."""
        kind = live.kind
        if kind == "split":
            choice = live.choice
            assert choice is not None
            if unit:
                point = live.points.get(unit)  # the hasher's memory, looked up before its call
                if point is None:
                    point = live.point(unit)
            else:
                point = self._random.random()
            variant = choice.names[bisect_right(choice.inner, point)]  # choice.pick, inlined
        elif kind == "canary":
            point = live.point(unit) if unit else self._random.random()
            variant = live.canary if canary_side(point, live.percent) else live.primary
        elif kind in ("fixed", "shadow"):
            variant = live.primary
        else:
            variant, propensity = self._pull(live)
            arm = self.arm(live, variant)
            return Routed(
                live, variant, arm.served, propensity, arm.headers, arm.head, arm.tally, arm.cache
            )
        if live.generation == self.provider.generation:
            found = live.arms.get(variant)
            if found is not None:
                return found
        return self.arm(live, variant)

    def arm(self, live: LiveEndpoint, variant: str) -> Routed:
        """``variant``'s :class:`Routed`: its served model resolved once per generation of
        the provider (an alias moved, a version loaded: resolved again), its propensity,
        headers and tally."""
        generation = self.provider.generation
        if live.generation != generation:
            live.arms = {}
            live.generation = generation
        arm = live.arms.get(variant)
        if arm is None:
            name, selector = live.targets[variant]
            headers = live.headers(variant)
            arm = Routed(
                live,
                variant,
                self.provider.get(name, selector),
                None if live.choice is None else live.choice.share(variant),
                headers,
                b"".join(b"%s: %s\r\n" % pair for pair in headers),
                self._tally(live.name, variant),
                _uses_cache(live),
            )
            live.arms[variant] = arm
        return arm

    def _pull(self, live: LiveEndpoint) -> tuple[str, float]:
        """The bandit's arm for one request and the chance it had (uniform before the
        first snapshot of the counters)."""
        assert live.bandit is not None
        if not live.refreshing and time.monotonic() - live.refreshed_at >= live.refresh_s:
            live.refreshing = True
            task = asyncio.get_running_loop().create_task(self._refresh_bandit(live))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if live.snapshot is None or live.propensities is None:
            names = live.config.variant_names
            return names[self._random.randrange(len(names))], 1.0 / len(names)
        arm = live.bandit.select(live.snapshot, self._rng)
        return arm, live.propensities[arm]

    async def predict(
        self,
        routed: Routed,
        table: RawTable,
        *,
        want_proba: bool,
        request_id: str,
        route: str = "",
        key_id: str | None = None,
        passthrough: Mapping[str, Sequence[Any]] | None = None,
    ) -> Prediction:
        """Predict with the routed variant, count the outcome, then start shadow copies
        (``passthrough``: fields logged beside the features, see
        :meth:`DataPlane.predict <vigil.serving.dataplane.DataPlane.predict>`).

        The native route does the same in its own coroutine (:meth:`call`, then
        :meth:`answered` or :meth:`failed`): one frame fewer per request."""
        started = perf_counter()
        try:
            result = await self.call(
                routed,
                table,
                want_proba=want_proba,
                request_id=request_id,
                route=route,
                key_id=key_id,
                passthrough=passthrough,
            )
        except BaseException as exc:
            self.failed(routed, started, exc)
            raise
        self.answered(routed, started, table, want_proba, result.request_id, route, key_id)
        return result

    def call(
        self,
        routed: Routed,
        table: RawTable,
        *,
        want_proba: bool,
        request_id: str,
        route: str = "",
        key_id: str | None = None,
        passthrough: Mapping[str, Sequence[Any]] | None = None,
    ) -> Coroutine[Any, Any, Prediction]:
        """The data plane's prediction with the routed variant (its coroutine itself, not
        awaited); the caller reports the outcome to :meth:`answered` or :meth:`failed`."""
        dataplane = self._dataplane
        assert dataplane is not None, "start() the router first"
        served = routed.served
        return dataplane.predict(
            served.name,
            None,
            table,
            want_proba=want_proba,
            request_id=request_id,
            served=served,
            route=route,
            key_id=key_id,
            endpoint=routed.endpoint.name,
            variant=routed.variant,
            cache=routed.cache,
            propensity=routed.propensity,
            passthrough=passthrough,
        )

    def answered(
        self,
        routed: Routed,
        started: float,
        table: RawTable,
        want_proba: bool,
        request_id: str,
        route: str,
        key_id: str | None,
    ) -> None:
        """Count a prediction the routed variant answered (begun at ``perf_counter()``
        ``started``), then start the endpoint's shadow copies of it."""
        tally = routed.tally  # _count(tally, started, error=False), inlined: every request
        tally.requests += 1
        tally.buckets[bisect_left(LATENCY_BOUNDS_MS, (perf_counter() - started) * 1000.0)] += 1
        live = routed.endpoint
        if live.shadows and (live.sample_rate >= 1.0 or self._random.random() < live.sample_rate):
            for variant in live.shadows:
                work = self._shadow(live, variant, table, want_proba, request_id, route, key_id)
                if not self.shadow.submit(work):
                    work.close()

    def failed(self, routed: Routed, started: float, exc: BaseException) -> None:
        """Count a prediction of the routed variant that failed with ``exc`` (against the
        variant when the fault is the model's or the server's) and name the endpoint and
        variant in its error body."""
        _count(routed.tally, started, error=_server_side(exc))
        if isinstance(exc, VigilError):  # the error body tells which arm failed
            exc.detail = {**exc.detail, "endpoint": routed.endpoint.name, "variant": routed.variant}

    async def _shadow(
        self,
        live: LiveEndpoint,
        variant: str,
        table: RawTable,
        want_proba: bool,
        request_id: str,
        route: str,
        key_id: str | None,
    ) -> None:
        dataplane = self._dataplane
        assert dataplane is not None
        started = perf_counter()
        tally = self._tally(live.name, variant)
        try:
            served = self.arm(live, variant).served
            await dataplane.predict(
                served.name,
                None,
                table,
                want_proba=want_proba and served.has_proba,
                # Its own id: feedback for the request joins the primary's record only.
                request_id=f"{request_id}:shadow:{variant}",
                served=served,
                route=route,
                key_id=key_id,
                endpoint=live.name,
                variant=variant,
                cache=_uses_cache(live),
            )
        except Exception as exc:
            _count(tally, started, error=_server_side(exc))
            raise
        _count(tally, started, error=False)

    # -- feedback ----------------------------------------------------------------------

    def on_feedback(self, matched: list[MatchedFeedback]) -> None:
        """Add accepted feedback to the counters of the variant each captured prediction
        names (a data-plane feedback listener; see :mod:`vigil.serving.endpoints.feedback`).
        Feedback outside experiments is ignored."""
        for endpoint, variant, counts in variant_counts(matched):
            self.buffer.add(endpoint, variant, **counts)
