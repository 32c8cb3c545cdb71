"""Windows read as rows, from a bounded stream of the inference log.

Count windows (``500``), time-or-count windows (the default ``1h or 1000``), and time
windows when summaries are off (``VIGIL_MONITOR_SUMMARIES=false``) are cut from the log's
rows. :func:`stream_pass` reads them with one Arrow dataset scan
(:func:`~vigil.capture.scan.scan_capture`: parts pruned by model and day) in two passes:

1. the ``time``, ``model``, ``version`` and ``route`` columns alone, counted per second:
   which series the span holds and where each begins, and where to cut the span into
   *slices* of at most :data:`SLICE_ROWS` rows;
2. slice after slice (the same scan narrowed to the slice's time range, so row groups
   outside it are not read, and to the columns the versions' baselines need: features,
   prediction, probabilities, fairness attributes), each put in log order after the rows
   carried over from the slice before, then cut (:func:`~vigil.monitor.windows.split_windows`):
   windows that are over are measured and stored at once, the rows after them are carried.

Memory holds one slice and, per series, the rows of its window still open (a count window:
about its size; a time window: its span), never the lookback; a window's result is let go
once it is stored (the run keeps counts, its last few and the newest of each series:
:mod:`vigil.monitor.computed`). Count windows continue
after the last stored one (its end is the series' cursor), so the second pass starts at
the earliest row a series still needs: an incremental cycle reads what is new and the
open windows, whether or not the caller kept a :class:`~vigil.monitor.engine.Resume`.

Late labels do not re-read the log: each window gets a *mark* (:class:`WindowMarks`), the
labels placed in its span plus those that could not be placed and arrived after it began.
A stored window whose mark is the one it was computed with has nothing new to join; one
whose mark moved is read again alone (its own span, its own version) and recomputed only
if the labels joining it changed. Labels are read per slice too
(:class:`~vigil.feedback.spans.FeedbackSpans`): the marks come from where each label
points (8 bytes a label), and the windows a slice closes that need labels read those of
their span, never the whole feedback store at once.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.capture.scan import CaptureScan, scan_capture
from vigil.capture.table import FEATURE_PREFIX, PROBA_PREFIX
from vigil.feedback.frame_spans import FrameSpans, Spans, spans_of
from vigil.feedback.spans import Placements
from vigil.monitor.baseline import Baseline
from vigil.monitor.computed import Computed
from vigil.monitor.measure import count_labelled, measure_window
from vigil.monitor.series import StoredWindow, note_in_summary, save_window
from vigil.monitor.summaries.late import MARKS_KEY
from vigil.monitor.windows import Cursor, SeriesKey, Window, WindowSpec, split_windows

if TYPE_CHECKING:
    from pathlib import Path

    from vigil.storage.artifacts import ArtifactStore
    from vigil.storage.sql import Database

log = logging.getLogger("vigil.monitor")

SLICE_ROWS = 100_000
"""Rows of the log a pass holds at once (a slice; a single second holding more is one
slice), besides the open windows carried from one slice to the next."""

_CORE = ["request_id", "row", "time", "route", "model", "version", "caller", "status"]
_CORE += ["error_code", "prediction"]
_KEYS = ["time", "model", "version", "route"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000


@dataclass
class StreamStats:
    """What a pass read: the honest measure of its cost, whatever the machine."""

    keys_read: int = 0
    """Rows of the first pass (four narrow columns)."""
    rows_read: int = 0
    """Rows materialised with their measured columns (slices and windows read again)."""
    peak_rows: int = 0
    """The most rows held at once: a slice and the open windows carried with it."""
    slices: int = 0
    columns: list[str] = field(default_factory=list)
    """The columns the second pass read."""
    labels_read: int = 0
    """Feedback rows read to join windows (:meth:`~vigil.feedback.spans.FeedbackSpans.read`:
    the labels of the windows measured or checked, never the whole store)."""
    peak_labels: int = 0
    """The most feedback rows one read held: those of one slice's windows."""


# --- late labels ---------------------------------------------------------------------------


class WindowMarks:
    """The mark of any window of the log: labels placed in it, plus labels that could not
    be placed (no prediction time or model) that arrived since it began. Built from the
    labels' :class:`~vigil.feedback.spans.Placements` (8 bytes a label), or a frame.

    >>> t = pd.Timestamp("2026-01-05 10:30", tz="UTC")
    >>> labels = pd.DataFrame({"request_id": ["a", "b"], "row": [0, 0], "label": [1, 0],
    ...     "time": [t + pd.Timedelta(days=2), t + pd.Timedelta(days=3)],
    ...     "prediction_time": [t, pd.NaT], "prediction_model": ["churn", None]})
    >>> marks = WindowMarks(labels)
    >>> marks.of("churn", t.to_pydatetime(), t.to_pydatetime(), inclusive=True)
    2
    >>> marks.of("churn", t.to_pydatetime(), t.to_pydatetime(), inclusive=False)
    1
    """

    def __init__(self, labels: pd.DataFrame | Placements) -> None:
        found = labels if isinstance(labels, Placements) else FrameSpans(labels).placements
        self._placed = found.placed
        # Labels with a prediction time but no model could not be placed either.
        self._loose = np.sort(np.concatenate([found.timed_arrived, found.loose]))

    def of(self, model: str, start: datetime, end: datetime, *, inclusive: bool) -> int:
        """The mark of ``model``'s window ``[start, end]`` (``[start, end)`` unless
        ``inclusive``: count windows hold both ends, time windows exclude their end)."""
        lo, hi = _micro(start), _micro(end)
        at = self._placed.get(model, np.zeros(0, np.int64))
        upper = np.searchsorted(at, hi, side="right" if inclusive else "left")
        placed = int(upper - np.searchsorted(at, lo, side="left"))
        loose = int(self._loose.size - np.searchsorted(self._loose, lo, side="left"))
        return placed + loose


def _micro(at: datetime) -> int:
    delta = at.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def _at(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


# --- the first pass: series and slices ----------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the first pass found: the series in the span (and the time of the first
    record of each), the number of records, and the slices of the second pass with the
    records each holds."""

    first_seen: dict[SeriesKey, datetime]
    records: int
    slices: list[tuple[datetime, datetime]]
    sizes: list[int]
    """Records in each slice (what the second pass reads, for its progress)."""


def _times(batch: pa.RecordBatch) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    column = batch.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def plan(
    scan: CaptureScan,
    since: datetime,
    until: datetime,
    *,
    start_of: Callable[[SeriesKey, datetime], datetime],
    limit: int = SLICE_ROWS,
    stats: StreamStats,
) -> Plan:
    """Read the keys of ``[since, until)`` and cut the part of it some series still needs
    (from the earliest ``start_of(series, its first record)``) into slices of at most
    ``limit`` rows."""
    base = _micro(since) // _US * _US
    n_bins = (_micro(until) - base) // _US + 1
    counts = np.zeros(n_bins, dtype=np.int64)
    first: dict[SeriesKey, int] = {}
    records = 0
    for batch in scan.narrowed(since, until, columns=_KEYS).batches():
        records += batch.num_rows
        stats.keys_read += batch.num_rows
        times = _times(batch)
        per_second = np.bincount((times - base) // _US)
        counts[: per_second.size] += per_second
        if "version" not in batch.schema.names:
            continue
        keys = pa.table(
            {
                "model": batch.column("model").cast(pa.string()),
                "version": batch.column("version").cast(pa.int64()),
                "route": (
                    batch.column("route").cast(pa.string())
                    if "route" in batch.schema.names
                    else pa.nulls(batch.num_rows, pa.string())
                ),
                "t": pa.array(times),
            }
        ).filter(batch.column("version").is_valid())
        for row in (
            keys.group_by(["model", "version", "route"]).aggregate([("t", "min")]).to_pylist()
        ):
            key = SeriesKey(str(row["model"]), int(row["version"]), row["route"] or "")
            first[key] = min(first.get(key, row["t_min"]), row["t_min"])
    seen = {k: _at(v) for k, v in first.items()}
    if not seen:
        return Plan(seen, records, [], [])
    begin = max(min(_micro(start_of(k, t)) for k, t in seen.items()), _micro(since))
    lo_bin = (begin - base) // _US
    cumulative = np.cumsum(counts[lo_bin:])
    cuts = [0]
    while cuts[-1] < cumulative.size:
        done = int(cumulative[cuts[-1] - 1]) if cuts[-1] else 0
        nxt = int(np.searchsorted(cumulative, done + limit, side="right"))
        cuts.append(min(max(nxt, cuts[-1] + 1), cumulative.size))
    slices, sizes = [], []
    for a, b in itertools.pairwise(cuts):
        size = int(cumulative[b - 1]) - (int(cumulative[a - 1]) if a else 0)
        if size == 0:
            continue  # nothing recorded in it
        lo = begin if a == 0 else base + (lo_bin + a) * _US
        hi = _micro(until) if b == cumulative.size else base + (lo_bin + b) * _US
        slices.append((_at(lo), _at(hi)))
        sizes.append(size)
    return Plan(seen, records, slices, sizes)


# --- the second pass: slices into windows -------------------------------------------------


def _normal(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as :func:`split_windows` reads it, without versionless rows, in log order."""
    frame = frame[frame["version"].notna()].copy()
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["version"] = frame["version"].astype("int64")
    frame["route"] = frame["route"].fillna("").astype(str) if "route" in frame else ""
    frame["request_id"] = frame["request_id"].astype(str)
    frame["model"] = frame["model"].astype(str)
    return frame.sort_values(["time", "request_id", "row"], kind="stable").reset_index(drop=True)


def _series_mask(frame: pd.DataFrame, key: SeriesKey) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
    same = (
        (frame["model"] == key.model)
        & (frame["version"] == key.version)
        & (frame["route"] == key.route)
    )
    return np.asarray(same.to_numpy(), dtype=bool)


def _after_cursors(frame: pd.DataFrame, cursors: dict[SeriesKey, Cursor]) -> pd.DataFrame:
    """The rows of ``frame`` after their series' cursor (all of a series without one)."""
    keep = np.ones(len(frame), dtype=bool)
    for key, (at, request_id) in cursors.items():
        stamp = pd.Timestamp(at)
        done = (frame["time"] < stamp) | (
            (frame["time"] == stamp) & (frame["request_id"] <= request_id)
        )
        keep &= ~(_series_mask(frame, key) & done.to_numpy())
    return frame[keep]


class Cutter:
    """Cut windows as slices of the log go by, carrying only what is not over yet."""

    def __init__(
        self,
        spec: WindowSpec,
        *,
        now: datetime,
        grace: timedelta,
        cursors: dict[SeriesKey, Cursor],
    ) -> None:
        self.spec, self.now, self.grace = spec, now, grace
        self.cursors = dict(cursors)
        self.carry: pd.DataFrame | None = None

    def feed(self, rows: pd.DataFrame | None, upto: datetime) -> tuple[list[Window], int]:
        """Add ``rows`` (the log up to ``upto``, exclusive) and return the windows that are
        over (every window when ``upto`` is the end of the span: the open ones marked so)
        and the number of rows held while cutting."""
        parts = [f for f in (self.carry, rows) if f is not None and not f.empty]
        if not parts:
            return [], 0
        frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        if len(parts) > 1:
            frame = frame.sort_values(["time", "request_id", "row"], kind="stable")
        held = len(frame)
        final = upto >= self.now
        if self.spec.is_time:
            windows = split_windows(frame, self.spec, now=self.now, grace=self.grace)
            over = [w for w in windows if final or w.end <= upto]
            floor = self.spec.bounds(upto)[0]
            self.carry = None if final else frame[frame["time"] >= pd.Timestamp(floor)]
            return over, held
        # A time-or-count window closes on time only once every row of its time window
        # was read: the end of what was read stands in for ``now`` until the last slice.
        now = self.now if final else min(self.now, upto + self.grace)
        windows = split_windows(frame, self.spec, now=now, grace=self.grace, cursors=self.cursors)
        over = []
        for w in windows:
            if w.complete:
                assert w.end_request_id is not None
                self.cursors[w.key] = (w.end, w.end_request_id)
                over.append(w)
            elif final:
                over.append(w)
        self.carry = None if final else _after_cursors(frame, self.cursors)
        return over, held


def _read(scan: CaptureScan, stats: StreamStats) -> pd.DataFrame | None:
    batches = list(scan.batches())
    if not batches:
        return None
    rows = sum(b.num_rows for b in batches)
    stats.rows_read += rows
    frame: pd.DataFrame = pa.Table.from_batches(batches).to_pandas()
    return _normal(frame)


def needed_columns(schema: list[str], baselines: list[Baseline]) -> list[str]:
    """The columns of the log that measuring these versions reads: log order and status,
    prediction, probabilities, and each version's features and fairness attributes."""
    wanted = set(_CORE)
    for b in baselines:
        wanted.update(FEATURE_PREFIX + f for f in b.signature.feature_names)
        if b.fairness is not None:
            wanted.update(a.column for a in b.fairness.attributes)
        if b.estimator is not None:
            wanted.update(b.estimator.columns)
    return [c for c in schema if c in wanted or c.startswith(PROBA_PREFIX)]


@dataclass
class StreamPass:
    """What :func:`stream_pass` did: windows computed (bounded, see
    :class:`~vigil.monitor.computed.Computed`), windows left open, records in the span."""

    computed: Computed
    open: list[Window]
    records: int
    stats: StreamStats


def stream_pass(
    store: ArtifactStore | None,
    log_dir: Path | None,
    *,
    model: str | None,
    since: datetime,
    now: datetime,
    spec: WindowSpec,
    grace: timedelta,
    stored: list[StoredWindow],
    labels: pd.DataFrame | Spans,
    partial: bool,
    baseline_of: Callable[[str, int], Baseline | None],
    database: Database,
    progress: Callable[[int, int, str], None] | None = None,
    slice_rows: int | None = None,
) -> StreamPass:
    """Measure and store every window due in ``[since, now)`` (see the module docstring).

    ``stored`` are the windows of ``spec`` already stored (ending at or after the start of
    the lookback); ``labels`` the feedback the lookback's predictions may join, read per
    slice: the windows a slice closes that need labels (new ones, and stored ones whose
    mark moved) get one read per model of their span
    (:meth:`~vigil.feedback.spans.FeedbackSpans.read`). ``progress`` is called after each
    slice with the rows of the log read so far, the rows the second pass reads in all
    (from the first pass), and ``"rows"``.
    """
    stats = StreamStats()
    source = spans_of(labels)
    marks = WindowMarks(source.placements)
    inclusive = not spec.is_time
    if spec.is_time:
        since = spec.bounds(since)[0]  # time windows are read whole, the first one too
    scan = scan_capture(model, since, now, store=store, log_dir=log_dir)
    computed = Computed()
    complete = {(s.key, s.start): s for s in stored if not s.partial}
    cursors: dict[SeriesKey, Cursor] = {}
    ends: dict[SeriesKey, datetime] = {}
    for s in stored:
        if not s.partial:
            ends[s.key] = max(ends.get(s.key, s.end), s.end)
        if not s.partial and s.end_request_id is not None and not spec.is_time:
            current = cursors.get(s.key)
            if current is None or (s.end, s.end_request_id) > current:
                cursors[s.key] = (s.end, s.end_request_id)

    def start_of(key: SeriesKey, first: datetime) -> datetime:
        """Where a series still needs rows: after its last stored complete window."""
        if not spec.is_time:
            cursor = cursors.get(key)
            return cursor[0] if cursor is not None else first
        # Time windows are read whole: from a window's start, for every series.
        return spec.bounds(max(ends.get(key, first), first))[0]

    found = plan(scan, since, now, start_of=start_of, limit=slice_rows or SLICE_ROWS, stats=stats)
    baselines = [
        b for b in (baseline_of(k.model, k.version) for k in found.first_seen) if b is not None
    ]
    columns = needed_columns(scan.schema.names, baselines)
    stats.columns = columns
    cutter = Cutter(spec, now=now, grace=grace, cursors=cursors)
    open_windows: list[Window] = []
    # Stored complete windows the stream has not met yet (it began after them): left for
    # late labels at the end. Only these are remembered, not every window met.
    unmet = dict(complete)

    def measure(w: Window, given: pd.DataFrame) -> None:
        baseline = baseline_of(w.key.model, w.key.version)
        if baseline is None:
            return
        result = measure_window(w, baseline, given)
        result.label_marks = marks.of(w.key.model, w.start, w.end, inclusive=inclusive)
        if save_window(database, result):
            computed.add(result)

    def consider(windows: list[Window]) -> None:
        # (window, stored window whose mark moved, its mark): each needs its labels.
        due: list[tuple[Window, StoredWindow | None, int]] = []
        for w in windows:
            where = (w.key, w.start)
            unmet.pop(where, None)
            if not w.complete:
                open_windows.append(w)
                if partial:
                    due.append((w, None, 0))
                continue
            before = complete.get(where)
            if before is not None:
                mark = marks.of(w.key.model, w.start, w.end, inclusive=inclusive)
                if before.summary.get(MARKS_KEY) == mark:
                    continue
                due.append((w, before, mark))
                continue
            due.append((w, None, 0))
        given = _joinable(source, [w for w, _, _ in due], stats)
        # Measured as they come: the rows of a window are let go once it is stored.
        for w, before, mark in due:
            labels_of = given[w.key.model]
            if before is not None and before.n_labelled == count_labelled(w.rows, labels_of):
                note_in_summary(database, before.id, **{MARKS_KEY: mark})
                continue
            measure(w, labels_of)

    total, read = sum(found.sizes), 0
    for (lo, hi), size in zip(found.slices, found.sizes, strict=True):
        stats.slices += 1
        rows = _read(scan.narrowed(lo, hi, columns=columns), stats)
        over, held = cutter.feed(rows, min(hi, now))
        stats.peak_rows = max(stats.peak_rows, held)
        consider(over)
        read += size
        if progress is not None:
            progress(read, total, "rows")
    over, held = cutter.feed(None, now)
    stats.peak_rows = max(stats.peak_rows, held)
    consider(over)

    # Stored windows the stream did not meet (before where it began): late labels only.
    again = [s for where, s in sorted(unmet.items(), key=lambda kv: (kv[0][1], str(kv[0][0])))]
    for s in again:
        mark = marks.of(s.key.model, s.start, s.end, inclusive=inclusive)
        kept = s.summary.get(MARKS_KEY)
        if kept == mark or (kept is None and mark == 0 and s.n_labelled == 0):
            continue
        reread = scan_capture(
            s.key.model, s.start, _end(s, spec), s.key.version, store=store, log_dir=log_dir
        )
        baseline = baseline_of(s.key.model, s.key.version)
        if baseline is None:
            continue
        wanted = needed_columns(reread.schema.names, [baseline])
        window = _reread(reread, s, spec, wanted, stats)
        if window is None:
            continue
        given = _joinable(source, [window], stats)[s.key.model]
        if count_labelled(window.rows, given) == s.n_labelled:
            note_in_summary(database, s.id, **{MARKS_KEY: mark})
        else:
            measure(window, given)
    return StreamPass(computed, open_windows, found.records, stats)


def _joinable(source: Spans, windows: list[Window], stats: StreamStats) -> dict[str, pd.DataFrame]:
    """The feedback that may join ``windows``' rows, per model: one read of the span from
    the first window's start to the last one's end (both ends held), with the labels that
    could not be placed among the rows' request ids (they join by request id alone)."""
    spans: dict[str, tuple[datetime, datetime, set[str]]] = {}
    for w in windows:
        lo, hi, ids = spans.get(w.key.model, (w.start, w.end, set()))
        ids.update(w.rows["request_id"].astype(str))
        spans[w.key.model] = (min(lo, w.start), max(hi, w.end), ids)
    out: dict[str, pd.DataFrame] = {}
    for model, (lo, hi, ids) in spans.items():
        out[model] = source.read(model, lo, hi + timedelta(microseconds=1), ids=ids)
    stats.labels_read = source.stats.labels_read
    stats.peak_labels = source.stats.peak_labels
    return out


def _end(stored: StoredWindow, spec: WindowSpec) -> datetime:
    """Where a stored window's span ends, exclusive (a count window holds its end)."""
    return stored.end + (timedelta(0) if spec.is_time else timedelta(microseconds=1))


def _reread(
    scan: CaptureScan,
    stored: StoredWindow,
    spec: WindowSpec,
    columns: list[str],
    stats: StreamStats,
) -> Window | None:
    """A stored window's rows from ``scan`` (its span, its version), kept to its series
    and, for a count window, to its recorded ends."""
    frame = _read(scan.narrowed(columns=columns), stats)
    if frame is None:
        return None
    key = stored.key
    same = frame[_series_mask(frame, key)]
    if not spec.is_time:
        if stored.start_request_id is None or stored.end_request_id is None:
            return None
        lo, hi = pd.Timestamp(stored.start), pd.Timestamp(stored.end)
        ids = same["request_id"]
        after = (same["time"] > lo) | ((same["time"] == lo) & (ids >= stored.start_request_id))
        before = (same["time"] < hi) | ((same["time"] == hi) & (ids <= stored.end_request_id))
        same = same[(after & before).to_numpy()]
    stats.peak_rows = max(stats.peak_rows, len(frame))
    if same.empty:
        return None
    ok = (pd.to_numeric(same["status"], errors="coerce").fillna(200) < 400).to_numpy()
    return Window(
        key,
        spec,
        stored.start,
        stored.end,
        same[ok],
        same[~ok],
        complete=True,
        start_request_id=stored.start_request_id,
        end_request_id=stored.end_request_id,
    )
