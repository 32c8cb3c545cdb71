"""The policy loop inside the server: triggers, then every run in flight, every few seconds.

Like scheduled monitoring (:mod:`vigil.monitor.scheduler`), the work runs in a thread
(``asyncio.to_thread``), never on the event loop, and only in the worker holding the
``policy`` lease in the SQL store, so several workers or replicas evaluate each trigger
once. (Runs are safe to advance from anywhere, being compare-and-set; the lease only
saves the work.) The first tick writes the policies listed in ``vigil.yaml`` to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from vigil.monitor.scheduler import acquire_lease, release_lease
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from vigil.policy.engine import PolicyEngine
    from vigil.policy.services import PolicyServices
    from vigil.policy.settings import PolicySettings

__all__ = ["PolicyScheduler"]

log = logging.getLogger("vigil.policy")

LEASE = "policy"
YAML_ACTOR = "vigil.yaml"


class PolicyScheduler:
    """Ticks the policy engine every ``settings.interval_s`` from :meth:`start` to
    :meth:`stop` (built by :meth:`vigil.app.Vigil.policy_scheduler`)."""

    def __init__(self, app: PolicyServices, settings: PolicySettings) -> None:
        self.vigil = app
        self.settings = settings
        self._engine: PolicyEngine | None = None
        self.ttl = timedelta(seconds=max(3 * settings.interval_s, 60.0))
        self.ticks = 0
        self._synced = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"PolicyScheduler(every {self.settings.interval_s}s)"

    @property
    def engine(self) -> PolicyEngine:
        if self._engine is None:
            from vigil.policy.engine import PolicyEngine  # in the loop's thread, not at start

            self._engine = PolicyEngine(self.vigil)
        return self._engine

    def _sync(self) -> None:
        from vigil.policy.store import PolicyStore

        store = PolicyStore(self.vigil)
        for config in self.settings.policies:
            try:
                store.set(config, actor=YAML_ACTOR)
            except Exception:
                log.exception("could not write the policy of %s from vigil.yaml", config.model)
        self._synced = True

    @staticmethod
    def _busy(engine: PolicyEngine) -> bool:
        """Whether there is anything to look at: a policy, or a run in flight (two reads)."""
        return bool(engine.policies.list() or engine.runs.all_active())

    def tick(self) -> None:
        """One step (blocking): if this worker holds the lease, start the runs whose
        triggers fired and advance every run in flight."""
        from vigil.policy.triggers import due_triggers

        engine = self.engine
        if (self._synced or not self.settings.policies) and not self._busy(engine):
            return  # no policy anywhere: not even the lease is written
        if not acquire_lease(self.vigil.database, LEASE, engine.holder, self.ttl):
            return
        if not self._synced:
            self._sync()
        self.ticks += 1
        now = utcnow()
        for stored in engine.policies.list():
            try:
                fired, cursors = due_triggers(self.vigil.database, stored, now)
                if cursors:
                    engine.policies.update_trigger_state(stored.config.model, cursors)
                if fired and stored.config.enabled:
                    started = engine.start(
                        stored.config.model,
                        {**fired[0], "also": fired[1:5]} if len(fired) > 1 else fired[0],
                        actor=engine.actor,
                        automatic=True,
                    )
                    if started is not None:
                        log.info(
                            "policy of %s: run %s started (%s)",
                            stored.config.model,
                            started.run_id,
                            fired[0]["kind"],
                        )
            except Exception:
                log.exception("could not evaluate the triggers of %s", stored.config.model)
        engine.tick()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_s)
            try:
                await asyncio.to_thread(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must never take the server down
                log.exception("policy loop failed; retrying in %.0fs", self.settings.interval_s)

    def start(self) -> None:
        """Start the background task (from the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="vigil-policy")

    async def stop(self) -> None:
        """Cancel the task and give the lease up."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._engine is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    release_lease, self.vigil.database, LEASE, self._engine.holder
                )
