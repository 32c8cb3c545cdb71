"""Compaction: closed log segments become Parquet partitions in the artifact store.

Layout (local directory or S3, whatever the :class:`~vigil.storage.ArtifactStore` root is)::

    <store>/capture/model=<name>/date=YYYY-MM-DD/part-<segment id>.parquet

Crash-safe ordering: every part of a segment is written first (to a temporary name and
renamed into place locally; a single PUT on S3), then the segment file is deleted. A part's
name derives from its segment's id, so a compaction interrupted after some parts and run
again rewrites the same files with the same rows: nothing is duplicated. The reader
(:mod:`vigil.capture.reader`) meanwhile ignores segment rows whose part already exists.

Dates are UTC dates of the prediction time. :func:`apply_retention` deletes whole date
partitions older than the retention period.

Both record what they did in the root's chain manifests (:mod:`vigil.capture.chain`):
the parts written (size, SHA-256) and the segment they replace, the files retention
deletes, so ``vigil capture verify`` can tell a legitimate deletion from tampering.

A record that cannot become a row (a number past 64 bits, a time that is no time: written
by an older vigil or damaged) does not stop its segment: it is *quarantined*, written as a
JSON line with the reason to ``<store>/quarantine/<root>/<segment id>.jsonl``, counted in
:attr:`CompactionResult.quarantined` and in a warning, and the rest of the segment is
compacted as usual. Quarantined records are kept for a person to look at; nothing reads
them back.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import pyarrow as pa

from vigil.capture.chain import append_entry, chain_group, file_entry, store_keys
from vigil.capture.columnar import segment_tables
from vigil.capture.crypt import stored_bytes
from vigil.capture.framing import Batch, expand_batch
from vigil.capture.log import SegmentLog, decode_segment, record_compacted, segment_id
from vigil.capture.table import DATA_ERRORS, ToTable, parse_time, records_to_table, tolerant_table

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore

log = logging.getLogger("vigil.capture")

CAPTURE_ROOT = "capture"
QUARANTINE_ROOT = "quarantine"
_DATE_DIR = re.compile(r"date=(\d{4}-\d{2}-\d{2})$")
NO_MODEL = "_none"


@dataclass(frozen=True)
class CompactionResult:
    """What one compaction pass did."""

    segments: int
    rows: int
    parts: list[str]
    torn: int
    quarantined: int = 0
    """Records set aside because they cannot be stored as rows (see the module docstring)."""


def model_dir(model: str | None) -> str:
    """The partition directory name of a model (URL-quoted, so any name is a safe path).

    >>> model_dir("churn"), model_dir("a/b"), model_dir("")
    ('model=churn', 'model=a%2Fb', 'model=_none')
    """
    return f"model={quote(model, safe='') if model else NO_MODEL}"


def model_from_dir(name: str) -> str:
    value = unquote(name.split("=", 1)[1])
    return "" if value == NO_MODEL else value


def _parquet_bytes(table: pa.Table, row_group_rows: int | None = None) -> bytes:
    # Parquet: only where a partition is read or written
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=row_group_rows)
    return buffer.getvalue()


def capture_partition(record: dict[str, Any]) -> str:
    """The partition of a capture record: its model and the UTC date of its prediction."""
    day = parse_time(record["time"]).astimezone(UTC).date()
    return f"{model_dir(record.get('model'))}/date={day.isoformat()}"


def compact(
    log: SegmentLog,
    store: ArtifactStore,
    *,
    root: str = CAPTURE_ROOT,
    partition: Callable[[dict[str, Any]], str] = capture_partition,
    to_table: ToTable = records_to_table,
    row_group_rows: int | None = None,
) -> CompactionResult:
    """Convert every closed segment of ``log`` (and those of dead writers) to Parquet
    (row groups of ``row_group_rows``, when given: smaller groups, finer statistics).

    >>> import tempfile
    >>> from vigil.storage.artifacts import ArtifactStore
    >>> log = SegmentLog(tempfile.mkdtemp())
    >>> log.append([{"request_id": "r", "row": 0, "time": "2025-03-01T10:00:00+00:00",
    ...              "model": "churn", "features": {"a": 1}, "prediction": 0}])
    >>> _ = log.rotate()
    >>> result = compact(log, ArtifactStore(tempfile.mkdtemp()))
    >>> result.rows, result.parts[0].split("/")[1:3], log.all_segments()
    (1, ['model=churn', 'date=2025-03-01'], [])
    """
    segments = log.closed_segments()
    rows = torn_total = quarantined = 0
    parts: list[str] = []
    # The server's columnar batches straight to columns (vigil.capture.columnar): a dict
    # per row costs a loaded server seconds of its core per segment.
    columnar = to_table is records_to_table and partition is capture_partition
    for path in segments:
        sid = segment_id(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue  # another compactor finished it first
        items, torn = decode_segment(raw, sid, log.codec, expand=not columnar)
        found = segment_tables(items, segment=sid, partition=partition) if columnar else None
        bad: list[tuple[Any, str]] = []
        if found is not None:
            tables, count = found, sum(t.num_rows for t in found.values())
        else:
            records, more = _expanded(items) if columnar else (items, 0)
            torn += more
            tables, bad = _tables(records, partition, to_table, sid)
            count = len(records) - len(bad)
        written: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for where, table in sorted(tables.items()):
            key = f"{root}/{where}/part-{sid}.parquet"
            data = stored_bytes(store, key, _parquet_bytes(table, row_group_rows))
            store.write_bytes(key, data)
            parts.append(key)
            written[chain_group(where)].append(file_entry(key, data))
        # Chained before the segment goes, so a crash leaves the parts recorded or unrecorded
        # (and rewritten, then recorded, by the next pass), never the segment's deletion
        # unexplained.
        for group, files in sorted(written.items()):
            append_entry(store, root, group, "compacted", added=files, replaces=[path.name])
        if bad:
            _quarantine(store, root, sid, bad)
        record_compacted(path, log.prefix)
        path.unlink(missing_ok=True)
        rows += count
        torn_total += torn
        quarantined += len(bad)
    return CompactionResult(len(segments), rows, parts, torn_total, quarantined)


def _expanded(items: list[Any]) -> tuple[list[Any], int]:
    """Records of decoded items, batches expanded as :func:`~vigil.capture.framing.
    decode_frames` expands them (a batch that does not expand counts as torn)."""
    records: list[Any] = []
    torn = 0
    for item in items:
        if type(item) is not Batch:
            records.append(item)
            continue
        try:
            records.extend(expand_batch(item.frame))
        except (ValueError, KeyError, TypeError, IndexError):
            torn += 1
    return records, torn


def _tables(
    records: list[dict[str, Any]],
    partition: Callable[[dict[str, Any]], str],
    to_table: ToTable,
    sid: str,
) -> tuple[dict[str, pa.Table], list[tuple[Any, str]]]:
    """One table per partition of the records that convert; the others with why."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    bad: list[tuple[Any, str]] = []
    for r in records:
        try:
            groups[partition(r)].append(r)
        except DATA_ERRORS as exc:
            bad.append((r, f"{type(exc).__name__}: {exc}"[:500]))
    tables: dict[str, pa.Table] = {}
    for where, group in groups.items():
        table, rejected = tolerant_table(to_table, group, segment=sid)
        bad.extend(rejected)
        if table is not None:
            tables[where] = table
    return tables, bad


def _quarantine(store: ArtifactStore, root: str, sid: str, bad: list[tuple[Any, str]]) -> None:
    # The standard library's encoder takes any integer, where orjson stops at 64 bits.
    lines = [json.dumps({"record": r, "error": why}, default=str) for r, why in bad]
    key = f"{QUARANTINE_ROOT}/{root}/{sid}.jsonl"
    store.write_bytes(key, stored_bytes(store, key, ("\n".join(lines) + "\n").encode()))
    log.warning(
        "quarantined %d record(s) of %s segment %s that cannot be stored as rows into %s "
        "(first: %s); the rest of the segment was compacted",
        len(bad),
        root,
        sid,
        store.uri(key),
        bad[0][1],
    )


def partition_dirs(
    store: ArtifactStore, *, root: str = CAPTURE_ROOT, pattern: str = "model=*/date=*"
) -> list[tuple[str, date]]:
    """Every ``(full path, date)`` date partition under ``root`` in the store."""
    base = store.resolve_key(root)
    found = []
    for path in store.fs.glob(f"{base}/{pattern}"):
        match = _DATE_DIR.search(str(path))
        if match:
            found.append((str(path), date.fromisoformat(match.group(1))))
    return sorted(found)


def apply_retention(
    store: ArtifactStore,
    retention_days: int,
    *,
    now: datetime | None = None,
    root: str = CAPTURE_ROOT,
    pattern: str = "model=*/date=*",
) -> list[str]:
    """Delete date partitions older than ``retention_days`` (UTC); returns what was deleted.

    A partition dated D is kept while ``D >= today - retention_days``.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=retention_days)
    deleted = []
    base = store.resolve_key(root)
    for path, day in partition_dirs(store, root=root, pattern=pattern):
        if day < cutoff:
            # Recorded first: a deletion the chain does not explain is tampering.
            where = path[len(base) + 1 :] if path.startswith(base + "/") else path
            keys = store_keys(store, f"{root}/{where}")
            append_entry(store, root, chain_group(where), "retention", removed=keys)
            store.fs.rm(path, recursive=True)
            deleted.append(path)
    return deleted
