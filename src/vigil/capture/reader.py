"""Read the inference log back: compacted Parquet and not-yet-compacted segments together.

Rows from a segment are skipped where that segment's part for the same partition already
exists (a compaction that stopped before deleting the segment), so nothing is counted twice.

Compaction runs beside readers (in another process): it writes a segment's parts, then
deletes the segment. A reader therefore lists the segments *before* the parts
(:func:`list_segments`), and reads the parts of a listed segment that is gone by the time
it is read (compacted meanwhile, after the parts were listed): a row is read once, from
the segment or from its part, never from neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vigil.capture.compact import CAPTURE_ROOT, model_dir, partition_dirs
from vigil.capture.crypt import LogCodec, open_log_file, store_codec
from vigil.capture.log import CLOSED_SUFFIX, LIVE_SUFFIX, read_segment, segment_id
from vigil.capture.table import (
    DATA_ERRORS,
    concat,
    parse_time,
    read_part,
    readable_table,
    records_to_table,
)

if TYPE_CHECKING:
    import pandas as pd

    from vigil.storage.artifacts import ArtifactStore


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("pass timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
    return value.astimezone(UTC)


def _day(record: dict[str, Any]) -> date | None:
    """The UTC date of a record (``None`` when its time is unreadable: kept, so the
    tolerant conversion below names it)."""
    try:
        return parse_time(record["time"]).astimezone(UTC).date()
    except DATA_ERRORS:
        return None


def _segment_files(log_dir: Path | None, prefix: str) -> list[Path]:
    if log_dir is None or not log_dir.is_dir():
        return []
    return sorted(
        p for suffix in (CLOSED_SUFFIX, LIVE_SUFFIX) for p in log_dir.glob(f"{prefix}-*{suffix}")
    )


def list_segments(log_dir: str | Path | None, prefix: str = "capture") -> list[Path]:
    """The segment files of ``log_dir`` now: list them before the compacted parts, and
    hand them to :func:`uncompacted_tables` (see the module docstring)."""
    return _segment_files(Path(log_dir) if log_dir is not None else None, prefix)


def uncompacted_tables(
    log_dir: str | Path | None,
    model: str | None,
    compacted: set[tuple[str, str, date]],
    prefix: str = "capture",
    codec: LogCodec | None = None,
    *,
    segments: list[Path] | None = None,
    store: ArtifactStore | None = None,
    root: str = CAPTURE_ROOT,
) -> Iterator[pa.Table]:
    """The rows of ``model`` (every model when ``None``) in the segments of ``log_dir``,
    a table per segment, leaving out those whose ``(segment id, model dir, day)`` part is
    in ``compacted`` (a compaction that stopped before deleting its segment).

    ``segments``: the segments as :func:`list_segments` listed them before the parts in
    ``compacted`` were; one compacted since is read from its parts in ``store`` (under
    ``root``) instead. Without it, the segments are listed now."""
    if segments is None:
        segments = list_segments(log_dir, prefix)
    for seg in segments:
        try:
            records, _torn = read_segment(seg, codec)
        except FileNotFoundError:
            # Compacted since it was listed: its parts were written before it went.
            if store is not None:
                yield from _parts_of(store, root, segment_id(seg), model, compacted)
            continue
        sid = segment_id(seg)
        keep = [
            r
            for r in records
            if (model is None or (r.get("model") or "") == model)
            and (sid, model_dir(r.get("model")), _day(r)) not in compacted
        ]
        if keep:
            table = readable_table(records_to_table, keep, segment=sid, what="capture")
            if table is not None:
                yield table


def part_identity(path: str) -> tuple[str, str, date]:
    """(segment id, model dir, day) of a part's key or path
    (``.../model=<m>/date=<d>/part-<segment id>.parquet``): how readers mark the rows a
    segment's part holds.

    >>> part_identity("capture/model=churn/date=2026-01-02/part-s1.parquet")
    ('s1', 'model=churn', datetime.date(2026, 1, 2))
    """
    _, mdir, ddir, name = path.rsplit("/", 3)
    return name[len("part-") : -len(".parquet")], mdir, date.fromisoformat(ddir[len("date=") :])


def _parts_of(
    store: ArtifactStore,
    root: str,
    sid: str,
    model: str | None,
    compacted: set[tuple[str, str, date]],
) -> Iterator[pa.Table]:
    """The parts of segment ``sid`` (of ``model``'s partitions when given) not already in
    ``compacted``."""
    where = model_dir(model) if model is not None else "model=*"
    for part in sorted(
        store.fs.glob(f"{store.resolve_key(root)}/{where}/date=*/part-{sid}.parquet")
    ):
        if part_identity(str(part)) in compacted:
            continue
        with open_log_file(store, part) as fh:
            table = read_part(fh)
        if table is not None:
            yield table


def read_capture_table(
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    *,
    store: ArtifactStore | None = None,
    log_dir: str | Path | None = None,
    root: str = CAPTURE_ROOT,
    prefix: str = "capture",
) -> pa.Table | None:
    """Captured rows with ``since <= time < until`` as one Arrow table (``None`` if none)."""
    # Arrow compute kernels: only where a table is filtered
    import pyarrow.compute as pc

    since, until = _utc(since), _utc(until)
    first_day = since.date() if since else date.min
    last_day = until.date() if until else date.max
    tables: list[pa.Table] = []
    compacted: set[tuple[str, str, date]] = set()
    segments = list_segments(log_dir, prefix)  # before the parts: see the module docstring
    if store is not None:
        wanted = model_dir(model) if model is not None else None
        for path, day in partition_dirs(store, root=root):
            if not first_day <= day <= last_day:
                continue
            mdir = path.rsplit("/", 2)[-2]
            if wanted is not None and mdir != wanted:
                continue
            for part in sorted(store.fs.glob(f"{path}/part-*.parquet")):
                sid = str(part).rsplit("/", 1)[-1][len("part-") : -len(".parquet")]
                compacted.add((sid, mdir, day))
                with open_log_file(store, part) as fh:
                    table = read_part(fh, since=since, until=until)
                if table is not None:
                    tables.append(table)
    tables.extend(
        uncompacted_tables(
            log_dir,
            model,
            compacted,
            prefix,
            store_codec(store),
            segments=segments,
            store=store,
            root=root,
        )
    )
    if not tables:
        return None
    table = concat(tables)
    mask: Any = None
    conditions = []
    if model is not None:
        conditions.append(pc.equal(table["model"], model))
    if version is not None:
        conditions.append(pc.equal(table["version"], version))
    if since is not None:
        conditions.append(pc.greater_equal(table["time"], pa.scalar(since, table["time"].type)))
    if until is not None:
        conditions.append(pc.less(table["time"], pa.scalar(until, table["time"].type)))
    for condition in conditions:
        mask = condition if mask is None else pc.and_(mask, condition)
    if mask is not None:
        table = table.filter(mask)
    return table.sort_by([("time", "ascending"), ("request_id", "ascending"), ("row", "ascending")])


def read_capture(
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    *,
    store: ArtifactStore | None = None,
    log_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Captured rows of ``model`` (all models when ``None``) as a DataFrame, oldest first.

    ``since`` is inclusive and ``until`` exclusive (timezone-aware datetimes). Columns:
    ``request_id, row, time, route, model, version, variant, caller, endpoint, latency_ms, status,
    error_code, error_message, raw_body, cached, prediction, feature.<name>..., proba.<class>...,
    segment``. Feature columns are the union over the rows read; missing values are null.
    """
    # pandas: only when a frame is built
    import pandas as pd

    table = read_capture_table(model, since, until, version, store=store, log_dir=log_dir)
    if table is None:
        return pd.DataFrame(columns=["request_id", "row", "time", "model", "version"])
    frame: pd.DataFrame = table.to_pandas()
    return frame
