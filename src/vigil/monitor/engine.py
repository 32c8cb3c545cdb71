"""The monitoring engine: read the log, cut it into windows, measure and store them.

:func:`monitor_windows` is idempotent. A complete window already in the store is not
computed again, unless labels for its predictions arrived since (then it is recomputed
and its points replaced, so a late label lands in its prediction's window). The current,
partial window is computed only when asked (``partial=True``), stored marked partial, and
replaced once it completes. Rerunning therefore never duplicates a series point.

Whole-hour time windows are judged from stored summaries (:mod:`vigil.monitor.summaries`);
every other window (count windows, and every window with summaries off) is cut from a
bounded stream of the log (:mod:`vigil.monitor.streamed`). :func:`candidate_windows` and
:func:`due_windows` cut and select windows of rows already in one frame.

Alerting (:mod:`vigil.monitor.alerts`) reads the stored series afterwards;
:func:`vigil.monitor.cycle.monitor_once` runs both, as the server's schedule and
``vigil monitor run`` do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from vigil.capture.reader import read_capture
from vigil.drift.summarised import NeedsRawValues
from vigil.durations import parse_duration
from vigil.errors import NotFoundError
from vigil.feedback.spans import FeedbackSpans
from vigil.monitor.baseline import Baseline, load_baseline
from vigil.monitor.computed import Computed
from vigil.monitor.estimation import MAX_ROWS as ESTIMATE_ROWS
from vigil.monitor.estimation import estimate_binned, estimate_window
from vigil.monitor.measure import WindowResult, count_labelled, estimated_points, measure_window
from vigil.monitor.series import StoredWindow, note_in_summary, save_window, stored_windows
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.streamed import StreamStats, stream_pass
from vigil.monitor.summaries.columns import available as sketches_installed
from vigil.monitor.summaries.judge import judge_fairness, measure_summary
from vigil.monitor.summaries.late import MARKS_KEY, LabelMarks
from vigil.monitor.summaries.store import bucket_summaries, label_summaries, window_groups
from vigil.monitor.summaries.store import windows as merge_windows
from vigil.monitor.summaries.window import DEFAULT_GRAIN_S as GRAIN_S
from vigil.monitor.summaries.window import Anchors, WindowSummary, anchors_for
from vigil.monitor.windows import (
    Cursor,
    SeriesKey,
    Window,
    WindowSpec,
    as_utc,
    parse_window,
    split_windows,
)
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from pathlib import Path

    from vigil.feedback.store import FeedbackStore
    from vigil.monitor.services import MonitorServices
    from vigil.services import Services

log = logging.getLogger("vigil.monitor")

Progress = Callable[[int, int, str], None]
"""Called with (done, to do, unit): ``windows`` when windows are judged from summaries,
``rows`` (of the log, from its first pass) when they are read as rows."""


def _read_labels(feedback: FeedbackStore, since: datetime) -> FeedbackSpans:
    # A label arrives after its prediction: those of predictions in the span arrived since
    # its start. One bounded pass keeps where each points (8 bytes a label); each window
    # reads its own labels (and feedback fields: a sensitive attribute may be one) when it
    # is measured or checked again, never the whole store at once.
    return FeedbackSpans.scan(feedback, since)


def _rebuild(stored: StoredWindow, spec: WindowSpec, log_rows: pd.DataFrame) -> Window | None:
    """The rows of a stored count window, from its recorded ends (for late labels)."""
    key = stored.key
    same = log_rows[
        (log_rows["model"] == key.model)
        & (log_rows["version"] == key.version)
        & (log_rows["route"].fillna("") == key.route)
    ]
    if same.empty or stored.start_request_id is None or stored.end_request_id is None:
        return None
    times = pd.to_datetime(same["time"], utc=True)
    ids = same["request_id"].astype(str)
    lo, hi = pd.Timestamp(stored.start), pd.Timestamp(stored.end)
    after_start = (times > lo) | ((times == lo) & (ids >= stored.start_request_id))
    before_end = (times < hi) | ((times == hi) & (ids <= stored.end_request_id))
    inside = same[(after_start & before_end).to_numpy()]
    ok = pd.to_numeric(inside["status"], errors="coerce").fillna(200) < 400
    return Window(
        key,
        spec,
        stored.start,
        stored.end,
        inside[ok.to_numpy()],
        inside[~ok.to_numpy()],
        complete=not stored.partial,
        start_request_id=stored.start_request_id,
        end_request_id=stored.end_request_id,
    )


def _cursors(stored: list[StoredWindow]) -> dict[SeriesKey, Cursor]:
    cursors: dict[SeriesKey, Cursor] = {}
    for s in stored:
        if not s.partial and s.end_request_id is not None:
            current = cursors.get(s.key)
            if current is None or (s.end, s.end_request_id) > current:
                cursors[s.key] = (s.end, s.end_request_id)
    return cursors


def candidate_windows(
    log_rows: pd.DataFrame,
    stored: list[StoredWindow],
    spec: WindowSpec,
    *,
    now: datetime,
    grace_s: float,
    rebuild: bool = True,
) -> list[Window]:
    """Every window the rows fall in (count windows continue after the stored ones; with
    ``rebuild``, stored count windows are rebuilt from their ends to check their labels)."""
    if log_rows.empty:
        return []
    grace = timedelta(seconds=grace_s)
    if spec.is_time:
        return split_windows(log_rows, spec, now=now, grace=grace)
    candidates = split_windows(log_rows, spec, now=now, grace=grace, cursors=_cursors(stored))
    if rebuild:
        for s in stored:
            if not s.partial:
                rebuilt = _rebuild(s, spec, log_rows)
                if rebuilt is not None:
                    candidates.append(rebuilt)
    return candidates


def due_windows(
    candidates: list[Window], labels: pd.DataFrame, stored: list[StoredWindow], *, partial: bool
) -> list[Window]:
    """The windows a run must compute: new complete ones, stored ones whose labelled count
    changed, and (when ``partial``) the current partial ones."""
    by_start = {(s.key, s.start): s for s in stored}
    todo = []
    for w in candidates:
        if not w.complete and not partial:
            continue
        before = by_start.get((w.key, w.start))
        if (
            before is not None
            and not before.partial
            and w.complete
            and before.n_labelled == count_labelled(w.rows, labels)
        ):
            continue  # already stored and nothing new to say about it
        todo.append(w)
    return todo


@dataclass
class Resume:
    """What a long-lived caller (the server's schedule) carries from one run to the next,
    so a run reads only the part of the log that can still change.

    A run reads the whole lookback span when it has no resume point, when the number of
    labels changed (a late label may concern any window) or when it is asked for another
    model or window size; otherwise it starts at the oldest window that was still open
    at the previous run (minus the grace period for records still in flight).
    """

    scope: tuple[str | None, str] | None = None
    labels: int = -1
    read_from: datetime | None = None

    def start(
        self, scope: tuple[str | None, str], labels: int, lookback_start: datetime
    ) -> datetime:
        if self.scope != scope or self.labels != labels or self.read_from is None:
            return lookback_start
        return max(lookback_start, self.read_from)

    def update(
        self,
        scope: tuple[str | None, str],
        labels: int,
        candidates: list[Window],
        spec: WindowSpec,
        horizon: datetime,
    ) -> None:
        """``horizon`` is ``now - grace``: records stamped before it may still arrive."""
        floor = spec.bounds(horizon)[0] if spec.is_time else horizon
        open_starts = [w.start for w in candidates if not w.complete]
        self.scope, self.labels = scope, labels
        self.read_from = min([floor, *open_starts])


@dataclass(frozen=True)
class OpenWindow:
    """A window still open, left out of a run without ``partial``."""

    key: SeriesKey
    window: str
    start: datetime
    n_rows: int
    rows_to_go: int | None
    """Rows still missing before a count window closes (``None``: closes on time only)."""
    closes_at: datetime | None
    """When a time window closes, grace period included (``None``: on count only)."""


def _open_window(w: Window, grace_s: float) -> OpenWindow:
    spec = w.spec
    closes = None
    if spec.seconds is not None:
        closes = spec.bounds(w.start)[1] + timedelta(seconds=grace_s)
    to_go = max(spec.size - w.n_rows, 0) if spec.size is not None else None
    return OpenWindow(w.key, spec.text, w.start, w.n_rows, to_go, closes)


@dataclass(frozen=True)
class MonitoringPass:
    """What one :func:`monitor_windows` run computed, and what it saw without computing.

    Every window computed is stored as soon as it is measured; the pass keeps a bounded
    part of them (:class:`~vigil.monitor.computed.Computed`), so a run's memory does not
    grow with the number of windows it computes. Read the others from the store
    (:func:`~vigil.monitor.series.stored_windows`).
    """

    computed: Computed
    """The windows computed and stored by this run: counts, the last ones, the newest of
    each series."""
    waiting: list[OpenWindow]
    """Windows still open and not computed (the run was not asked for ``partial`` ones)."""
    window: str
    since: datetime
    """The start of the span of the log the run covered."""
    n_records: int
    """Records in the span of the log the run covered (answered rows and rejected requests)."""
    stream: StreamStats | None = None
    """What a run of windows read as rows read (:mod:`vigil.monitor.streamed`)."""

    @property
    def results(self) -> list[WindowResult]:
        """The last windows computed and stored by this run, in the order computed: all of
        them unless it computed more than :data:`~vigil.monitor.computed.KEPT`
        (:attr:`n_computed` counts them all)."""
        return self.computed.recent()

    @property
    def n_computed(self) -> int:
        """Windows computed and stored by this run."""
        return self.computed.count

    @property
    def latest(self) -> dict[SeriesKey, WindowResult]:
        """The newest window computed of each series."""
        return self.computed.latest


def monitor_windows(
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
    progress: Progress | None = None,
    resume: Resume | None = None,
) -> MonitoringPass:
    """Compute and store every window that is due; returns what the run computed (counts,
    the last windows, the newest of each series) and what it saw but did not compute (see
    :class:`MonitoringPass`).

    ``since`` defaults to ``now - lookback`` (``VIGIL_MONITOR_LOOKBACK``, 7 days);
    ``window`` to ``VIGIL_MONITOR_WINDOW``. ``capture`` and ``feedback`` default to the
    root's capture directory and feedback store (see :class:`~vigil.services.Services`).
    ``resume``, kept by the caller between runs, lets a run skip the part of the log that
    cannot change any more (see :class:`Resume`).
    """
    settings = settings or app.monitor_settings
    spec = parse_window(window) if window is not None else settings.window_spec
    now = as_utc(now) if now is not None else utcnow()
    start = as_utc(since) if since is not None else now - parse_duration(settings.lookback)
    if model is not None:
        app.registry.get_model(model)  # a typo gets "model not found", not silence
    capture = capture if capture is not None else app.capture_dir
    if feedback is None:
        own = app.feedback_store(capture=capture)
        try:
            labels = _read_labels(own, start)
        finally:
            own.close()
    else:
        labels = _read_labels(feedback, start)
    if settings.summaries and by_summaries(spec) and _summaries_installed():
        return _summary_pass(
            app, model, start, now, spec, settings, capture, labels, partial, progress
        )
    scope = (model, spec.text)
    # Late labels are found per window (their marks), so they do not move the resume point.
    read_from = resume.start(scope, 0, start) if resume is not None else start
    baselines: dict[tuple[str, int], Baseline | None] = {}

    def baseline_of(name: str, version: int) -> Baseline | None:
        if (name, version) not in baselines:
            try:
                baselines[(name, version)] = load_baseline(
                    app, name, version, settings.fairness.get(name)
                )
            except NotFoundError:
                log.warning("%s version %d is in the log but not registered", name, version)
                baselines[(name, version)] = None
        return baselines[(name, version)]

    done = stream_pass(
        app.artifacts,
        capture,
        model=model,
        since=read_from,
        now=now,
        spec=spec,
        grace=timedelta(seconds=settings.grace_s),
        stored=stored_windows(app.database, window=spec.text, model=model, since=start),
        labels=labels,
        partial=partial,
        baseline_of=baseline_of,
        database=app.database,
        progress=progress,
    )
    if resume is not None:
        horizon = now - timedelta(seconds=settings.grace_s)
        resume.update(scope, 0, done.open, spec, horizon)
    # An open window computed (``partial``) is the newest of its series.
    computed = {(k, r.start) for k, r in done.computed.latest.items()}
    waiting = [
        _open_window(w, settings.grace_s) for w in done.open if (w.key, w.start) not in computed
    ]
    return MonitoringPass(
        done.computed, waiting, spec.text, start, n_records=done.records, stream=done.stats
    )


# --- windows judged from summaries -------------------------------------------------------


_warned: list[bool] = []


def _summaries_installed() -> bool:
    if sketches_installed():
        return True
    if not _warned:
        _warned.append(True)
        log.warning(
            "windows of whole hours are read as rows: judging them from summaries needs "
            "pip install 'vigil[monitor]' (or set VIGIL_MONITOR_SUMMARIES=false)"
        )
    return False


def by_summaries(spec: WindowSpec) -> bool:
    """Whether windows of ``spec`` are merges of summary buckets: whole-hour time windows."""
    return spec.is_time and spec.seconds is not None and spec.seconds % GRAIN_S == 0


def _raw_window(
    app: Services,
    key: SeriesKey,
    summary: WindowSummary,
    spec: WindowSpec,
    now: datetime,
    capture: Path,
    complete: bool,
) -> Window | None:
    """The rows of one window read raw (a window small enough for exact tests)."""
    frame = read_capture(
        key.model, summary.start, summary.end, key.version, store=app.artifacts, log_dir=capture
    )
    if frame.empty:
        return None
    found = [w for w in split_windows(frame, spec, now=now) if w.key == key]
    if not found:
        return None
    found[0].complete = complete
    return found[0]


def _estimate_from_raw(
    app: Services,
    result: WindowResult,
    baseline: Baseline,
    key: SeriesKey,
    summary: WindowSummary,
    spec: WindowSpec,
    now: datetime,
    capture: Path,
) -> None:
    """Performance estimated before labels, for a window judged from its summary.

    A window of at most :data:`~vigil.monitor.estimation.MAX_ROWS` rows is read raw for
    it, as the exact engine estimates it; a larger one is estimated from the summary's
    score bins (binary classifiers: :func:`~vigil.monitor.estimation.estimate_binned`),
    and otherwise gets no estimate (a note says so) rather than an unbounded read.
    """
    estimator = baseline.estimator
    if estimator is None or summary.rows == 0:
        return
    if summary.rows > ESTIMATE_ROWS:
        result.estimated = estimate_binned(summary.scores, estimator, result.notes)
        if result.estimated is not None:
            result.points += estimated_points(result.estimated, estimator.reference)
            return
        result.notes.append(
            f"no estimated performance: {summary.rows:,} rows judged from summaries "
            f"(estimated on at most {ESTIMATE_ROWS:,} raw rows)"
        )
        return
    raw = _raw_window(app, key, summary, spec, now, capture, not result.partial)
    if raw is None:
        return
    result.estimated = estimate_window(raw.rows, estimator, result.notes)
    result.points += estimated_points(result.estimated, estimator.reference)


def _summary_pass(
    app: MonitorServices,
    model: str | None,
    start: datetime,
    now: datetime,
    spec: WindowSpec,
    settings: MonitorSettings,
    capture: Path,
    labels: FeedbackSpans,
    partial: bool,
    progress: Progress | None,
) -> MonitoringPass:
    """:func:`monitor_windows` for whole-hour time windows, from stored summaries.

    The buckets of every compacted part in the lookback are read (built on first read),
    merged into windows, and each due window is judged from its merge; one whose
    statistics need raw values (KS: effective n at most the method table's limit) is read
    raw, bounded by that limit. Labels are joined per window, from the window's own span
    of the log (projected columns), and only to windows some label may join
    (:mod:`vigil.monitor.summaries.late`): parts whose windows are all stored, with no new
    label for them, are not opened.
    """
    assert spec.seconds is not None
    baselines: dict[tuple[str, int], Baseline | None] = {}

    def baseline_of(name: str, version: int) -> Baseline | None:
        if (name, version) not in baselines:
            try:
                baselines[(name, version)] = load_baseline(
                    app, name, version, settings.fairness.get(name)
                )
            except NotFoundError:
                log.warning("%s version %d is in the log but not registered", name, version)
                baselines[(name, version)] = None
        return baselines[(name, version)]

    anchored: dict[tuple[str, int], Anchors | None] = {}

    def anchors(name: str, version: int) -> Anchors | None:
        if (name, version) not in anchored:
            found = baseline_of(name, version)
            anchored[(name, version)] = anchors_for(found) if found is not None else None
        return anchored[(name, version)]

    floor = spec.bounds(start)[0]
    window_s = spec.seconds
    marks = LabelMarks(labels, int(window_s))
    stored = {
        (s.key, s.start): s
        for s in stored_windows(app.database, window=spec.text, model=model, since=start)
    }
    joined: dict[tuple[str, datetime], dict[SeriesKey, WindowSummary]] = {}

    def performance(key: SeriesKey, begin: datetime) -> WindowSummary | None:
        """The window's performance sums: its labels joined to its own span of the log
        (projected columns), only when some label may join it."""
        if marks.of(key.model, begin) == 0:
            return None
        where = (key.model, begin)
        if where not in joined:
            end = begin + timedelta(seconds=window_s)
            found = label_summaries(
                app.artifacts,
                anchors,
                marks.labels_for(key.model, begin, end),
                model=key.model,
                since=begin,
                until=min(end, now),
                log_dir=capture,
                grain_s=GRAIN_S,
            )
            joined[where] = {k: v for (k, _b), v in merge_windows(found, window_s).items()}
        return joined[where].get(key)

    # Windows stored complete with the mark of late labels they were computed with have
    # nothing new to join; of those whose mark moved, the ones whose labelled rows did not
    # change only take the new mark. Parts holding only known windows are not opened: an
    # incremental cycle reads the new parts, and late labels the windows they touch.
    known: set[tuple[SeriesKey, datetime]] = set()
    for where, s in stored.items():
        if s.partial:
            continue
        mark = marks.of(where[0].model, where[1])
        kept = s.summary.get(MARKS_KEY)
        if kept == mark or (kept is None and mark == 0 and s.n_labelled == 0):
            known.add(where)
            continue
        perf = performance(*where)
        if (perf.labelled if perf is not None else 0) == s.n_labelled:
            note_in_summary(app.database, s.id, **{MARKS_KEY: mark})
            known.add(where)

    def needed(buckets: list[tuple[SeriesKey, datetime]]) -> bool:
        return any((key, spec.bounds(begin)[0]) not in known for key, begin in buckets)

    buckets = bucket_summaries(
        app.artifacts,
        anchors,
        model=model,
        since=floor,
        until=now,
        log_dir=capture,
        grain_s=GRAIN_S,
        needed=needed,
    )
    windows = merge_windows(buckets, spec.seconds)
    grace = timedelta(seconds=settings.grace_s)
    todo: list[tuple[SeriesKey, WindowSummary, bool]] = []
    waiting: list[OpenWindow] = []
    for (key, begin), summary in sorted(windows.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))):
        complete = summary.end + grace <= now
        if not complete and not partial:
            waiting.append(
                OpenWindow(key, spec.text, begin, summary.rows, None, summary.end + grace)
            )
            continue
        if complete and (key, begin) in known:
            continue
        todo.append((key, summary, complete))
    computed = Computed()
    for done, (key, summary, complete) in enumerate(todo):
        baseline = baseline_of(key.model, key.version)
        if baseline is not None:
            perf = performance(key, summary.start)
            result: WindowResult | None
            try:
                result = measure_summary(
                    summary,
                    baseline,
                    window=spec.text,
                    partial=not complete,
                    performance=perf.performance if perf is not None else None,
                    labelled=perf.labelled if perf is not None else 0,
                )
            except NeedsRawValues:
                raw = _raw_window(app, key, summary, spec, now, capture, complete)
                given = marks.labels_for(key.model, summary.start, summary.end)
                result = measure_window(raw, baseline, given) if raw is not None else None
            else:
                _estimate_from_raw(app, result, baseline, key, summary, spec, now, capture)
                if baseline.fairness is not None:
                    groups = window_groups(
                        app.artifacts,
                        anchors,
                        marks.labels_for(key.model, summary.start, summary.end),
                        key,
                        summary.start,
                        min(summary.end, now),
                        baseline.fairness,
                        log_dir=capture,
                        grain_s=GRAIN_S,
                    )
                    judge_fairness(result, groups, anchors(key.model, key.version), baseline)
            if result is not None:
                result.label_marks = marks.of(key.model, summary.start)
                if save_window(app.database, result):
                    computed.add(result)
        if progress is not None:
            progress(done + 1, len(todo), "windows")
    n_records = sum(s.rows + s.rejected for s in windows.values())
    return MonitoringPass(computed, waiting, spec.text, start, n_records=n_records)
