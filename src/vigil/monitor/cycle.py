"""One monitoring cycle: compute due windows, evaluate the alert rules, notify (and
remind Alertmanager of the alerts still firing).

This is what the server's schedule and ``vigil monitor run`` call. Each step stands on
the stored state, so a cycle interrupted anywhere is finished by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from vigil.durations import parse_duration
from vigil.monitor.alerts import AlertEvent, evaluate_rules, new_claim
from vigil.monitor.engine import MonitoringPass, OpenWindow, Progress, Resume, monitor_windows
from vigil.monitor.measure import WindowResult
from vigil.monitor.notify import deliver_events, resend_firing, retry_undelivered
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.windows import as_utc, parse_window
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from pathlib import Path

    from vigil.feedback.store import FeedbackStore
    from vigil.monitor.services import MonitorServices


@dataclass(frozen=True)
class CycleResult:
    """The windows computed and the alert transitions written by one cycle."""

    windows: list[WindowResult]
    """The last windows computed (:attr:`MonitoringPass.results`: all of them unless the
    cycle computed more than :data:`~vigil.monitor.computed.KEPT`)."""
    events: list[AlertEvent] = field(default_factory=list)
    delivered: int = 0
    """Events fully delivered to every webhook in this cycle (new and retried)."""
    log: MonitoringPass | None = None
    """The pass over the inference log: what it covered, read and left open."""
    counted: int | None = None
    """Windows computed, kept by :meth:`slim` where ``windows`` and ``log`` are dropped."""

    @property
    def n_computed(self) -> int:
        """Windows computed and stored by the cycle (``windows`` may hold only the last)."""
        if self.counted is not None:
            return self.counted
        return self.log.n_computed if self.log is not None else len(self.windows)

    def slim(self) -> CycleResult:
        """The counts and alert transitions without the windows' contents (they are in the
        store): what a cycle run in a child process sends back to the serving worker, which
        would otherwise unpickle up to :data:`~vigil.monitor.computed.KEPT` full window
        results on its own time."""
        return CycleResult([], self.events, self.delivered, counted=self.n_computed)

    @property
    def waiting(self) -> list[OpenWindow]:
        """Windows still open, not computed (the run was not asked for partial ones)."""
        return self.log.waiting if self.log is not None else []


def monitor_once(
    app: MonitorServices,
    *,
    model: str | None = None,
    since: datetime | str | None = None,
    window: str | None = None,
    partial: bool = False,
    now: datetime | None = None,
    settings: MonitorSettings | None = None,
    capture: Path | None = None,
    feedback: FeedbackStore | None = None,
    alerts: bool = True,
    progress: Progress | None = None,
    resume: Resume | None = None,
) -> CycleResult:
    """Run :func:`~vigil.monitor.engine.monitor_windows`, then the rules and webhooks.

    Alert rules are evaluated on the configured window size (``VIGIL_MONITOR_WINDOW``)
    only; a run with another ``window`` computes and stores windows but alerts on nothing.
    """
    settings = settings or app.monitor_settings
    now = as_utc(now) if now is not None else utcnow()
    done = monitor_windows(
        app,
        model=model,
        since=since,
        window=window,
        partial=partial,
        now=now,
        settings=settings,
        capture=capture,
        feedback=feedback,
        progress=progress,
        resume=resume,
    )
    windows = done.results
    spec = parse_window(window) if window is not None else settings.window_spec
    if not alerts or spec.text != settings.window_spec.text:
        # Rules watch the configured window only: an ad-hoc window size must not fire or
        # resolve the alerts the schedule maintains.
        return CycleResult(windows, log=done)
    horizon = as_utc(since) if since is not None else now - parse_duration(settings.lookback)
    claim = new_claim()
    events = evaluate_rules(
        app.database, settings.rules, since=horizon, window=spec.text, model=model, claim=claim
    )
    delivered = deliver_events(app.database, events, claim, settings)
    retried = retry_undelivered(app.database, settings)
    # Alertmanager forgets a firing alert at its endsAt unless it hears of it again.
    resend_firing(app.database, settings, skip={e.id for e in [*events, *retried]})
    return CycleResult(windows, events, len(delivered) + len(retried), log=done)
