"""Summaries kept beside the compacted capture parts, built on first read, read in record batches.

Layout, next to the capture partitions (:mod:`vigil.capture.compact`)::

    <store>/summaries/model=<name>/date=YYYY-MM-DD/part-<segment id>.g<grain>.summary

A part's summaries (one per series and time bucket of ``grain`` seconds) are built the
first time a reader asks for them, in one pass over the part's Parquet row groups in
record batches (only the row groups whose time statistics meet the span, never the whole
file at once), and written atomically (:meth:`~vigil.storage.ArtifactStore.write_bytes`).
A build interrupted anywhere leaves no file, and the next read builds it again; a part is
never counted twice because its summary is named after it, and rows of a segment whose
part exists are left to the part (as :mod:`vigil.capture.reader` does). Segments not yet
compacted are summarised on each read and not stored: they are bounded by the capture's
segment rotation.

Performance sums depend on labels that may still arrive, so stored summaries hold none;
:func:`label_summaries` joins the current feedback to the projected columns of the parts
(``request_id``, ``row``, ``caller``, ``prediction``, ``proba.*``) per record batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.capture.compact import CAPTURE_ROOT, model_dir, partition_dirs
from vigil.capture.crypt import (
    open_log_file,
    read_log_bytes,
    store_codec,
    stored_bytes,
)
from vigil.capture.reader import list_segments, part_identity, uncompacted_tables
from vigil.capture.table import (
    PROBA_PREFIX,
)
from vigil.errors import NotFoundError
from vigil.monitor.summaries.build import AnchorsFor, summarise
from vigil.monitor.summaries.groups import GroupSummary
from vigil.monitor.summaries.window import (
    DEFAULT_GRAIN_S,
    WindowSummary,
    dumps,
    loads,
    merge_all,
)
from vigil.monitor.windows import SeriesKey

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from vigil.monitor.fairness import ModelFairness
    from vigil.storage.artifacts import ArtifactStore

SUMMARY_ROOT = "summaries"
BATCH_ROWS = 65_536
"""Rows per record batch read from a part: what a build holds of it at a time."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _may_hold(stats: Any, since: datetime | None, until: datetime | None) -> bool:
    # The same test as vigil.capture.table.read_part's, on one row group's statistics.
    if stats is None or not stats.has_min_max:
        return True
    return (since is None or stats.max >= since) and (until is None or stats.min < until)


def summary_key(part: str, grain_s: int = DEFAULT_GRAIN_S) -> str:
    """The store key of a part's summaries, from the part's key under ``capture/``.

    >>> summary_key("capture/model=churn/date=2026-01-05/part-abc.parquet")
    'summaries/model=churn/date=2026-01-05/part-abc.g3600.summary'
    """
    head, _, tail = part.partition(f"{CAPTURE_ROOT}/")
    if head or not tail.endswith(".parquet"):
        raise ValueError(f"{part!r} is not a capture part key")
    return f"{SUMMARY_ROOT}/{tail[: -len('.parquet')]}.g{grain_s}.summary"


def stream_part(
    store: ArtifactStore,
    part: str,
    *,
    columns: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The record batches of a compacted part (key under the store's root), only the
    ``columns`` asked for that exist in it, skipping row groups wholly outside
    ``[since, until)`` (rows are not filtered one by one)."""
    import pyarrow.parquet as pq  # Parquet: only where a part is read

    with open_log_file(store, store.resolve_key(part)) as fh:
        parquet = pq.ParquetFile(fh)
        names = parquet.schema_arrow.names
        project = None if columns is None else [c for c in columns if c in names]
        groups = list(range(parquet.metadata.num_row_groups))
        if "time" in names and (since is not None or until is not None):
            index = names.index("time")
            groups = [
                i
                for i in groups
                if _may_hold(parquet.metadata.row_group(i).column(index).statistics, since, until)
            ]
        if groups:
            yield from parquet.iter_batches(
                batch_size=batch_rows, row_groups=groups, columns=project
            )


def parts(
    store: ArtifactStore,
    model: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[str]:
    """Keys of the compacted parts of ``model`` (every model for None) whose date
    partition meets ``[since, until)``: pruned by model and day before any file is opened."""
    first = since.astimezone(UTC).date() if since is not None else date.min
    last = until.astimezone(UTC).date() if until is not None else date.max
    wanted = model_dir(model) if model is not None else None
    root = store.resolve_key(CAPTURE_ROOT)
    found = []
    for path, day in partition_dirs(store):
        if not first <= day <= last or (wanted is not None and path.rsplit("/", 2)[-2] != wanted):
            continue
        for full in sorted(store.fs.glob(f"{path}/part-*.parquet")):
            found.append(f"{CAPTURE_ROOT}/{str(full)[len(root) + 1 :]}")
    return found


def part_summaries(
    store: ArtifactStore,
    part: str,
    anchors_for: AnchorsFor,
    *,
    grain_s: int = DEFAULT_GRAIN_S,
) -> list[WindowSummary]:
    """A part's stored summaries, built and stored first if they are not there yet (or
    were stored in an older format)."""
    key = summary_key(part, grain_s)
    index = key[: -len(".summary")] + ".keys"
    try:
        found = loads(read_log_bytes(store, key))
    except NotFoundError:
        pass
    except ValueError:  # an older format: rebuilt below
        pass
    else:
        if not store.exists(index):  # stopped between the two writes: complete it
            store.write_bytes(index, _keys_bytes(found))
        return found
    built = summarise(stream_part(store, part), anchors_for, grain_s=grain_s)
    if all(anchors_for(s.key.model, s.key.version) is not None for s in built):
        # Stored only when every version in it was anchored to its baseline: a version
        # not registered yet gets its summary built again once it is.
        # Encrypted with the log: category frequencies and sketches hold feature values.
        store.write_bytes(key, stored_bytes(store, key, dumps(built, grain_s=grain_s)))
        # The index of what the part holds, written after the summaries it indexes: a
        # reader that finds it may skip the part without opening the larger file.
        store.write_bytes(index, _keys_bytes(built))
    return built


Bucket = tuple[SeriesKey, datetime]
"""A series and the start of one of its buckets."""


def _keys_bytes(summaries: list[WindowSummary]) -> bytes:
    keys = [[s.key.model, s.key.version, s.key.route, s.start.isoformat()] for s in summaries]
    return json.dumps(keys).encode()


def part_buckets(
    store: ArtifactStore, part: str, *, grain_s: int = DEFAULT_GRAIN_S
) -> list[Bucket] | None:
    """The series and buckets a part's stored summaries hold (None when not stored yet)."""
    key = summary_key(part, grain_s)[: -len(".summary")] + ".keys"
    try:
        raw = json.loads(store.read_bytes(key))
    except NotFoundError:
        return None
    return [(SeriesKey(str(m), int(v), str(r)), datetime.fromisoformat(t)) for m, v, r, t in raw]


class DayIndex:
    """The ``.keys`` indexes of a day's parts gathered in one file per date partition
    (``summaries/model=<name>/date=<day>/index.g<grain>.json``), so a cycle that skips the
    parts it knows reads one small file per day of the lookback, not one per part.

    It is a cache of the parts' own indexes and only ever lists a part whose ``.keys``
    was read (so whose summaries are stored): a part it does not list is looked up in its
    own ``.keys``, and :meth:`save` then rewrites the day's file (atomically) with it. A
    lost update (two writers at once) or a missing file only costs those reads again;
    entries of parts deleted since are never asked for (callers list the parts)."""

    def __init__(self, store: ArtifactStore, grain_s: int = DEFAULT_GRAIN_S) -> None:
        self.store, self.grain_s = store, grain_s
        self._days: dict[str, dict[str, list[list[Any]]]] = {}
        self._changed: set[str] = set()

    def _key(self, part: str) -> tuple[str, str]:
        head, _, name = summary_key(part, self.grain_s).rpartition("/")
        return f"{head}/index.g{self.grain_s}.json", name

    def buckets(self, part: str) -> list[Bucket] | None:
        """What the part's stored summaries hold (None when they are not stored yet)."""
        day, name = self._key(part)
        if day not in self._days:
            try:
                self._days[day] = json.loads(self.store.read_bytes(day))
            except (NotFoundError, ValueError):
                self._days[day] = {}
        raw = self._days[day].get(name)
        if raw is None:
            key = summary_key(part, self.grain_s)[: -len(".summary")] + ".keys"
            try:
                raw = json.loads(self.store.read_bytes(key))
            except NotFoundError:
                return None
            self._days[day][name] = raw
            self._changed.add(day)
        return [
            (SeriesKey(str(m), int(v), str(r)), datetime.fromisoformat(t)) for m, v, r, t in raw
        ]

    def save(self) -> None:
        """Write the days that gained parts."""
        for day in sorted(self._changed):
            self.store.write_bytes(day, json.dumps(self._days[day]).encode())
        self._changed.clear()


def _segment_batches(
    segments: list[Path],
    model: str | None,
    compacted: set[tuple[str, str, date]],
    store: ArtifactStore | None,
) -> Iterator[pa.RecordBatch]:
    """The rows of the segments not yet compacted, listed before the parts (those of a
    segment whose part exists are the part's, and a segment compacted since it was listed
    is read from its parts, as :mod:`vigil.capture.reader` has it)."""
    codec = store_codec(store)
    for table in uncompacted_tables(
        None, model, compacted, codec=codec, segments=segments, store=store
    ):
        yield from table.to_batches(BATCH_ROWS)


def bucket_summaries(
    store: ArtifactStore | None,
    anchors_for: AnchorsFor,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    log_dir: str | Path | None = None,
    grain_s: int = DEFAULT_GRAIN_S,
    needed: Callable[[list[Bucket]], bool] | None = None,
) -> Iterator[WindowSummary]:
    """The summaries of every bucket starting in ``[since, until)`` (aligned on the grain)
    from the compacted parts (stored, built on first read) and the segments not yet
    compacted (built on each call), one part at a time. Several may share a series and
    bucket (one per part or segment); :func:`windows` merges them as they come.

    ``needed`` (given the buckets a stored part holds) lets a caller skip parts whose
    windows are all known already: an incremental cycle then opens only the new parts."""
    compacted: set[tuple[str, str, date]] = set()
    found: Iterator[WindowSummary] = iter(())
    segments = list_segments(log_dir)  # before the parts (see vigil.capture.reader)
    if store is not None:
        index = DayIndex(store, grain_s)
        for part in parts(store, model, since, until):
            compacted.add(part_identity(part))
            if needed is not None:
                held = index.buckets(part)
                if held is not None and not needed(held):
                    continue
            yield from _within(
                part_summaries(store, part, anchors_for, grain_s=grain_s), model, since, until
            )
            if needed is not None and held is None:
                index.buckets(part)  # built just now: its index joins the day's
        index.save()
    if log_dir is not None:
        batches = _segment_batches(segments, model, compacted, store)
        found = iter(summarise(batches, anchors_for, grain_s=grain_s))
    yield from _within(found, model, since, until)


def _within(
    summaries: Iterable[WindowSummary],
    model: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Iterator[WindowSummary]:
    for s in summaries:
        if (
            (model is None or s.key.model == model)
            and (since is None or s.start >= since)
            and (until is None or s.start < until)
        ):
            yield s


def windows(
    summaries: Iterable[WindowSummary], window_s: float
) -> dict[tuple[SeriesKey, datetime], WindowSummary]:
    """Bucket summaries merged into windows of ``window_s`` seconds aligned on the epoch
    (a whole number of buckets), per series, as they come: memory holds one summary per
    window, not every bucket. The first summary of each window is merged into (the
    summaries are consumed)."""
    out: dict[tuple[SeriesKey, datetime], WindowSummary] = {}
    for s in summaries:
        grain = (s.end - s.start).total_seconds()
        if window_s % grain:
            raise ValueError(f"a {window_s:g}s window is no whole number of {grain:g}s buckets")
        index = (s.start - _EPOCH).total_seconds() // window_s
        start = _EPOCH + timedelta(seconds=index * window_s)
        key = (s.key, start)
        if key in out:
            out[key].merge(s)
        else:
            out[key] = s
    for (_series, start), merged in out.items():
        merged.start, merged.end = start, start + timedelta(seconds=window_s)
    return out


LABEL_COLUMNS = ["request_id", "row", "caller", "prediction", "status", "time", "model"]
LABEL_COLUMNS += ["version", "route"]


def label_summaries(
    store: ArtifactStore | None,
    anchors_for: AnchorsFor,
    labels: pd.DataFrame,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    log_dir: str | Path | None = None,
    grain_s: int = DEFAULT_GRAIN_S,
) -> list[WindowSummary]:
    """Performance sums of the captured rows in ``[since, until)`` that have a label. Parts
    are read with only the columns the join and the metrics need (never the features)."""

    def wanted(names: list[str]) -> list[str]:
        return LABEL_COLUMNS + [n for n in names if n.startswith(PROBA_PREFIX)]

    batches = span_batches(store, wanted, model=model, since=since, until=until, log_dir=log_dir)
    out = summarise(batches, anchors_for, grain_s=grain_s, labels=labels, features=[])
    return [s for s in _within(out, model, since, until) if s.performance is not None]


def span_batches(
    store: ArtifactStore | None,
    wanted: Callable[[list[str]], list[str]],
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    log_dir: str | Path | None = None,
) -> Iterator[pa.RecordBatch]:
    """The captured rows of ``[since, until)``: of each compacted part only the columns
    ``wanted`` picks from its column names, then the segments not compacted yet."""
    import pyarrow.parquet as pq  # Parquet: only where a part is read

    compacted: set[tuple[str, str, date]] = set()
    segments = list_segments(log_dir)  # before the parts (see vigil.capture.reader)
    for part in parts(store, model, since, until) if store is not None else []:
        assert store is not None
        compacted.add(part_identity(part))
        with open_log_file(store, store.resolve_key(part)) as fh:
            names = pq.ParquetFile(fh).schema_arrow.names
        columns = wanted(names)
        yield from stream_part(store, part, columns=columns, since=since, until=until)
    yield from _segment_batches(segments, model, compacted, store)


def group_summaries(
    store: ArtifactStore | None,
    anchors_for: AnchorsFor,
    feedback: pd.DataFrame,
    columns: Iterable[str],
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    log_dir: str | Path | None = None,
    grain_s: int = DEFAULT_GRAIN_S,
) -> list[WindowSummary]:
    """The fairness counts per group (:mod:`vigil.monitor.summaries.groups`) of the
    captured rows in ``[since, until)``, joined to ``feedback`` (labels, and fields for
    attributes sent with feedback). Parts are read with the columns of the join and the
    sensitive attributes' ``columns`` only."""
    extra = set(columns)

    def wanted(names: list[str]) -> list[str]:
        return LABEL_COLUMNS + [n for n in names if n in extra]

    batches = span_batches(store, wanted, model=model, since=since, until=until, log_dir=log_dir)
    out = summarise(batches, anchors_for, grain_s=grain_s, features=[], groups_from=feedback)
    return [s for s in _within(out, model, since, until) if s.groups is not None]


def window_groups(
    store: ArtifactStore | None,
    anchors_for: AnchorsFor,
    feedback: pd.DataFrame,
    key: SeriesKey,
    since: datetime,
    until: datetime,
    fairness: ModelFairness,
    *,
    log_dir: str | Path | None = None,
    grain_s: int = DEFAULT_GRAIN_S,
) -> GroupSummary | None:
    """The fairness counts of one series' window ``[since, until)``: its
    :func:`group_summaries`, merged (None when it has none)."""
    found = group_summaries(
        store,
        anchors_for,
        feedback,
        [a.column for a in fairness.attributes],
        model=key.model,
        since=since,
        until=until,
        log_dir=log_dir,
        grain_s=grain_s,
    )
    merged = merge_all(s for s in found if s.key == key)
    return merged.groups if merged is not None else None
