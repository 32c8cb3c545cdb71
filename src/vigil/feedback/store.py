"""Durable feedback on the same append-only log machinery as the capture log.

Feedback goes to ``feedback-*.seg`` segments (one ``os.write`` per submitted batch, so an
acknowledged batch survives ``kill -9``) and is compacted to
``<store>/feedback/date=YYYY-MM-DD/part-<segment>.parquet`` (date of arrival).

Duplicates: the *first* feedback for a ``(request_id, row)`` wins. This process remembers
the keys it has seen (loaded from the log on first use) and drops repeats at submit time;
repeats that slip in through another process are dropped when feedback is read, by
arrival time. Unknown request ids (no capture record found) are stored anyway and
reported: the capture may still sit in another replica's uncompacted segment, and an
unmatched label simply joins nothing. ``retention`` clears old ones with the partitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vigil.capture.compact import CompactionResult, apply_retention, compact, partition_dirs
from vigil.capture.log import SegmentLog, read_segment, segment_id
from vigil.capture.reader import read_capture_table
from vigil.capture.table import concat, parse_time
from vigil.feedback.record import FeedbackRecord, FeedbackResult, check_feedback

if TYPE_CHECKING:
    import pandas as pd

    from vigil.storage.artifacts import ArtifactStore

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
    except (pa.ArrowInvalid, pa.ArrowTypeError):
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
        self._seen: set[tuple[str, int]] | None = None

    def __repr__(self) -> str:
        return f"FeedbackStore({str(self.log.directory)!r})"

    def _seen_keys(self) -> set[tuple[str, int]]:
        if self._seen is None:
            table = self.read_table()
            self._seen = (
                set()
                if table is None
                else set(
                    zip(
                        table["request_id"].to_pylist(),
                        table["row"].to_pylist(),
                        strict=True,
                    )
                )
            )
        return self._seen

    def _prediction_times(self, request_ids: set[str], now: datetime) -> dict[str, datetime]:
        table = read_capture_table(
            None, now - self.lookback, None, store=self.store, log_dir=self.capture_dir
        )
        if table is None:
            return {}
        times: dict[str, datetime] = {}
        for rid, t in zip(table["request_id"].to_pylist(), table["time"].to_pylist(), strict=True):
            if rid in request_ids and (rid not in times or t < times[rid]):
                times[rid] = t
        return times

    def submit(self, records: Iterable[FeedbackRecord | Mapping[str, Any]]) -> FeedbackResult:
        """Validate and store a batch; returns counts of what was accepted or ignored.

        Raises :class:`~vigil.errors.ValidationError` (and stores nothing) when any record is
        invalid, so a client can fix its batch and send it again.
        """
        checked = [check_feedback(r) for r in records]
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
        times = self._prediction_times({r.request_id for r in fresh}, now)
        unknown = sorted({r.request_id for r in fresh} - set(times))
        late = sum(
            1
            for r in fresh
            if r.request_id in times and r.time - times[r.request_id] > self.late_after
        )
        self.log.append([r.to_dict() for r in fresh])
        seen.update(batch_keys)
        return FeedbackResult(
            accepted=len(fresh),
            duplicates=len(checked) - len(fresh),
            unknown_request_ids=unknown,
            late=late,
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
                tables.append(feedback_table(records, segment=sid))
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
        self._seen = None
        return deleted

    def close(self) -> None:
        self.log.close()
