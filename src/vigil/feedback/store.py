"""Durable feedback on the same append-only log machinery as the capture log.

Feedback goes to ``feedback-*.seg`` segments (one ``os.write`` per submitted batch, so an
acknowledged batch survives ``kill -9``) and is compacted to
``<store>/feedback/date=YYYY-MM-DD/part-<segment>.parquet`` (date of arrival).

Duplicates: the *first* feedback for a ``(request_id, row)`` wins. Each store remembers
the keys it has seen (compacted ones loaded on first use, then every writer's segments
followed incrementally, so a repeat sent to another worker of the same machine is caught
too) and drops repeats at submit time; any that still slip in (another replica, a segment
compacted before it was followed) are dropped when feedback is read, by arrival time.

Matching: a :class:`~vigil.capture.lookup.CaptureLookup` finds the predictions in the
capture log, uncompacted segments first (so a prediction answered a moment ago by another
worker counts), then the compacted partitions of the lookback window. Unknown request ids
(no captured prediction) are stored anyway and reported: an unmatched label simply joins
nothing. ``retention`` clears old ones with the partitions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vigil.capture.compact import CompactionResult, apply_retention, compact, partition_dirs
from vigil.capture.log import SegmentLog, read_segment, segment_id
from vigil.capture.lookup import CaptureLookup
from vigil.capture.table import DATA_ERRORS, concat, parse_time, tolerant_table
from vigil.capture.tail import SegmentTail
from vigil.feedback.record import (
    FeedbackRecord,
    FeedbackResult,
    MatchedFeedback,
    check_feedback_batch,
)

if TYPE_CHECKING:
    import pandas as pd

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
}


def feedback_table(records: list[dict[str, Any]], *, segment: str) -> pa.Table:
    """Feedback records as an Arrow table (labels of mixed types are kept as text)."""
    columns: dict[str, pa.Array] = {}
    for name, dtype in _SCHEMA.items():
        values = [r.get(name) for r in records]
        if name == "time":
            values = [parse_time(r["time"]) for r in records]
        columns[name] = pa.array(values, dtype)
    labels = [r.get("label") for r in records]
    try:
        columns["label"] = pa.array(labels)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        columns["label"] = pa.array([None if v is None else str(v) for v in labels], pa.string())
    columns["segment"] = pa.array([segment] * len(records), pa.string())
    return pa.table(columns)


def _feedback_partition(record: dict[str, Any]) -> str:
    return f"date={parse_time(record['time']).astimezone(UTC).date().isoformat()}"


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
    ) -> None:
        self.log = SegmentLog(directory, prefix="feedback", fsync=fsync)
        self.store = store
        self.capture_dir = Path(capture_dir) if capture_dir is not None else None
        self.late_after = late_after
        self.lookback = lookback
        self.lookup = CaptureLookup(self.capture_dir, store)
        self._tail = SegmentTail(self.log.directory, "feedback")
        self._seen: set[tuple[str, int]] | None = None
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
        return cls(
            settings.resolved_feedback_dir(home),
            store=store,
            capture_dir=settings.resolved_dir(home),
            late_after=timedelta(hours=settings.feedback_late_hours),
            lookback=timedelta(days=settings.feedback_lookback_days),
            fsync=settings.fsync,
        )

    def _seen_keys(self) -> set[tuple[str, int]]:
        if self._seen is None:
            self._seen = self._compacted_keys()
        fresh, _gone = self._tail.poll()
        for records in fresh.values():
            for r in records:
                try:
                    self._seen.add((r["request_id"], int(r.get("row") or 0)))
                except DATA_ERRORS:
                    continue  # a record no reader can use (see compaction's quarantine)
        return self._seen

    def _compacted_keys(self) -> set[tuple[str, int]]:
        import pyarrow.parquet as pq

        keys: set[tuple[str, int]] = set()
        if self.store is None:
            return keys
        for path, _day in partition_dirs(self.store, root=FEEDBACK_ROOT, pattern="date=*"):
            for part in sorted(self.store.fs.glob(f"{path}/part-*.parquet")):
                with self.store.fs.open(part, "rb") as fh:
                    table = pq.read_table(fh, columns=["request_id", "row"])
                keys.update(
                    zip(table["request_id"].to_pylist(), table["row"].to_pylist(), strict=True)
                )
        return keys

    def submit(
        self,
        records: Iterable[FeedbackRecord | Mapping[str, Any]],
        *,
        progress: Progress | None = None,
    ) -> FeedbackResult:
        """Validate and store a batch; returns counts of what was accepted or ignored.

        Raises :class:`~vigil.errors.ValidationError` (and stores nothing) when any record is
        invalid, naming every bad item, so a client can fix its batch and send it again.
        Feedback is durable when this returns (one ``os.write`` per chunk of 10,000).
        """
        checked = check_feedback_batch(records)
        with self._lock:
            seen = self._seen_keys()
            fresh: list[FeedbackRecord] = []
            batch_keys: set[tuple[str, int]] = set()
            for r in checked:
                key = (r.request_id, r.row)
                if key in seen or key in batch_keys:
                    continue
                batch_keys.add(key)
                fresh.append(r)
            now = datetime.now(UTC)
            found = self.lookup.find({r.request_id for r in fresh}, since=now - self.lookback)
            matched: list[MatchedFeedback] = []
            unknown_ids: set[str] = set()
            late = 0
            for r in fresh:
                hit = found.get(r.request_id)
                if hit is None or r.row >= hit.rows:
                    unknown_ids.add(r.request_id)
                    continue
                matched.append(MatchedFeedback(r, hit.for_row(r.row)))
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

    def read_table(self) -> pa.Table | None:
        """All feedback, one row per ``(request_id, row)`` (the first to arrive)."""
        import pyarrow.parquet as pq

        tables: list[pa.Table] = []
        compacted: set[str] = set()
        if self.store is not None:
            for path, _day in partition_dirs(self.store, root=FEEDBACK_ROOT, pattern="date=*"):
                for part in sorted(self.store.fs.glob(f"{path}/part-*.parquet")):
                    with self.store.fs.open(part, "rb") as fh:
                        table = pq.read_table(fh)
                    compacted.update(table["segment"].to_pylist())
                    tables.append(table)
        for seg in self.log.all_segments():
            sid = segment_id(seg)
            if sid in compacted:
                continue
            try:
                records, _torn = read_segment(seg)
            except FileNotFoundError:
                continue
            if records:
                table, bad = tolerant_table(feedback_table, records, segment=sid)
                if bad:
                    log.warning(
                        "skipped %d feedback record(s) of segment %s that cannot be read as "
                        "rows (first: %s); compaction will quarantine them",
                        len(bad),
                        sid,
                        bad[0][1],
                    )
                if table is not None:
                    tables.append(table)
        if not tables:
            return None
        table = concat(tables).sort_by([("time", "ascending"), ("segment", "ascending")])
        keys = list(zip(table["request_id"].to_pylist(), table["row"].to_pylist(), strict=True))
        first: dict[tuple[str, int], int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        return table.take(sorted(first.values()))

    def read(self) -> pd.DataFrame:
        """All feedback as a DataFrame (``request_id, row, reward, time, label, segment``)."""
        import pandas as pd

        table = self.read_table()
        if table is None:
            return pd.DataFrame(columns=["request_id", "row", "label", "reward", "time"])
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
            to_table=feedback_table,
        )

    def apply_retention(self, retention_days: int, *, now: datetime | None = None) -> list[str]:
        """Delete compacted feedback partitions older than ``retention_days``."""
        if self.store is None:
            return []
        deleted = apply_retention(
            self.store, retention_days, now=now, root=FEEDBACK_ROOT, pattern="date=*"
        )
        with self._lock:  # forget the deleted keys: rebuilt from what is left on next use
            self._seen = None
            self._tail = SegmentTail(self.log.directory, "feedback")
        return deleted

    def close(self) -> None:
        self.log.close()
