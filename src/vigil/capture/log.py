"""The durable append-only log: per-process segment files of CRC-guarded JSON lines.

Why this survives ``kill -9``: every append is one ``os.write`` of a pre-encoded buffer
to a file opened with ``O_APPEND``, made before the caller acknowledges anything. Once
``write()`` returns, the bytes are in the kernel's page cache and outlive the process;
only a machine crash can lose them, which is what the ``fsync`` policy is for:

* ``none`` (default): no ``fsync``; survives process death, not power loss;
* ``interval``: also ``fsync`` when ``fsync_interval_s`` has passed since the last one;
* ``always``: ``fsync`` after every append (expect a large throughput cost).

There is no background thread: a record handed to another thread could be lost after the
reply went out. Each process writes its own *live* segment ``<name>.open`` and holds an
exclusive ``flock`` on it; past ``segment_bytes`` or ``segment_seconds`` the segment is
renamed ``<name>.seg`` (closed) and a new one starts. A live segment whose lock can be
taken belongs to a dead process: :meth:`SegmentLog.closed_segments` closes it then, so
compaction picks up what a killed worker left behind.

>>> import tempfile
>>> log = SegmentLog(tempfile.mkdtemp(), prefix="demo")
>>> log.append([{"request_id": "a"}, {"request_id": "b"}])
>>> _ = log.rotate()
>>> [read_segment(p) for p in log.closed_segments()]
[([{'request_id': 'a'}, {'request_id': 'b'}], 0)]
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vigil.capture.chain import record_segment, segment_entry
from vigil.capture.crypt import LogCodec, open_segment
from vigil.capture.framing import decode_frames, encode_frame
from vigil.errors import ConfigurationError, ServiceUnavailableError

LIVE_SUFFIX = ".open"
CLOSED_SUFFIX = ".seg"
_FSYNC_POLICIES = ("none", "interval", "always")


def segment_id(path: Path) -> str:
    """The stable id of a segment (its file name without suffix), live or closed."""
    return path.name.rsplit(".", 1)[0]


def read_segment(path: Path, codec: LogCodec | None = None) -> tuple[list[Any], int]:
    """The intact records of one segment file and how many torn frames were skipped
    (``codec``: to read an encrypted segment)."""
    return decode_segment(path.read_bytes(), segment_id(path), codec)


def decode_segment(
    data: bytes, segment: str, codec: LogCodec | None, *, start: int = 0, **options: Any
) -> tuple[list[Any], int]:
    """:func:`~vigil.capture.framing.decode_frames` of segment bytes read from byte
    ``start`` of segment ``segment``, decrypted first when encrypted."""
    plain, torn = open_segment(data, segment=segment, start=start, codec=codec)
    records, more = decode_frames(plain, **options)
    return records, torn + more


class SegmentLog:
    """An append-only log in ``directory``, written by this process through one segment.

    Parameters
    ----------
    directory:
        Local directory of the segments (created if missing); several processes may share it.
    prefix:
        First part of every segment name (``capture``, ``feedback``...).
    fsync, fsync_interval_s:
        Durability policy against machine crashes (see the module docstring).
    segment_bytes, segment_seconds:
        When the live segment is closed and a new one begun.
    codec:
        Encrypts every appended buffer (:mod:`vigil.capture.crypt`); ``None``: plain.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        prefix: str = "capture",
        fsync: str = "none",
        fsync_interval_s: float = 1.0,
        segment_bytes: int = 64 * 1024 * 1024,
        segment_seconds: float = 3600.0,
        codec: LogCodec | None = None,
    ) -> None:
        if fsync not in _FSYNC_POLICIES:
            raise ConfigurationError(
                f"VIGIL_CAPTURE_FSYNC is {fsync!r}; use one of {', '.join(_FSYNC_POLICIES)}"
            )
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.codec = codec
        self._sealing = codec is not None and codec.encrypt
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._segment = ""  # the live segment's id (what its encrypted lines are bound to)
        self._pid = 0
        self._size = 0
        self._opened_at = 0.0
        self._synced_at = 0.0
        self._seq = 0
        self._hasher = hashlib.sha256()  # of what the live segment holds, for its chain

    def __repr__(self) -> str:
        return f"SegmentLog({str(self.directory)!r}, prefix={self.prefix!r}, fsync={self.fsync!r})"

    # -- writing ---------------------------------------------------------------------------

    def append(self, records: Iterable[Any]) -> None:
        """Frame ``records`` and write them in one ``os.write``; returns once the OS has them."""
        self.append_encoded(b"".join(encode_frame(r) for r in records))

    def append_encoded(self, data: bytes) -> None:
        """Write already framed bytes (see :func:`~vigil.capture.framing.encode_frame`)."""
        if not data:
            return
        with self._lock:
            now = time.monotonic()
            try:
                if self._fd is None or self._pid != os.getpid():
                    self._open(now)
                elif (
                    self._size >= self.segment_bytes
                    or now - self._opened_at >= self.segment_seconds
                ):
                    self._close_current()
                    self._open(now)
            except OSError as exc:
                raise self._unavailable(exc) from exc
            assert self._fd is not None and self._path is not None
            if self._sealing:
                assert self.codec is not None
                # Bound to this segment and offset: a record moved elsewhere fails to open.
                data = self.codec.seal_frames(data, segment=self._segment, offset=self._size)
            view = memoryview(data)
            try:
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                self._hasher.update(data)
                if self.fsync == "always" or (
                    self.fsync == "interval" and now - self._synced_at >= self.fsync_interval_s
                ):
                    os.fsync(self._fd)
                    self._synced_at = now
            except OSError as exc:
                error = self._unavailable(exc)
                self._abandon_current()
                raise error from exc
            self._size += len(data)

    def _abandon_current(self) -> None:
        # Part of a failed buffer may be in the file: end the segment there, so that torn
        # tail is the last thing in it and the next append starts a clean segment (appended
        # after it, a good frame would share its line and be lost with it). Best effort: if
        # even the rename fails, closing releases the lock and compaction recovers the file.
        fd, path = self._fd, self._path
        self._fd, self._path = None, None
        if path is not None:
            with contextlib.suppress(OSError):
                _record_closed(path, self.prefix)
            with contextlib.suppress(OSError):
                os.rename(path, path.with_suffix(CLOSED_SUFFIX))
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _unavailable(self, exc: OSError) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"cannot append to the log segment {self._path or self.directory}: {exc.strerror}; "
            f"free disk space or fix the permissions of {self.directory}",
            detail={"path": str(self._path or self.directory)},
        )

    def rotate(self) -> Path | None:
        """Close the live segment now (it becomes compactable); returns its closed path."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return None
            return self._close_current()

    def rotate_if_due(self) -> Path | None:
        """Close the live segment if it is past its size or age (even with no append since),
        so an idle writer's records still become compactable."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return None
            if (
                self._size < self.segment_bytes
                and time.monotonic() - self._opened_at < self.segment_seconds
            ):
                return None
            return self._close_current()

    def close(self) -> None:
        """Close the live segment (call at shutdown)."""
        self.rotate()

    def _open(self, now: float) -> None:
        # A forked child must not write through its parent's descriptor or lock.
        self._fd = None
        self._pid = os.getpid()
        self._seq += 1
        host = socket.gethostname().replace("-", "_").replace(".", "_")[:40]
        name = f"{self.prefix}-{host}-{self._pid}-{time.time_ns()}-{self._seq}"
        path = self.directory / f"{name}{LIVE_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd, self._path, self._segment = fd, path, name
        self._size, self._opened_at, self._synced_at = 0, now, now
        self._hasher = hashlib.sha256()

    def _close_current(self) -> Path:
        assert self._fd is not None and self._path is not None
        closed = self._path.with_suffix(CLOSED_SUFFIX)
        if self.fsync != "none":
            os.fsync(self._fd)
        # Chained first (from the running digest: no re-read on the request path), so that
        # a closed segment is never unrecorded; verify allows for the rename still to come.
        record_segment(
            self.directory,
            self.prefix,
            "closed",
            added=[segment_entry(closed.name, self._size, self._hasher.hexdigest())],
        )
        # Rename while still holding the lock, so no reader takes it for a dead writer's.
        os.rename(self._path, closed)
        os.close(self._fd)
        self._fd, self._path = None, None
        return closed

    # -- reading ---------------------------------------------------------------------------

    def _segments(self, suffix: str) -> list[Path]:
        return sorted(self.directory.glob(f"{self.prefix}-*{suffix}"))

    def closed_segments(self) -> list[Path]:
        """Closed segments, after closing the live segments of dead processes."""
        for live in self._segments(LIVE_SUFFIX):
            if live != self._path:
                recover_if_dead(live, self.prefix)
        return self._segments(CLOSED_SUFFIX)

    def compactable(self) -> bool:
        r"""Whether a compaction pass would find a segment here: a closed one, or the live
        one of a dead writer (its ``flock`` free: probed, not closed here). A few
        ``stat``\ s and a lock probe per live segment, for a caller deciding whether to
        start a pass at all."""
        if self._segments(CLOSED_SUFFIX):
            return True
        return any(
            live != self._path and _writer_gone(live) for live in self._segments(LIVE_SUFFIX)
        )

    def live_segments(self) -> list[Path]:
        """Segments still being written (by this or another live process)."""
        return self._segments(LIVE_SUFFIX)

    def all_segments(self) -> list[Path]:
        """Every segment not yet compacted, closed or live."""
        return sorted(self.closed_segments() + self.live_segments())


@contextlib.contextmanager
def _dead_writers(live: Path) -> Iterator[bool]:
    """Whether ``live``'s writer is gone (nobody holds its ``flock``, and the file is still
    there): while the block runs, the caller holds that lock."""
    try:
        fd = os.open(live, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False  # closed or compacted meanwhile
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False  # its writer is alive
            return
        yield True
    finally:
        os.close(fd)


def _writer_gone(live: Path) -> bool:
    """Whether ``live``'s writer died (the lock is let go at once)."""
    with _dead_writers(live) as gone:
        return gone


def recover_if_dead(live: Path, prefix: str) -> Path | None:
    """Close ``live`` when its writer is gone (its ``flock`` is free), recording it in the
    chain of the segments named ``<prefix>-*``; return the new path."""
    with _dead_writers(live) as gone:
        if not gone:
            return None
        closed = live.with_suffix(CLOSED_SUFFIX)
        with contextlib.suppress(FileNotFoundError):
            _record_closed(live, prefix)
            os.rename(live, closed)
            return closed
        return None


def _record_closed(live: Path, prefix: str) -> None:
    """Chain a segment closed by someone other than its writer, hashing what it holds."""
    data = live.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    name = live.with_suffix(CLOSED_SUFFIX).name
    record_segment(live.parent, prefix, "closed", added=[segment_entry(name, len(data), digest)])


def record_compacted(segment: Path, prefix: str) -> None:
    """Chain the deletion of a closed segment that compaction replaced by parts."""
    record_segment(segment.parent, prefix, "compacted", removed=[segment.name])
