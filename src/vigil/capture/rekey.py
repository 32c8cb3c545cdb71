"""Key rotation of the encrypted inference log: every file rewritten under the first key.

:func:`rekey_log` rewrites each closed segment and each compacted part or quarantine file
of one log that is not already under the codec's first key (plain files written before
encryption was turned on included), the same crash-safe way erasure rewrites them
(:mod:`vigil.capture.erase`: a hidden copy, chained as a ``rekeyed`` entry, then moved over
the file, so ``vigil capture verify`` stays green and an interrupted run is finished or
undone by the next). With encryption turned off (``VIGIL_CAPTURE_ENCRYPT=false``) it
decrypts instead.

Rotation, then: put the new key first in the key file, restart the servers (they encrypt
under the first key they read), run ``vigil capture rekey``, and drop the old key once it
reports nothing left under it.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.capture.chain import (
    CHAIN_DIR,
    append_entry,
    chain_group,
    file_entry,
    record_segment,
    segment_entry,
    store_keys,
)
from vigil.capture.compact import QUARANTINE_ROOT
from vigil.capture.crypt import (
    LogCodec,
    is_encrypted_part,
    is_encrypted_segment,
    open_segment,
    part_plain,
)
from vigil.capture.erase import PENDING, _write_synced, recover
from vigil.capture.log import SegmentLog, segment_id

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore


@dataclass
class Rekeyed:
    """What :func:`rekey_log` did."""

    rewritten: list[str] = field(default_factory=list)
    """Segments (names) and store keys rewritten under the first key."""
    current: int = 0
    """Files already under the first key, left as they are."""
    live: list[str] = field(default_factory=list)
    """Live segments of running writers, not rewritten (a later run does them)."""


def _segment_current(data: bytes, codec: LogCodec) -> bool:
    if not codec.encrypt:
        return not is_encrypted_segment(data)
    head = b"E1 %b " % codec.keys.primary.encode()
    return all(line.startswith(head) for line in data.split(b"\n")[:-1])


def _part_current(data: bytes, codec: LogCodec) -> bool:
    if not codec.encrypt:
        return not is_encrypted_part(data)
    kid = data[6 : 6 + data[5]] if is_encrypted_part(data) and len(data) > 5 else None
    return kid == codec.keys.primary.encode()


def rekey_log(
    directory: Path, prefix: str, store: ArtifactStore | None, root: str, codec: LogCodec
) -> Rekeyed:
    """Rewrite the files of one log (segments ``<prefix>-*`` of ``directory``, parts under
    ``root`` and its quarantine in ``store``) under ``codec``'s first key. The caller holds
    :func:`~vigil.capture.erase.compaction_lock`."""
    out = Rekeyed()
    recover(directory, prefix, store, root)
    if directory.is_dir():
        log = SegmentLog(directory, prefix=prefix, codec=codec)
        for path in log.closed_segments():
            _rekey_segment(path, prefix, codec, out)
        out.live = [p.name for p in log.live_segments()]
    if store is None:
        return out
    for key in store_keys(store, root):
        name = posixpath.basename(key)
        if key.startswith(f"{root}/{CHAIN_DIR}/") or name.startswith("."):
            continue
        data = store.read_bytes(key)
        if _part_current(data, codec):
            out.current += 1
            continue
        new = codec.part_bytes(part_plain(data, key=key, codec=codec), key=key)
        tmp = posixpath.join(posixpath.dirname(key), f".{name}{PENDING}")
        store.write_bytes(tmp, new)
        group = chain_group(key[len(root) + 1 :])
        append_entry(store, root, group, "rekeyed", added=[file_entry(key, new)])
        store.write_bytes(key, new)
        store.fs.rm(store.resolve_key(tmp))
        out.rewritten.append(key)
    rekey_files(store, f"{QUARANTINE_ROOT}/{root}", codec, out=out)
    return out


def rekey_files(
    store: ArtifactStore,
    root: str,
    codec: LogCodec,
    *,
    suffix: str = "",
    out: Rekeyed | None = None,
) -> Rekeyed:
    """Rewrite the files under ``root`` whose names end with ``suffix`` (quarantined
    records, the monitor's window summaries: not chained) with plain atomic rewrites."""
    out = out if out is not None else Rekeyed()
    for key in store_keys(store, root):
        if not key.endswith(suffix):
            continue
        data = store.read_bytes(key)
        if _part_current(data, codec):
            out.current += 1
            continue
        store.write_bytes(key, codec.part_bytes(part_plain(data, key=key, codec=codec), key=key))
        out.rewritten.append(key)
    return out


def _rekey_segment(path: Path, prefix: str, codec: LogCodec, out: Rekeyed) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return  # compacted meanwhile
    if _segment_current(data, codec):
        out.current += 1
        return
    sid = segment_id(path)
    plain, _torn = open_segment(data, segment=sid, codec=codec)
    plain = plain[: plain.rfind(b"\n") + 1]  # a torn last frame is dropped, as readers do
    new = codec.frames(plain, segment=sid)
    tmp = path.parent / f".{path.name}{PENDING}"
    _write_synced(tmp, new)
    entry = segment_entry(path.name, len(new), hashlib.sha256(new).hexdigest())
    record_segment(path.parent, prefix, "rekeyed", added=[entry])
    os.replace(tmp, path)
    out.rewritten.append(path.name)
