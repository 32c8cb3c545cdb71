"""Durable feedback on the same append-only log machinery as the capture log.

Feedback goes to ``feedback-*.seg`` segments (one ``os.write`` per submitted batch, so an
acknowledged batch survives ``kill -9``) and is compacted to
``<store>/feedback/date=YYYY-MM-DD/part-<segment>.parquet`` (date of arrival).

Duplicates: the *first* feedback for a ``(request_id, row)`` of a caller wins (feedback is
bound to the API key that made the prediction: :mod:`vigil.feedback.owner`). Each store remembers
the keys it has seen (compacted ones loaded on first use, then every writer's segments
followed incrementally, so a repeat sent to another worker of the same machine is caught
too) and drops repeats at submit time; any that still slip in (another replica, a segment
compacted before it was followed) are dropped when feedback is read, by arrival time.

Matching: a :class:`~vigil.capture.lookup.CaptureLookup` finds the predictions in the
capture log, uncompacted segments first (so a prediction answered a moment ago by another
worker counts), then the compacted partitions of the lookback window. Unknown request ids
(no captured prediction) are stored anyway and reported: an unmatched label simply joins
nothing. ``retention`` clears old ones with the partitions.

Another replica's prediction: each replica's live capture segments are on its own disk, so
feedback about a prediction that another replica answered a moment ago is unknown where it
arrives until that replica compacts its segment. Such feedback is also kept in memory for
``handover`` (long enough for any segment to be closed and compacted) and
:meth:`FeedbackStore.rematch` looks it up again; what it finds then is returned once, for
the same listeners as a matched submission (an experiment's reward counters).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vigil.capture.compact import CompactionResult, apply_retention, compact, partition_dirs
from vigil.capture.crypt import open_log_file, store_codec
from vigil.capture.log import SegmentLog, read_segment, segment_id
from vigil.capture.lookup import CaptureLookup
from vigil.capture.table import DATA_ERRORS, concat, parse_time, read_part, readable_table
from vigil.capture.tail import SegmentTail
from vigil.errors import PermissionDeniedError
from vigil.feedback.owner import Attribution, attribute
from vigil.feedback.record import (
    FIELD_PREFIX,
    FeedbackRecord,
    FeedbackResult,
    MatchedFeedback,
    check_feedback_batch,
)

if TYPE_CHECKING:
    import pandas as pd

    from vigil.capture.masking import Masker
    from vigil.capture.settings import CaptureSettings
    from vigil.storage.artifacts import ArtifactStore

log = logging.getLogger("vigil.capture")

Progress = Callable[[int, int], None]
"""``progress(done, total)`` called as feedback records are written."""
_CHUNK = 10_000

FEEDBACK_ROOT = "feedback"
_SCHEMA = {
    "request_id": pa.string(),
    "row": pa.int64(),
    "reward": pa.float64(),
    "time": pa.timestamp("us", tz="UTC"),
    "caller": pa.string(),
    "prediction_time": pa.timestamp("us", tz="UTC"),
    "prediction_model": pa.string(),
}
_KEY_COLUMNS = ("request_id", "row", "caller")

MAX_PENDING = 100_000
"""At most this many unknown feedback items wait in memory for another replica's
compaction (see :meth:`FeedbackStore.rematch`); past it, later ones are only stored."""

Key = tuple[str, int, str | None]
"""What makes feedback a duplicate: the same row of the same request of the same caller."""


def _scalars(values: list[Any]) -> pa.Array:
    """JSON scalars as one Arrow column; mixed types kept as text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def feedback_table(records: list[dict[str, Any]], *, segment: str) -> pa.Table:
    """Feedback records as an Arrow table (labels of mixed types are kept as text; each
    feedback field ``x`` in a column ``field.x``, null where a record lacks it)."""
    columns: dict[str, pa.Array] = {}
    for name, dtype in _SCHEMA.items():
        values = [r.get(name) for r in records]
        if name == "time":
            values = [parse_time(r["time"]) for r in records]
        elif name == "prediction_time":
            values = [parse_time(v) if v is not None else None for v in values]
        columns[name] = pa.array(values, dtype)
    columns["label"] = _scalars([r.get("label") for r in records])
    given: list[dict[str, Any]] = [
        fields if isinstance(fields := r.get("fields"), dict) else {} for r in records
    ]
    for name in sorted({n for fields in given for n in fields}):
        columns[FIELD_PREFIX + name] = _scalars([fields.get(name) for fields in given])
    columns["segment"] = pa.array([segment] * len(records), pa.string())
    return pa.table(columns)


def _refuse_others(
    checked: Sequence[FeedbackRecord], judged: Sequence[Attribution], caller: str | None
) -> None:
    refused = [
        {"index": i, "request_id": r.request_id}
        for i, (r, j) in enumerate(zip(checked, judged, strict=True))
        if j.refused
    ]
    if refused:
        first = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise PermissionDeniedError(
            f"feedback item {first['index']}: request {first['request_id']!r} was predicted "
            f"with another API key{more}; only the API key that made a prediction (or an "
            "admin key) may send its feedback. Nothing of this batch was stored",
            detail={"key_id": caller, "errors": refused[:100]},
        )


PART_GROUP_ROWS = 65_536
"""Rows per row group of a compacted feedback part."""


def _placed_order(records: list[dict[str, Any]], *, segment: str) -> pa.Table:
    """:func:`feedback_table` in the order of the predictions judged (model, then time;
    feedback not placed last), so the row groups' statistics on ``prediction_model`` and
    ``prediction_time`` are narrow and a reader of one model's span skips the others
    (:mod:`vigil.feedback.spans`). Arrival order is not needed: readers choose the first
    arrival by ``time`` (a stable sort keeps the order of equal keys)."""
    table = feedback_table(records, segment=segment)
    return table.sort_by([("prediction_model", "ascending"), ("prediction_time", "ascending")])


def _feedback_partition(record: dict[str, Any]) -> str:
    return f"date={parse_time(record['time']).astimezone(UTC).date().isoformat()}"


def _first_arrivals(table: pa.Table) -> pa.Table:
    """One row per ``(request_id, row, caller)``: the first to arrive."""
    table = table.sort_by([("time", "ascending"), ("segment", "ascending")])
    callers = table["caller"].to_pylist() if "caller" in table.column_names else [None] * len(table)
    keys = list(
        zip(table["request_id"].to_pylist(), table["row"].to_pylist(), callers, strict=True)
    )
    first: dict[Key, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    return table.take(sorted(first.values()))


class FeedbackStore:
    """Stores feedback durably and tells what it matched.

    Parameters
    ----------
    directory:
        Local directory of the feedback segments.
    store:
        Artifact store holding compacted capture and feedback Parquet (optional).
    capture_dir:
        Directory of the live capture segments, to look predictions up before compaction.
    late_after:
        Feedback arriving longer than this after its prediction is counted as late.
    lookback:
        How far back :meth:`submit` looks for the predictions feedback refers to.
    handover:
        How long feedback about an unknown request id waits, in memory, for another
        replica to compact the prediction (see :meth:`rematch`).
    rematch_interval:
        Seconds between two calls of :meth:`rematch` by a server (the compaction interval:
        nothing new reaches the store sooner).
    masker:
        The capture's masking rules, applied to feedback ``fields`` by name before they
        are stored (as to passthrough fields).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        store: ArtifactStore | None = None,
        capture_dir: str | Path | None = None,
        late_after: timedelta = timedelta(days=1),
        lookback: timedelta = timedelta(days=90),
        fsync: str = "none",
        handover: timedelta = timedelta(hours=1, minutes=5),
        rematch_interval: float = 60.0,
        masker: Masker | None = None,
    ) -> None:
        self.log = SegmentLog(directory, prefix="feedback", fsync=fsync, codec=store_codec(store))
        self.masker = masker if masker is not None and masker.active else None
        self.store = store
        self.capture_dir = Path(capture_dir) if capture_dir is not None else None
        self.late_after = late_after
        self.lookback = lookback
        self.lookup = CaptureLookup(self.capture_dir, store)
        self._tail = SegmentTail(self.log.directory, "feedback", codec=self.log.codec)
        self._seen: set[Key] | None = None
        self._compacted_read = False
        self.handover = handover
        self.rematch_interval = rematch_interval
        self._pending: dict[Key, FeedbackRecord] = {}
        # submit() runs on executor threads of the server; one batch at a time keeps the
        # seen set and the followed offsets consistent.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeedbackStore({str(self.log.directory)!r})"

    @classmethod
    def from_settings(
        cls, settings: CaptureSettings, home: Path, store: ArtifactStore | None
    ) -> FeedbackStore:
        """The feedback store of a vigil home, matched against its capture log."""
        from vigil.capture.masking import Masker

        key = settings.hash_key.get_secret_value() if settings.hash_key else None
        return cls(
            settings.resolved_feedback_dir(home),
            store=store,
            capture_dir=settings.resolved_dir(home),
            late_after=timedelta(hours=settings.feedback_late_hours),
            lookback=timedelta(days=settings.feedback_lookback_days),
            fsync=settings.fsync,
            # A prediction reaches the store at most a segment's life and a compaction
            # interval after it was made (plus a pass that failed once, and a margin).
            handover=timedelta(
                seconds=settings.segment_seconds + 2 * settings.compact_interval_s + 60
            ),
            rematch_interval=settings.compact_interval_s,
            masker=Masker(settings.mask, hash_key=key),
        )

    def _seen_keys(self) -> set[Key]:
        if self._seen is None:
            self._seen = set()
            self._compacted_read = False
        if not self._compacted_read:
            try:
                self._seen |= self._compacted_keys()
                self._compacted_read = True
            except Exception:
                # The store is unreachable: repeats of compacted feedback slip through
                # until it is back (read() drops them), rather than feedback failing.
                log.warning(
                    "cannot read the compacted feedback in %s to catch duplicates; "
                    "trying again with the next batch",
                    self.store,
                    exc_info=True,
                )
        fresh, _gone = self._tail.poll()
        for records in fresh.values():
            for r in records:
                try:
                    self._seen.add((r["request_id"], int(r.get("row") or 0), r.get("caller")))
                except DATA_ERRORS:
                    continue  # a record no reader can use (see compaction's quarantine)
        return self._seen

    def _compacted_keys(self) -> set[Key]:
        # Parquet: only where a partition is read or written
        import pyarrow.parquet as pq

        keys: set[Key] = set()
        if self.store is None:
            return keys
        for path, _day in partition_dirs(self.store, root=FEEDBACK_ROOT, pattern="date=*"):
            for part in sorted(self.store.fs.glob(f"{path}/part-*.parquet")):
                with open_log_file(self.store, part) as fh:
                    parquet = pq.ParquetFile(fh)
                    columns = [c for c in _KEY_COLUMNS if c in parquet.schema_arrow.names]
                    table = parquet.read(columns=columns)
                callers = (
                    table["caller"].to_pylist() if "caller" in columns else [None] * len(table)
                )
                keys.update(
                    zip(
                        table["request_id"].to_pylist(),
                        table["row"].to_pylist(),
                        callers,
                        strict=True,
                    )
                )
        return keys

    def submit(
        self,
        records: Iterable[FeedbackRecord | Mapping[str, Any]],
        *,
        progress: Progress | None = None,
        caller: str | None = None,
        admin: bool = False,
    ) -> FeedbackResult:
        """Validate and store a batch; returns counts of what was accepted or ignored.

        ``caller`` is the id of the API key sending the batch (``None`` with authentication
        off, or for a bulk load by the operator) and ``admin`` whether that key may label any
        prediction: feedback is bound to the key that made the prediction (see
        :mod:`vigil.feedback.owner`).

        Raises :class:`~vigil.errors.ValidationError` (and stores nothing) when any record is
        invalid, naming every bad item, so a client can fix its batch and send it again, and
        :class:`~vigil.errors.PermissionDeniedError` (storing nothing) when any names a
        prediction another key made. Feedback is durable when this returns (one
        ``os.write`` per chunk of 10,000).
        """
        checked = check_feedback_batch(records)
        if self.masker is not None:
            masker = self.masker
            checked = [
                replace(r, fields=masker.apply(r.fields)) if r.fields else r for r in checked
            ]
        with self._lock:
            now = datetime.now(UTC)
            found = self.lookup.find_all({r.request_id for r in checked}, since=now - self.lookback)
            judged = [
                attribute(found.get(r.request_id, ()), r.row, caller=caller, admin=admin)
                for r in checked
            ]
            _refuse_others(checked, judged, caller)
            seen = self._seen_keys()
            fresh: list[FeedbackRecord] = []
            batch_keys: set[Key] = set()
            matched: list[MatchedFeedback] = []
            unknown_ids: set[str] = set()
            late = 0
            for r, judgement in zip(checked, judged, strict=True):
                key = (r.request_id, r.row, judgement.caller)
                if key in seen or key in batch_keys:
                    continue
                batch_keys.add(key)
                r = replace(r, caller=judgement.caller)
                fresh.append(r)
                hit = judgement.captured
                if hit is None:
                    unknown_ids.add(r.request_id)
                    if self.store is not None and len(self._pending) < MAX_PENDING:
                        self._pending[key] = r  # another replica may compact it soon
                    continue
                r = replace(r, prediction_time=hit.time, prediction_model=hit.model)
                fresh[-1] = r
                matched.append(MatchedFeedback(r, hit))
                if r.time - hit.time > self.late_after:
                    late += 1
            for start in range(0, len(fresh), _CHUNK):
                self.log.append([r.to_dict() for r in fresh[start : start + _CHUNK]])
                if progress is not None:
                    progress(min(start + _CHUNK, len(fresh)), len(fresh))
            seen.update(batch_keys)
        return FeedbackResult(
            accepted=len(fresh),
            duplicates=len(checked) - len(fresh),
            unknown_request_ids=sorted(unknown_ids),
            late=late,
            unknown=len(fresh) - len(matched),
            matched=tuple(matched),
        )

    def pending(self) -> int:
        """Feedback items waiting for their prediction (see :meth:`rematch`). Without the
        lock: the server asks from its event loop, which must not wait for a submission
        reading the store (a dict's length is read atomically)."""
        return len(self._pending)

    def rematch(self, now: datetime | None = None) -> list[MatchedFeedback]:
        """Feedback this store took as unknown whose prediction has since reached the
        store (compacted by another replica): each is returned once, then forgotten, as is
        whatever waited longer than ``handover``. One lookup for all of them; nothing to do
        (and nothing read) while none waits."""
        with self._lock:
            now = now or datetime.now(UTC)
            for key, r in list(self._pending.items()):
                if now - r.time > self.handover:
                    del self._pending[key]
            if not self._pending:
                return []
            waiting = list(self._pending.items())
            # The prediction was made before its feedback, and was still in a live segment
            # elsewhere when the feedback came: at most `handover` before it.
            since = min(r.time for _, r in waiting) - self.handover
            found = self.lookup.find_all({r.request_id for _, r in waiting}, since=since)
            matched: list[MatchedFeedback] = []
            for key, r in waiting:
                judgement = attribute(
                    found.get(r.request_id, ()), r.row, caller=r.caller, admin=False
                )
                if judgement.captured is not None:
                    matched.append(MatchedFeedback(r, judgement.captured))
                    del self._pending[key]
                elif judgement.refused:
                    del self._pending[key]  # another key's prediction: never ours to judge
            return matched

    def read_table(self, since: datetime | None = None) -> pa.Table | None:
        """All feedback (arrived at or after ``since``, when given), one row per
        ``(request_id, row, caller)``: the first to arrive. Joining it to the capture log
        is :func:`~vigil.feedback.join.join_feedback`'s."""
        # Arrow compute kernels: only where a table is filtered
        import pyarrow.compute as pc

        def part(fh: Any) -> Iterator[pa.Table]:
            table = read_part(fh, since=since)
            if table is not None:
                yield table

        first_day = since.astimezone(UTC).date() if since is not None else None
        tables = self._walk(first_day, part, lambda table: table)
        if not tables:
            return None
        table = concat(tables)
        if since is not None:
            table = table.filter(
                pc.greater_equal(table["time"], pa.scalar(since, table["time"].type))
            )
        return _first_arrivals(table)

    def read_predicted(
        self, model: str, since: datetime, until: datetime, *, batch_rows: int = _CHUNK
    ) -> pa.Table | None:
        """The feedback on ``model``'s predictions made in ``[since, until)``, one row per
        ``(request_id, row, caller)`` (the first to arrive), as :meth:`read_table` gives it.

        Only the feedback that arrived since ``since`` is looked at (a label comes after
        its prediction), and it is read ``batch_rows`` at a time, each batch keeping only
        the rows whose stored prediction time and model fall in the span: memory holds a
        batch and the span's feedback, not the store's. Feedback stored before it recorded
        its prediction (no ``prediction_time``) cannot be placed and is kept, to be joined
        by request id as before.
        """
        import pyarrow.compute as pc  # Arrow compute kernels: the rows of the span
        import pyarrow.parquet as pq

        since, until = since.astimezone(UTC), until.astimezone(UTC)

        def ours(table: pa.Table) -> pa.Table:
            arrived = pc.greater_equal(table["time"], pa.scalar(since, table["time"].type))
            if "prediction_time" not in table.column_names:
                return table.filter(arrived)
            at = table["prediction_time"]
            placed = pc.and_(
                pc.and_(
                    pc.equal(table["prediction_model"], model),
                    pc.greater_equal(at, pa.scalar(since, at.type)),
                ),
                pc.less(at, pa.scalar(until, at.type)),
            )
            # Kleene logic: an unplaced row (null time, so null ``placed``) is kept.
            return table.filter(pc.and_kleene(arrived, pc.or_kleene(pc.is_null(at), placed)))

        def part(fh: Any) -> Iterator[pa.Table]:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=batch_rows):
                yield ours(pa.Table.from_batches([batch]))

        tables = self._walk(since.date(), part, ours)
        if not tables:
            return None
        return _first_arrivals(concat(tables))

    def _walk(
        self,
        first_day: date | None,
        part: Callable[[Any], Iterator[pa.Table]],
        segment: Callable[[pa.Table], pa.Table],
    ) -> list[pa.Table]:
        """The non-empty tables of every compacted part (partitions from ``first_day``:
        they are dated by arrival), read by ``part`` from the open file, then of every live
        segment not compacted yet, passed through ``segment``."""
        tables: list[pa.Table] = []
        found = self.part_paths(first_day)
        for path in found:
            assert self.store is not None  # parts are found in a store
            with open_log_file(self.store, path) as fh:
                tables += [t for t in part(fh) if t.num_rows]
        for table in self.live_tables(found):
            if (kept := segment(table)).num_rows:
                tables.append(kept)
        return tables

    def part_paths(self, first_day: date | None = None) -> list[str]:
        """The compacted parts (paths in the store's file system) of the partitions dated
        ``first_day`` or later (dated by arrival), oldest partition first."""
        found: list[str] = []
        if self.store is None:
            return found
        for path, day in partition_dirs(self.store, root=FEEDBACK_ROOT, pattern="date=*"):
            if first_day is not None and day < first_day:
                continue
            found += [str(p) for p in sorted(self.store.fs.glob(f"{path}/part-*.parquet"))]
        return found

    def live_tables(self, parts: Sequence[str]) -> Iterator[pa.Table]:
        """The feedback of every live segment whose part is not among ``parts`` (not
        compacted when they were listed), one table per segment: bounded by rotation."""
        compacted = {p.rsplit("/", 1)[-1][len("part-") : -len(".parquet")] for p in parts}
        for seg in self.log.all_segments():
            sid = segment_id(seg)
            if sid in compacted:
                continue
            try:
                records, _torn = read_segment(seg, self.log.codec)
            except FileNotFoundError:
                continue
            if records:
                table = readable_table(feedback_table, records, segment=sid, what="feedback")
                if table is not None and table.num_rows:
                    yield table

    def read(self, since: datetime | None = None) -> pd.DataFrame:
        """All feedback (arrived at or after ``since``) as a DataFrame (``request_id, row,
        reward, time, caller, label, segment``)."""
        # pandas: only when a frame is built
        import pandas as pd

        table = self.read_table(since)
        if table is None:
            return pd.DataFrame(columns=["request_id", "row", "label", "reward", "time", "caller"])
        frame: pd.DataFrame = table.to_pandas()
        return frame

    def compact(self) -> CompactionResult:
        """Move closed feedback segments to Parquet in the artifact store."""
        if self.store is None:
            raise ValueError("FeedbackStore has no artifact store to compact into")
        return compact(
            self.log,
            self.store,
            root=FEEDBACK_ROOT,
            partition=_feedback_partition,
            to_table=_placed_order,
            row_group_rows=PART_GROUP_ROWS,
        )

    def apply_retention(self, retention_days: int, *, now: datetime | None = None) -> list[str]:
        """Delete compacted feedback partitions older than ``retention_days``."""
        if self.store is None:
            return []
        deleted = apply_retention(
            self.store, retention_days, now=now, root=FEEDBACK_ROOT, pattern="date=*"
        )
        if deleted:  # forget the deleted keys: rebuilt from what is left on next use
            with self._lock:
                self._seen = None
                self._tail = SegmentTail(self.log.directory, "feedback", codec=self.log.codec)
        return deleted

    def close(self) -> None:
        self.log.close()
