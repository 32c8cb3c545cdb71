"""Erasure on request: a person's records removed from a log's segments and partitions.

:func:`erase_log` rewrites every closed segment of a :class:`~vigil.capture.log.SegmentLog`
directory and every compacted Parquet part under a store root that holds a matching
record, without those records, and keeps their hash chains (:mod:`vigil.capture.chain`)
valid: each rewrite is chained as an ``erased`` entry giving the file's new size and
SHA-256 (or its removal, when nothing is left of it).

Crash safety, for each file: the new content is written beside it under a hidden name
(``.<name>.erasing``), then chained, then moved over the old file, then the hidden copy
is deleted. A ``kill -9`` leaves each file old or new; :func:`recover` (the first step of
every run) moves a hidden copy into place when the chain already records it, and deletes
it when not, so running the same erasure again completes it.

The caller holds the compaction lock (:func:`compaction_lock`), so no compactor moves a
segment while it is rewritten. Live segments of running writers are never rewritten (a
writer appends to its open file): the caller first asks every writer to close them
(:func:`request_rotation`, honoured by each server's compactor within its interval) and
waits for them (:func:`wait_for_rotation`); what is still live then is counted in
:attr:`LogErasure.live` for the caller to report, and erased by a later run.

What matches is the caller's: a predicate on records (:data:`RecordMatch`) and one on
Parquet tables (:data:`TableMatch`); :class:`Subject` builds both from ``FIELD=VALUE``
conditions, comparing hashed fields through the capture's keyed hash.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import posixpath
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from vigil.capture.chain import (
    CHAIN_DIR,
    append_entry,
    chain_group,
    file_entry,
    record_segment,
    segment_entry,
    segment_manifest,
    store_keys,
)
from vigil.capture.compact import QUARANTINE_ROOT, _parquet_bytes
from vigil.capture.crypt import LogCodec, read_log_bytes, store_codec, stored_bytes
from vigil.capture.framing import encode_frame
from vigil.capture.log import CLOSED_SUFFIX, LIVE_SUFFIX, SegmentLog, read_segment, segment_id
from vigil.capture.masking import Masker
from vigil.capture.table import FEATURE_PREFIX, PASSTHROUGH_PREFIX
from vigil.errors import ServiceUnavailableError, ValidationError

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore

RecordMatch = Callable[[Mapping[str, Any]], bool]
TableMatch = Callable[[pa.Table], "pa.ChunkedArray | pa.Array"]

PENDING = ".erasing"
LOCK_NAME = "compaction.lock"
"""The lock :class:`~vigil.capture.compactor.Compactor` takes (same file, same meaning)."""
ROTATE_REQUEST = "rotate.request"
"""Touched by :func:`request_rotation`; every compactor closes its live segments when its
time changes (:meth:`~vigil.capture.compactor.Compactor.rotate_if_requested`)."""
_TOP_LEVEL = ("request_id", "caller", "endpoint", "variant", "model", "route")
_PASSTHROUGH = {PASSTHROUGH_PREFIX: "passthrough"}


@dataclass
class LogErasure:
    """What :func:`erase_log` did to one log."""

    records: int = 0
    """Records removed."""
    files: list[str] = field(default_factory=list)
    """Segments and parts rewritten or deleted (names and store keys)."""
    live: int = 0
    """Matching records left in live segments of running writers."""


class Subject:
    """The records of one person: every ``FIELD=VALUE`` condition holds.

    A field is a top-level capture field (``request_id``, ``caller``...), a passthrough
    field sent beside the features (``passthrough.<field>``) or a feature. A
    value matches as written, as the JSON value it reads as (``42``, ``true``), and, for a
    field the capture hashes, as its keyed hash (:meth:`~vigil.capture.masking.Masker.hash_value`).

    ``nested`` maps the prefix of a field kept in a nested object of a record to that
    object's key (and in a Parquet part under its prefixed name); the passthrough fields by
    default, a feedback item's ``fields`` for the feedback log. Such a field is masked by
    the rule of its bare name, as the writers do.

    >>> s = Subject({"email": "ann@example.com"}, Masker({"email": "hash"}, hash_key="k"))
    >>> s.record({"features": {"email": s.candidates["email"][-1]}}), s.record({"features": {}})
    (True, False)
    >>> s = Subject({"field.band": "b7"}, nested={"field.": "fields"})
    >>> s.record({"fields": {"band": "b7"}}), s.record({"fields": {"band": "b8"}})
    (True, False)
    """

    def __init__(
        self,
        where: Mapping[str, str],
        masker: Masker | None = None,
        *,
        nested: Mapping[str, str] = _PASSTHROUGH,
    ) -> None:
        if not where:
            raise ValidationError("name the subject with at least one --where FIELD=VALUE")
        self.fields = sorted(where)
        self.candidates: dict[str, list[str]] = {}
        self._nested = dict(nested)
        for name, text in where.items():
            rule = self._nesting(name)[1] or name
            action = masker.rules.get(rule) if masker is not None else None
            if action in ("mask", "drop"):
                raise ValidationError(
                    f"field {name!r} is captured with the {action!r} action: its values are "
                    "not in the log, so no record can be found by it; name the subject by "
                    "another field (a hashed one, or request_id)",
                    detail={"field": name},
                )
            values: list[Any] = [text]
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(text)
                if not isinstance(parsed, dict | list) and parsed != text:
                    values.append(parsed)
            texts = {_text(v) for v in values}
            if action == "hash" and masker is not None:
                texts |= {masker.hash_value(v) for v in values}
            self.candidates[name] = sorted(texts)

    def __repr__(self) -> str:
        return f"Subject(fields={self.fields!r})"  # never the values

    def _nesting(self, name: str) -> tuple[str | None, str | None]:
        """The record key of the nested object holding the field ``name`` and its bare
        name there (``None, None`` for a field not nested)."""
        for prefix, key in self._nested.items():
            if name.startswith(prefix):
                return key, name[len(prefix) :]
        return None, None

    def record(self, record: Mapping[str, Any]) -> bool:
        """Whether one record (as a segment holds it) is the subject's."""
        features = record.get("features") or {}
        raw = record.get("raw_body")
        for name, texts in self.candidates.items():
            key, bare = self._nesting(name)
            if name in _TOP_LEVEL:
                value = record.get(name)
            elif key is not None:
                nested = record.get(key)
                value = nested.get(bare) if isinstance(nested, Mapping) else None
            else:
                value = features.get(name)
            if value is not None and _text(value) in texts:
                continue
            if isinstance(raw, str) and any(json.dumps(t) in raw for t in texts):
                continue
            return False
        return True

    def table(self, table: pa.Table) -> pa.Array | pa.ChunkedArray:
        """Which rows of a partition are the subject's."""
        raw = table.column("raw_body") if "raw_body" in table.column_names else None
        hit: Any = None
        for name, texts in self.candidates.items():
            own = name in _TOP_LEVEL or self._nesting(name)[0] is not None
            column = name if own else FEATURE_PREFIX + name
            one: Any = pa.array([False] * table.num_rows)
            if column in table.column_names:
                try:
                    as_text = pc.cast(table.column(column), pa.string())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    as_text = pa.array([_text(v) for v in table.column(column).to_pylist()])
                one = pc.fill_null(pc.is_in(as_text, value_set=pa.array(texts)), False)
            if raw is not None:
                for t in texts:
                    found = pc.match_substring(raw, json.dumps(t))
                    one = pc.or_(one, pc.fill_null(found, False))
            hit = one if hit is None else pc.and_(hit, one)
        return hit


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value, default=str).decode()


def pairs_match(pairs: set[tuple[str, int]]) -> tuple[RecordMatch, TableMatch]:
    """Predicates matching the rows ``(request_id, row)`` (feedback of erased predictions)."""

    def record(r: Mapping[str, Any]) -> bool:
        return (r.get("request_id"), r.get("row") or 0) in pairs

    def table(t: pa.Table) -> pa.Array:
        ids = t.column("request_id").to_pylist()
        rows = t.column("row").to_pylist() if "row" in t.column_names else [0] * len(ids)
        return pa.array([(i, r or 0) in pairs for i, r in zip(ids, rows, strict=True)])

    return record, table


@contextlib.contextmanager
def compaction_lock(directory: Path, *, timeout: float = 120.0) -> Iterator[None]:
    """Hold the capture directory's compaction lock (waiting at most ``timeout`` s)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceUnavailableError(
                        f"a compaction of {directory} held its lock for {timeout:.0f} s; try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def request_rotation(directory: Path) -> list[Path]:
    """Ask every writer of ``directory`` to close its live segments; returns the live
    segments there now (to wait for)."""
    directory.mkdir(parents=True, exist_ok=True)
    live = sorted(directory.glob(f"*{LIVE_SUFFIX}"))
    request = directory / ROTATE_REQUEST
    request.touch()
    now = time.time_ns()
    os.utime(request, ns=(now, now))  # a new time even within the file system's tick
    return live


def wait_for_rotation(live: list[Path], timeout: float) -> list[Path]:
    """Wait at most ``timeout`` s for the ``live`` segments to close; returns those that
    did not (their writers are busy, or have no compactor: capture without a store)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in live if p.exists()]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


# -- recovery of an interrupted run -------------------------------------------------------


def _latest(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for entry in sorted(entries, key=lambda e: str(e.get("at"))):
        for gone in entry.get("removed", []):
            out[gone] = None
        for added in entry.get("added", []):
            out[added["key"]] = added
    return out


def _lines(data: bytes) -> list[dict[str, Any]]:
    entries = []
    for raw in data.splitlines():
        with contextlib.suppress(ValueError):
            entries.append(json.loads(raw))
    return entries


def _same(data: bytes, entry: dict[str, Any] | None) -> bool:
    return bool(
        entry is not None
        and entry["size"] == len(data)
        and entry["sha256"] == hashlib.sha256(data).hexdigest()
    )


def recover(directory: Path, prefix: str, store: ArtifactStore | None, root: str) -> int:
    """Finish or undo the rewrites an interrupted erasure left; returns how many."""
    done = 0
    pending = sorted(directory.glob(f".{prefix}-*{CLOSED_SUFFIX}{PENDING}"))
    if pending:
        manifest = segment_manifest(directory, prefix)
        recorded = _latest(_lines(manifest.read_bytes()) if manifest.exists() else [])
        for tmp in pending:
            target = directory / tmp.name[1 : -len(PENDING)]
            if _same(tmp.read_bytes(), recorded.get(target.name)) and target.exists():
                os.replace(tmp, target)
            else:
                tmp.unlink(missing_ok=True)
            done += 1
    if store is None:
        return done
    for key in store_keys(store, root):
        name = posixpath.basename(key)
        if not (name.startswith(".") and name.endswith(PENDING)):
            continue
        part = posixpath.join(posixpath.dirname(key), name[1 : -len(PENDING)])
        group = chain_group(part[len(root) + 1 :])
        entries: list[dict[str, Any]] = []
        for chain in store_keys(store, f"{root}/{CHAIN_DIR}/{group}"):
            entries += _lines(store.read_bytes(chain))
        data = store.read_bytes(key)
        if _same(data, _latest(entries).get(part)) and store.exists(part):
            store.write_bytes(part, data)
        store.fs.rm(store.resolve_key(key))
        done += 1
    return done


# -- erasure ------------------------------------------------------------------------------


def erase_log(
    directory: Path,
    prefix: str,
    store: ArtifactStore | None,
    root: str,
    *,
    record: RecordMatch,
    table: TableMatch,
    dry_run: bool = False,
    seen: Callable[[Mapping[str, Any]], None] | None = None,
) -> LogErasure:
    """Remove the matching records from the closed segments ``<prefix>-*`` of
    ``directory`` and from the Parquet parts under ``root`` in ``store`` (the caller holds
    :func:`compaction_lock`). ``dry_run`` only counts (and hands each matching segment
    record to ``seen``)."""
    out = LogErasure()
    codec = store_codec(store)
    if not dry_run:
        recover(directory, prefix, store, root)
    if directory.is_dir():
        log = SegmentLog(directory, prefix=prefix, codec=codec)
        for path in log.closed_segments():
            _erase_segment(path, prefix, record, out, dry_run, seen, codec)
        for live in log.live_segments():
            with contextlib.suppress(FileNotFoundError):
                records, _torn = read_segment(live, codec)
                hits = [r for r in records if isinstance(r, Mapping) and record(r)]
                out.live += len(hits)
                for r in hits:
                    if seen is not None:
                        seen(r)
    if store is not None:
        for key in store_keys(store, root):
            name = posixpath.basename(key)
            if key.startswith(f"{root}/{CHAIN_DIR}/") or name.startswith("."):
                continue
            if name.endswith(".parquet"):
                _erase_part(store, root, key, table, out, dry_run, seen)
        for key in store_keys(store, f"{QUARANTINE_ROOT}/{root}"):
            _erase_quarantined(store, key, record, out, dry_run, seen)
    return out


def _erase_quarantined(
    store: ArtifactStore,
    key: str,
    record: RecordMatch,
    out: LogErasure,
    dry_run: bool,
    seen: Callable[[Mapping[str, Any]], None] | None,
) -> None:
    """Quarantined records (JSON lines ``{"record", "error"}``: not chained, read by people
    only) that match, removed with a plain atomic rewrite."""
    keep: list[bytes] = []
    hits: list[Mapping[str, Any]] = []
    for line in read_log_bytes(store, key).splitlines():
        try:
            held = json.loads(line).get("record")
        except (ValueError, AttributeError):
            keep.append(line)
            continue
        if isinstance(held, Mapping) and record(held):
            hits.append(held)
        else:
            keep.append(line)
    if not hits:
        return
    out.records += len(hits)
    out.files.append(key)
    if dry_run:
        for r in hits:
            if seen is not None:
                seen(r)
        return
    if keep:
        store.write_bytes(key, stored_bytes(store, key, b"\n".join(keep) + b"\n"))
    else:
        store.fs.rm(store.resolve_key(key))


def _erase_segment(
    path: Path,
    prefix: str,
    record: RecordMatch,
    out: LogErasure,
    dry_run: bool,
    seen: Callable[[Mapping[str, Any]], None] | None,
    codec: LogCodec | None = None,
) -> None:
    try:
        records, _torn = read_segment(path, codec)
    except FileNotFoundError:
        return
    keep = [r for r in records if not (isinstance(r, Mapping) and record(r))]
    gone = len(records) - len(keep)
    if not gone:
        return
    out.records += gone
    out.files.append(path.name)
    if dry_run:
        for r in records:
            if isinstance(r, Mapping) and record(r) and seen is not None:
                seen(r)
        return
    directory = path.parent
    if not keep:
        record_segment(directory, prefix, "erased", removed=[path.name])
        path.unlink(missing_ok=True)
        return
    data = b"".join(encode_frame(r) for r in keep)
    if codec is not None:
        data = codec.frames(data, segment=segment_id(path))
    tmp = directory / f".{path.name}{PENDING}"
    _write_synced(tmp, data)
    entry = segment_entry(path.name, len(data), hashlib.sha256(data).hexdigest())
    record_segment(directory, prefix, "erased", added=[entry])
    os.replace(tmp, path)


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _erase_part(
    store: ArtifactStore,
    root: str,
    key: str,
    match: TableMatch,
    out: LogErasure,
    dry_run: bool,
    seen: Callable[[Mapping[str, Any]], None] | None,
) -> None:
    import pyarrow.parquet as pq  # Parquet: only where a partition is read or written

    table = pq.read_table(io.BytesIO(read_log_bytes(store, key)))
    hit = match(table)
    gone = int(pc.sum(pc.cast(hit, pa.int64())).as_py() or 0)
    if not gone:
        return
    out.records += gone
    out.files.append(key)
    if dry_run:
        if seen is not None:
            for r in table.filter(hit).to_pylist():
                seen(r)
        return
    group = chain_group(key[len(root) + 1 :])
    kept = table.filter(pc.invert(hit))
    if kept.num_rows == 0:
        append_entry(store, root, group, "erased", removed=[key])
        store.fs.rm(store.resolve_key(key))
        return
    data = stored_bytes(store, key, _parquet_bytes(kept))
    tmp = posixpath.join(posixpath.dirname(key), f".{posixpath.basename(key)}{PENDING}")
    store.write_bytes(tmp, data)
    append_entry(store, root, group, "erased", added=[file_entry(key, data)])
    store.write_bytes(key, data)
    store.fs.rm(store.resolve_key(tmp))
