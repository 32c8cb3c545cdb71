"""Chain manifests: the compacted log's files, each with its size and SHA-256, hash-chained.

Beside the partitions of each model, in ``<root>/_chain/<model dir>/<writer>.jsonl`` of
the artifact store (local or S3), every compactor appends one JSON line per change it
makes, chained the way the audit log is (:mod:`vigil.hashchain`):

* ``compacted``: the parts it wrote (key, size, SHA-256) and the segment they replace;
* ``retention``: the files a retention pass deleted, recorded before it deletes them.

The live segments have a chain of their own, ``_chain-<prefix>.jsonl`` in the log's
directory (:func:`record_segment`, under an ``flock``: every process of the host appends to
it): ``closed`` when a segment is closed (its name, size and SHA-256, taken as it was
written), ``compacted`` when compaction has replaced it by parts and deletes it.
:func:`verify_segments` checks the closed segments against it.

Each writer (a host's compactor, which holds that host's compaction lock) has its own
chain, so replicas sharing one bucket never write the same manifest. A part written again
for the same segment (a compaction that was interrupted and run again) replaces the one
recorded before.

:func:`verify_capture` checks each chain (an edited, inserted or deleted line breaks it)
and then the files against what the chains say should be there: a file that changed
(``edited``), that went without a retention entry (``deleted``), or that no chain wrote
(``inserted``). Deletions by compaction and retention are recorded, hence legitimate.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vigil.hashchain import GENESIS, canonical_time, chain_digest

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore

CHAIN_DIR = "_chain"
ALL = "_all"
"""The chain of a root whose partitions are not per model (feedback's ``date=...``)."""

Problem = Literal["edited", "deleted", "inserted", "chain_edited", "chain_broken"]


def writer_id() -> str:
    """This host's name, as a safe file name: the compactor's chain."""
    return socket.gethostname().replace("-", "_").replace(".", "_")[:60] or "host"


def chain_group(where: str) -> str:
    """The chain a partition path belongs to: its ``model=...`` directory, or :data:`ALL`.

    >>> chain_group("model=churn/date=2026-01-01"), chain_group("date=2026-01-01")
    ('model=churn', '_all')
    """
    first = where.split("/", 1)[0]
    return first if first.startswith("model=") else ALL


def file_entry(key: str, data: bytes) -> dict[str, Any]:
    """What the chain records of one file."""
    return {"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _chain_key(root: str, group: str, writer: str) -> str:
    return f"{root}/{CHAIN_DIR}/{group}/{writer}.jsonl"


def append_entry(
    store: ArtifactStore,
    root: str,
    group: str,
    event: str,
    *,
    added: list[dict[str, Any]] | None = None,
    removed: list[str] | None = None,
    replaces: list[str] | None = None,
    writer: str | None = None,
) -> dict[str, Any]:
    """Chain one entry onto ``group``'s manifest of this writer (rewritten whole: S3 has no
    append; one writer per manifest, so nothing races)."""
    key = _chain_key(root, group, writer or writer_id())
    old = store.read_bytes(key) if store.exists(key) else b""
    entry, line = _next_entry(old, event, added, removed, replaces)
    store.write_bytes(key, old + line)
    return entry


def _next_entry(
    manifest: bytes,
    event: str,
    added: list[dict[str, Any]] | None,
    removed: list[str] | None,
    replaces: list[str] | None,
) -> tuple[dict[str, Any], bytes]:
    """The entry chained onto the last line of ``manifest``, and its line."""
    lines = manifest.splitlines()
    prev = json.loads(lines[-1])["digest"] if lines else GENESIS
    content = {
        "at": canonical_time(datetime.now(UTC)),
        "event": event,
        "added": added or [],
        "removed": removed or [],
        "replaces": replaces or [],
    }
    entry = {**content, "prev": prev, "digest": chain_digest(prev, content)}
    return entry, json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def segment_manifest(directory: Path, prefix: str) -> Path:
    """The chain manifest of the segments named ``<prefix>-*`` in ``directory``."""
    return directory / f"_chain-{prefix}.jsonl"


_TAIL_BYTES = 65536  # far more than one entry: the last line is always whole in it


def record_segment(
    directory: Path,
    prefix: str,
    event: str,
    *,
    added: list[dict[str, Any]] | None = None,
    removed: list[str] | None = None,
) -> None:
    """Chain one entry onto the segments' manifest, under its ``flock`` (several processes
    of one host share the directory)."""
    path = segment_manifest(directory, prefix)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        tail = os.pread(fd, min(size, _TAIL_BYTES), max(0, size - _TAIL_BYTES))
        _entry, line = _next_entry(
            tail.rsplit(b"\n", 2)[-2] if b"\n" in tail else b"", event, added, removed, None
        )
        os.write(fd, line)
    finally:
        os.close(fd)  # releases the lock


def segment_entry(name: str, size: int, sha256: str) -> dict[str, Any]:
    """What the chain records of one closed segment."""
    return {"key": name, "size": size, "sha256": sha256}


def verify_segments(directory: Path, prefix: str) -> CaptureVerification:
    """Check the closed segments ``<prefix>-*.seg`` of ``directory`` against their chain."""
    out = CaptureVerification(root=f"{directory}/{prefix}-*")
    group = prefix
    out.groups.append(group)
    manifest = segment_manifest(directory, prefix)
    data = manifest.read_bytes() if manifest.exists() else b""
    entries = _chain_entries(data, manifest.name, group, out)
    if entries is None:
        return out
    expected: dict[str, dict[str, Any]] = {}
    for entry in entries:
        out.entries += 1
        for gone in entry["removed"]:
            expected.pop(gone, None)
        for added in entry["added"]:
            expected[added["key"]] = added
    for path in sorted(directory.glob(f"{prefix}-*.seg")):
        out.files += 1
        recorded = expected.pop(path.name, None)
        if recorded is None:
            out.problems.append(
                CaptureProblem(group, "inserted", path.name, f"{path.name} is in no chain entry")
            )
        elif not _same(path.read_bytes(), recorded):
            out.problems.append(
                CaptureProblem(group, "edited", path.name, f"{path.name} changed since it closed")
            )
    for name in sorted(expected):
        if (directory / name).with_suffix(".open").exists():
            continue  # recorded, not yet renamed: its writer is closing it right now
        out.problems.append(
            CaptureProblem(
                group,
                "deleted",
                name,
                f"{name} is missing, and compaction did not record replacing it",
            )
        )
    return out


def _same(data: bytes, recorded: dict[str, Any]) -> bool:
    return bool(
        len(data) == recorded["size"] and hashlib.sha256(data).hexdigest() == recorded["sha256"]
    )


def store_keys(store: ArtifactStore, prefix: str) -> list[str]:
    """Every file under ``prefix`` in the store, as store keys."""
    base = store.resolve_key(prefix)
    if not store.fs.exists(base):
        return []
    root = store.root.rstrip("/") + "/"
    return sorted(str(p)[len(root) :] for p in store.fs.find(base))


@dataclass(frozen=True)
class CaptureProblem:
    """One thing :func:`verify_capture` found wrong, and where."""

    group: str
    problem: Problem
    where: str
    """The file key, or ``<manifest key>:<line>`` for a broken chain."""
    reason: str


@dataclass
class CaptureVerification:
    """What :func:`verify_capture` checked and found."""

    root: str
    groups: list[str] = field(default_factory=list)
    files: int = 0
    entries: int = 0
    problems: list[CaptureProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_chain(
    store: ArtifactStore, key: str, group: str, out: CaptureVerification
) -> list[dict[str, Any]] | None:
    """The entries of one manifest, or ``None`` (and a problem) when its chain is broken."""
    return _chain_entries(store.read_bytes(key), key, group, out)


def _chain_entries(
    data: bytes, key: str, group: str, out: CaptureVerification
) -> list[dict[str, Any]] | None:
    prev = GENESIS
    entries = []
    for n, raw in enumerate(data.splitlines(), start=1):
        where = f"{key}:{n}"
        try:
            entry = json.loads(raw)
            content = {k: entry[k] for k in ("at", "event", "added", "removed", "replaces")}
            stored_prev, digest = entry["prev"], entry["digest"]
        except (ValueError, KeyError, TypeError):
            out.problems.append(
                CaptureProblem(group, "chain_edited", where, f"line {n} is not a chain entry")
            )
            return None
        if stored_prev != prev:
            out.problems.append(
                CaptureProblem(
                    group,
                    "chain_broken",
                    where,
                    f"line {n} does not chain onto line {n - 1}: a line was deleted or "
                    "inserted before it",
                )
            )
            return None
        if chain_digest(prev, content) != digest:
            out.problems.append(
                CaptureProblem(
                    group,
                    "chain_edited",
                    where,
                    f"line {n} was edited: its content does not match its digest",
                )
            )
            return None
        entries.append(entry)
        prev = digest
    return entries


def verify_capture(
    store: ArtifactStore, root: str = "capture", *, model_dir: str | None = None
) -> CaptureVerification:
    """Check the chains of ``root`` (one model's when ``model_dir`` is given: see
    :func:`vigil.capture.compact.model_dir`) and the files against them."""
    out = CaptureVerification(root=root)
    chain_root = f"{root}/{CHAIN_DIR}"
    manifests: dict[str, list[str]] = {}
    for key in store_keys(store, chain_root):
        group = key[len(chain_root) + 1 :].split("/", 1)[0]
        manifests.setdefault(group, []).append(key)
    groups = set(manifests)
    for key in store_keys(store, root):
        if not key.startswith(chain_root + "/"):
            groups.add(chain_group(key[len(root) + 1 :]))
    if model_dir is not None:
        groups &= {model_dir}
    for group in sorted(groups):
        out.groups.append(group)
        expected: dict[str, dict[str, Any]] = {}
        timeline: list[dict[str, Any]] = []
        for key in manifests.get(group, []):
            entries = _read_chain(store, key, group, out)
            if entries is None:
                break
            timeline.extend(entries)
        else:
            for entry in sorted(timeline, key=lambda e: str(e["at"])):
                out.entries += 1
                for gone in entry["removed"]:
                    expected.pop(gone, None)
                for added in entry["added"]:
                    expected[added["key"]] = added
            prefix = root if group == ALL else f"{root}/{group}"
            _check_files(store, root, group, prefix, expected, out)
    return out


def _check_files(
    store: ArtifactStore,
    root: str,
    group: str,
    prefix: str,
    expected: dict[str, dict[str, Any]],
    out: CaptureVerification,
) -> None:
    chain_root = f"{root}/{CHAIN_DIR}/"
    found = [
        k
        for k in store_keys(store, prefix)
        if not k.startswith(chain_root)
        and not posixpath.basename(k).startswith(".")
        and (group != ALL or chain_group(k[len(root) + 1 :]) == ALL)
    ]
    for key in found:
        out.files += 1
        recorded = expected.pop(key, None)
        if recorded is None:
            out.problems.append(
                CaptureProblem(group, "inserted", key, f"{key} is in no chain entry")
            )
            continue
        data = store.read_bytes(key)
        if not _same(data, recorded):
            out.problems.append(
                CaptureProblem(
                    group,
                    "edited",
                    key,
                    f"{key} changed: {len(data)} bytes now, {recorded['size']} recorded, "
                    "and its SHA-256 differs",
                )
            )
    for key in sorted(expected):
        out.problems.append(
            CaptureProblem(
                group,
                "deleted",
                key,
                f"{key} is missing, and neither compaction nor retention recorded its deletion",
            )
        )
