"""The feedback a monitoring cycle joins, read span by span instead of all at once.

A cycle needs two things from the feedback that arrived since its lookback began:

1. **where every label points**, to tell which windows late labels touched (their *marks*:
   :class:`~vigil.monitor.streamed.WindowMarks`, :class:`~vigil.monitor.summaries.late.LabelMarks`);
2. **the labels of one window** when it is measured or checked again.

:meth:`FeedbackSpans.scan` makes one bounded pass over the store (compacted parts in record
batches of :data:`BATCH_ROWS`, only the key, label and placement columns) and keeps
:class:`Placements`: one int64 per label (the time of the prediction it judges, per model;
or, for a label that could not be placed, its arrival time). **Memory: 8 bytes a label**
held, plus, during the pass, 8 bytes a feedback row for a hash of its ``(request_id, row,
caller)`` key (and as much again to sort it), which finds the duplicates that slipped past
submission; only when there are some are those rows read again, whole, to choose the first
arrival of each as :meth:`FeedbackStore.read_table
<vigil.feedback.store.FeedbackStore.read_table>` does.

:meth:`FeedbackSpans.read` then gives the rows that can join one model's predictions in a
span: those whose ``prediction_time`` and ``prediction_model`` fall in it, read from the
parts' row groups whose statistics may hold them (compaction writes feedback sorted by
model and prediction time, in row groups of
:data:`~vigil.feedback.store.PART_GROUP_ROWS`, so a span opens few), plus the labels
that could not be placed, selected by request id or arrival time. Those, and the live
segments not compacted yet (bounded by rotation), are the rows held in memory.

The result is what the whole frame gave, restricted to what can join the span: one row
per ``(request_id, row, caller)``, the first to arrive among all the feedback read, with
the columns typed as the whole frame types them (a label column of numbers in one part and
text in another is text everywhere).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vigil.capture.crypt import open_log_file
from vigil.capture.table import concat
from vigil.feedback.record import FIELD_PREFIX
from vigil.feedback.store import Key, _first_arrivals

if TYPE_CHECKING:
    import pandas as pd

    from vigil.feedback.store import FeedbackStore
    from vigil.storage.artifacts import ArtifactStore

__all__ = ["BATCH_ROWS", "FeedbackSpans", "LabelStats", "Placements"]

BATCH_ROWS = 65_536
"""Feedback rows read at a time from a compacted part."""

Micros = np.ndarray[tuple[int], np.dtype[np.int64]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NARROW = ["request_id", "row", "caller", "label", "time", "prediction_time", "prediction_model"]
_NARROW += ["segment"]
_WANTED = ("request_id", "row", "label", "caller", "time", "prediction_time", "prediction_model")
_EMPTY = np.zeros(0, np.int64)


def micro(at: datetime) -> int:
    """Microseconds since the epoch (exact, no float)."""
    delta = at.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class Placements:
    """Where the labels (feedback with a label) point, as sorted int64 microseconds.

    ``placed``: by model, the prediction times of labels with both a prediction time and
    model; ``timed``/``timed_arrived``: the prediction and arrival times of labels with a
    prediction time but no model (none are written today; kept so marks read them as
    before); ``loose``: the arrival times of labels with no prediction time.
    """

    placed: dict[str, Micros] = field(default_factory=dict)
    timed: Micros = field(default_factory=lambda: _EMPTY)
    timed_arrived: Micros = field(default_factory=lambda: _EMPTY)
    loose: Micros = field(default_factory=lambda: _EMPTY)

    @property
    def labels(self) -> int:
        return sum(a.size for a in self.placed.values()) + self.timed.size + self.loose.size


@dataclass
class LabelStats:
    """What the span reads cost: the honest measure of a cycle's label memory."""

    labels_read: int = 0
    """Feedback rows materialised by :meth:`FeedbackSpans.read` (all reads)."""
    peak_labels: int = 0
    """The most rows one read held (before keeping those of its span)."""
    scanned: int = 0
    """Rows decoded from compacted parts by the reads: those of the row groups whose
    statistics could not rule the span out (the rest are skipped unread)."""
    reads: int = 0


def _is_labelled(table: pa.Table) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
    """pandas' ``label.notna()``: null, and NaN in a float column, are no label."""
    import pyarrow.compute as pc  # Arrow compute kernels: filtering feedback

    if "label" not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    label = table["label"]
    given = pc.is_valid(label)
    if pa.types.is_floating(label.type):
        given = pc.and_(given, pc.invert(pc.is_nan(label).fill_null(True)))
    return np.asarray(given.to_numpy(zero_copy_only=False), dtype=bool)


def _micros_of(column: Any) -> tuple[Micros, np.ndarray[tuple[int], np.dtype[np.bool_]]]:
    """A timestamp column as int64 microseconds (0 where null) and its validity."""
    as_us = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    valid = np.asarray(as_us.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(as_us.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return values, valid


def _column(table: pa.Table, name: str, dtype: pa.DataType) -> Any:
    if name in table.column_names:
        return table[name]
    return pa.nulls(table.num_rows, dtype)


def _key_hashes(table: pa.Table) -> np.ndarray[tuple[int], np.dtype[np.uint64]]:
    """A 64-bit hash of each row's ``(request_id, row, caller)``: equal keys, equal hashes
    (a collision only sends two rows to the exact check)."""
    import pandas as pd  # pandas: its vectorised string hash

    def hashed(values: Any) -> np.ndarray[tuple[int], np.dtype[np.uint64]]:
        text = values.cast(pa.string()).fill_null("\x00")
        return np.asarray(
            pd.util.hash_array(np.asarray(text.to_numpy(zero_copy_only=False), dtype=object))
        )

    out = hashed(table["request_id"])
    out = out * np.uint64(0x100000001B3) ^ hashed(_column(table, "row", pa.int64()))
    return out * np.uint64(0x100000001B3) ^ hashed(_column(table, "caller", pa.string()))


def _keys(table: pa.Table) -> list[Key]:
    callers = _column(table, "caller", pa.string()).to_pylist()
    return list(
        zip(
            table["request_id"].cast(pa.string()).to_pylist(),
            _column(table, "row", pa.int64()).to_pylist(),
            callers,
            strict=True,
        )
    )


class _Marks:
    """Placements gathered batch by batch (lists of arrays, sorted once at the end)."""

    def __init__(self) -> None:
        self.placed: dict[str, list[Micros]] = {}
        self.timed: list[Micros] = []
        self.timed_arrived: list[Micros] = []
        self.loose: list[Micros] = []
        self.minus: _Marks | None = None

    def add(self, table: pa.Table, sign: int = 1) -> None:
        """Count the labels of ``table`` (``sign=-1``: take them back)."""
        labelled = _is_labelled(table)
        if not labelled.any():
            return
        table = table.filter(pa.array(labelled))
        at, timed = _micros_of(_column(table, "prediction_time", pa.timestamp("us", tz="UTC")))
        arrived, _ = _micros_of(table["time"])
        models = _column(table, "prediction_model", pa.string()).cast(pa.string())
        named = np.asarray(models.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        placed = timed & named
        into = self
        if sign < 0:
            into = self.minus = self.minus or _Marks()
        if placed.any():
            names = np.asarray(models.to_numpy(zero_copy_only=False), dtype=object)[placed]
            times = at[placed]
            for name in np.unique(names):
                into.placed.setdefault(str(name), []).append(times[names == name])
        only_time = timed & ~named
        into.timed.append(at[only_time])
        into.timed_arrived.append(arrived[only_time])
        into.loose.append(arrived[~timed])

    def done(self) -> Placements:
        minus = self.minus

        def final(parts: list[Micros], gone: list[Micros] | None) -> Micros:
            values = np.sort(np.concatenate(parts)) if parts else _EMPTY
            if gone:
                values = _without(values, np.sort(np.concatenate(gone)))
            return values

        return Placements(
            placed={
                m: final(v, minus.placed.get(m) if minus else None) for m, v in self.placed.items()
            },
            timed=final(self.timed, minus.timed if minus else None),
            timed_arrived=final(self.timed_arrived, minus.timed_arrived if minus else None),
            loose=final(self.loose, minus.loose if minus else None),
        )


def _without(values: Micros, gone: Micros) -> Micros:
    """Sorted ``values`` less one occurrence of each of sorted ``gone`` (all present)."""
    if not gone.size:
        return values
    first = np.searchsorted(values, gone, side="left")
    # The k-th repeat of a value in ``gone`` takes the k-th occurrence in ``values``.
    starts = np.searchsorted(gone, gone, side="left")
    return np.delete(values, first + (np.arange(gone.size) - starts))


@dataclass
class _Part:
    """A compacted part and the statistics of its row groups on the placement columns."""

    path: str
    groups: list[int]
    lo: list[int | None]
    hi: list[int | None]
    models: list[tuple[str | None, str | None]]


def _stats_range(stats: Any) -> tuple[Any, Any]:
    if stats is None or not stats.has_min_max:
        return None, None
    return stats.min, stats.max


class FeedbackSpans:
    """The feedback since a lookback's start: placements at once, rows span by span.

    Build with :meth:`scan`; :class:`~vigil.feedback.frame_spans.FrameSpans` answers the
    same questions of a frame already in memory. See the module docstring.
    """

    def __init__(
        self,
        placements: Placements,
        held: pa.Table | None,
        *,
        store: ArtifactStore | None = None,
        parts: list[_Part] | None = None,
        since: datetime | None = None,
        schema: pa.Table | None = None,
        winners: dict[Key, tuple[int, str]] | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.placements = placements
        self._held = held
        self._store = store
        self._parts = parts or []
        self._since = since
        self._schema = schema
        self._winners = winners or {}
        self._batch_rows = batch_rows
        self.stats = LabelStats()

    def __repr__(self) -> str:
        return f"FeedbackSpans({self.placements.labels} labels, {len(self._parts)} parts)"

    @classmethod
    def scan(
        cls, feedback: FeedbackStore, since: datetime, *, batch_rows: int = BATCH_ROWS
    ) -> FeedbackSpans:
        """Make the bounded pass over the feedback that arrived at or after ``since``."""
        import pyarrow.compute as pc  # Arrow compute kernels: filtering feedback
        import pyarrow.parquet as pq  # Parquet: only where a part is read

        since = since.astimezone(UTC)
        store = feedback.store
        paths = feedback.part_paths(since.date())
        marks = _Marks()
        hashes: list[np.ndarray[tuple[int], np.dtype[np.uint64]]] = []
        held: list[pa.Table] = []
        live: list[pa.Table] = []
        schemas: list[pa.Schema] = []
        parts: list[_Part] = []

        def arrived(table: pa.Table) -> pa.Table:
            at = table["time"]
            return table.filter(pc.greater_equal(at, pa.scalar(since, at.type)))

        def unplaced(table: pa.Table) -> pa.Table:
            if "prediction_time" not in table.column_names:
                return table
            loose = pc.or_(
                pc.is_null(table["prediction_time"]),
                pc.is_null(_column(table, "prediction_model", pa.string())),
            )
            return table.filter(loose)

        for path in paths:
            assert store is not None
            with open_log_file(store, path) as fh:
                parquet = pq.ParquetFile(fh)
                schema = parquet.schema_arrow
                part = _describe(path, parquet, since)
                if not part.groups:
                    continue
                # Typed as the whole frame was: by every part with a row group read.
                schemas.append(schema)
                parts.append(part)
                columns = [c for c in _NARROW if c in schema.names]
                loose_rows = 0
                for batch in parquet.iter_batches(
                    batch_size=batch_rows, row_groups=part.groups, columns=columns
                ):
                    table = arrived(pa.Table.from_batches([batch]))
                    hashes.append(_key_hashes(table))
                    marks.add(table)
                    loose_rows += unplaced(table).num_rows
                if loose_rows:  # rare: read those row groups again, whole, for them
                    for batch in parquet.iter_batches(
                        batch_size=batch_rows, row_groups=part.groups
                    ):
                        kept = unplaced(arrived(pa.Table.from_batches([batch])))
                        if kept.num_rows:
                            held.append(kept)
        for table in feedback.live_tables(paths):
            table = arrived(table)
            schemas.append(table.schema)
            if table.num_rows:
                hashes.append(_key_hashes(table))
                marks.add(table)
                live.append(table)
        held += live
        every = np.sort(np.concatenate(hashes)) if hashes else np.zeros(0, np.uint64)
        del hashes
        repeated = np.unique(every[1:][every[1:] == every[:-1]])
        del every
        winners: dict[Key, tuple[int, str]] = {}
        if repeated.size:
            winners = _first_of_repeats(feedback, paths, live, repeated, since, marks, batch_rows)
        template = _template(schemas)
        return cls(
            marks.done(),
            concat([template, *held]) if held else None,
            store=store,
            parts=parts,
            since=since,
            schema=template,
            winners=winners,
            batch_rows=batch_rows,
        )

    def read(
        self,
        model: str,
        since: datetime,
        until: datetime,
        *,
        ids: Iterable[str] | None = None,
        arrived_since: datetime | None = None,
        untimed_only: bool = False,
    ) -> pd.DataFrame:
        """The feedback rows that may join ``model``'s predictions in ``[since, until)``
        (every column the monitor joins: key, ``label``, ``time``, placement, fields).

        Placed rows: ``prediction_model == model`` and ``prediction_time`` in the span.
        Rows that could not be placed (no prediction time, or no model; with
        ``untimed_only``, no prediction time only) are added when their request id is in
        ``ids`` and they arrived at or after ``arrived_since`` (each when given)."""
        import pyarrow.compute as pc  # Arrow compute kernels: filtering feedback

        lo, hi = micro(since), micro(until)
        wanted_ids = pa.array(sorted(set(ids)), pa.string()) if ids is not None else None

        def placed(table: pa.Table) -> pa.Table:
            if "prediction_time" not in table.column_names or not table.num_rows:
                return table.slice(0, 0)
            at, timed = _micros_of(table["prediction_time"])
            models = _column(table, "prediction_model", pa.string()).cast(pa.string())
            same = np.asarray(
                pc.equal(models, model).fill_null(False).to_numpy(zero_copy_only=False),
                dtype=bool,
            )
            keep = timed & same & (at >= lo) & (at < hi)
            if self._since is not None:
                keep &= _micros_of(table["time"])[0] >= micro(self._since)
            return table.filter(pa.array(keep))

        def loose(table: pa.Table) -> pa.Table:
            if not table.num_rows:
                return table
            _at, timed = _micros_of(_column(table, "prediction_time", pa.timestamp("us", tz="UTC")))
            keep = ~timed
            if not untimed_only:
                named = _column(table, "prediction_model", pa.string()).is_valid()
                keep |= ~np.asarray(named.to_numpy(zero_copy_only=False), dtype=bool)
            if arrived_since is not None:
                keep &= _micros_of(table["time"])[0] >= micro(arrived_since)
            if wanted_ids is not None:
                member = pc.is_in(table["request_id"].cast(pa.string()), value_set=wanted_ids)
                keep &= np.asarray(member.to_numpy(zero_copy_only=False), dtype=bool)
            return table.filter(pa.array(keep))

        tables = [t for t in self._read_parts(model, lo, hi, placed) if t.num_rows]
        if self._held is not None:
            tables += [placed(self._held), loose(self._held)]
        tables = [t for t in tables if t.num_rows]
        held = sum(t.num_rows for t in tables)
        self.stats.reads += 1
        self.stats.labels_read += held
        self.stats.peak_labels = max(self.stats.peak_labels, held)
        return self._frame(tables)

    def _read_parts(self, model: str, lo: int, hi: int, placed: Any) -> Iterator[pa.Table]:
        import pyarrow.parquet as pq  # Parquet: only where a part is read

        assert self._store is not None or not self._parts
        for part in self._parts:
            groups = [
                g
                for g, a, b, (m_lo, m_hi) in zip(
                    part.groups, part.lo, part.hi, part.models, strict=True
                )
                if (a is None or (a < hi and b is not None and b >= lo))
                and (m_lo is None or m_lo <= model)
                and (m_hi is None or model <= m_hi)
            ]
            if not groups:
                continue
            assert self._store is not None
            try:
                with open_log_file(self._store, part.path) as fh:
                    parquet = pq.ParquetFile(fh)
                    for batch in parquet.iter_batches(
                        batch_size=self._batch_rows, row_groups=groups
                    ):
                        self.stats.scanned += batch.num_rows
                        yield placed(pa.Table.from_batches([batch]))
            except FileNotFoundError:
                continue  # deleted by retention since the cycle began: nothing to join

    def _frame(self, tables: list[pa.Table]) -> pd.DataFrame:
        import pandas as pd  # pandas: the monitor joins frames

        template = self._schema if self._schema is not None else None
        if not tables:
            if template is None:
                return pd.DataFrame(columns=list(_WANTED))
            return _columns(template.to_pandas())
        table = concat([template, *tables] if template is not None else tables)
        table = _first_arrivals(table)
        if self._winners:
            table = table.filter(pa.array(_not_losers(table, self._winners)))
        return _columns(table.to_pandas())


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    fields = [c for c in frame.columns if str(c).startswith(FIELD_PREFIX)]
    return frame[[c for c in _WANTED if c in frame] + fields]


def _not_losers(
    table: pa.Table, winners: dict[Key, tuple[int, str]]
) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
    """False for each row of a repeated key that is not the first arrival of all the
    feedback (one the span's read chose only because the first lies outside the span)."""
    at, _ = _micros_of(table["time"])
    segments = _column(table, "segment", pa.string()).to_pylist()
    keep = np.ones(table.num_rows, dtype=bool)
    for i, key in enumerate(_keys(table)):
        won = winners.get(key)
        if won is not None and won != (int(at[i]), segments[i] or ""):
            keep[i] = False
    return keep


def _describe(path: str, parquet: Any, since: datetime) -> _Part:
    """The row groups of a part that may hold feedback arrived since ``since``, with the
    statistics of their placement columns (``None``: unknown, the group may hold any)."""
    names = parquet.schema_arrow.names
    meta = parquet.metadata
    part = _Part(path, [], [], [], [])
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if "time" in names:
            _first, last = _stats_range(group.column(names.index("time")).statistics)
            if last is not None and last < since:
                continue
        lo = hi = m_lo = m_hi = None
        if "prediction_time" in names:
            a, b = _stats_range(group.column(names.index("prediction_time")).statistics)
            lo = micro(a) if a is not None else None
            hi = micro(b) if b is not None else None
        if "prediction_model" in names:
            m_lo, m_hi = _stats_range(group.column(names.index("prediction_model")).statistics)
        part.groups.append(g)
        part.lo.append(lo)
        part.hi.append(hi)
        part.models.append((m_lo, m_hi))
    return part


def _template(schemas: list[pa.Schema]) -> pa.Table:
    """An empty table typed as the whole frame would be (see the module docstring)."""
    return concat([s.empty_table() for s in schemas]) if schemas else pa.table({})


def _first_of_repeats(
    feedback: FeedbackStore,
    paths: list[str],
    live: list[pa.Table],
    repeated: np.ndarray[tuple[int], np.dtype[np.uint64]],
    since: datetime,
    marks: _Marks,
    batch_rows: int,
) -> dict[Key, tuple[int, str]]:
    """Read again the rows whose key hash repeats, choose the first arrival of each key,
    and take the others back from ``marks``; returns the winners of repeated keys."""
    import pyarrow.compute as pc  # Arrow compute kernels: filtering feedback
    import pyarrow.parquet as pq  # Parquet: only where a part is read

    def repeats(table: pa.Table) -> pa.Table:
        at = table["time"]
        table = table.filter(pc.greater_equal(at, pa.scalar(since, at.type)))
        return table.filter(pa.array(np.isin(_key_hashes(table), repeated)))

    found: list[pa.Table] = []
    store = feedback.store
    for path in paths:
        assert store is not None
        with open_log_file(store, path) as fh:
            parquet = pq.ParquetFile(fh)
            columns = [c for c in _NARROW if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                found.append(repeats(pa.Table.from_batches([batch])))
    found += [repeats(t.select([c for c in _NARROW if c in t.column_names])) for t in live]
    found = [t for t in found if t.num_rows]
    if not found:
        return {}
    table = concat(found)
    if "segment" not in table.column_names:
        table = table.append_column("segment", pa.nulls(table.num_rows, pa.string()))
    table = table.append_column("_at", pa.array(np.arange(table.num_rows)))
    first = _first_arrivals(table)
    chosen = np.zeros(table.num_rows, dtype=bool)
    chosen[np.asarray(first["_at"].to_numpy(), dtype=np.int64)] = True
    marks.add(table.filter(pa.array(~chosen)), sign=-1)
    at, _ = _micros_of(first["time"])
    segments = first["segment"].to_pylist()
    return {k: (int(at[i]), segments[i] or "") for i, k in enumerate(_keys(first))}
