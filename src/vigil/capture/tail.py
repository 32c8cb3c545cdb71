"""Follow a log directory: the records every writer appended since the last look.

Each segment is remembered by its id (stable across the live → closed rename) with the
offset up to which it was read. A poll reads each segment from there to its last complete
frame (a writer may be half-way through a frame), so a record is seen exactly once. A
segment that disappears was compacted; its id is reported as gone.

>>> import tempfile
>>> from vigil.capture.log import SegmentLog
>>> log = SegmentLog(tempfile.mkdtemp(), prefix="demo")
>>> tail = SegmentTail(log.directory, "demo")
>>> log.append([{"i": 1}])
>>> [records for records in tail.poll()[0].values()]
[[{'i': 1}]]
>>> log.append([{"i": 2}])
>>> _ = log.rotate()
>>> [records for records in tail.poll()[0].values()]
[[{'i': 2}]]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigil.capture.crypt import LogCodec
from vigil.capture.log import CLOSED_SUFFIX, LIVE_SUFFIX, decode_segment, segment_id


class SegmentTail:
    """Incremental reader of every segment named ``<prefix>-*`` in ``directory``
    (``maps=False`` skips the features and probabilities of columnar batches;
    ``expand=False`` hands each columnar batch over whole, as a
    :class:`~vigil.capture.framing.Batch`; ``codec``: to read encrypted segments)."""

    def __init__(
        self,
        directory: str | Path,
        prefix: str,
        *,
        maps: bool = True,
        expand: bool = True,
        codec: LogCodec | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.maps = maps
        self.expand = expand
        self.codec = codec
        self._offsets: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SegmentTail({str(self.directory)!r}, {self.prefix!r})"

    def poll(self) -> tuple[dict[str, list[Any]], list[str]]:
        """New records per segment id, and the ids of segments gone since the last poll."""
        fresh: dict[str, list[Any]] = {}
        listed: set[str] = set()
        if self.directory.is_dir():
            for path in sorted(self.directory.glob(f"{self.prefix}-*")):
                if path.suffix not in (LIVE_SUFFIX, CLOSED_SUFFIX):
                    continue
                sid = segment_id(path)
                listed.add(sid)
                offset = self._offsets.get(sid, 0)
                try:
                    with path.open("rb") as fh:
                        fh.seek(offset)
                        data = fh.read()
                except FileNotFoundError:
                    continue  # renamed (closed) or compacted since the listing: next poll
                end = data.rfind(b"\n") + 1
                if end:
                    records, _torn = decode_segment(
                        data[:end],
                        sid,
                        self.codec,
                        start=offset,
                        maps=self.maps,
                        expand=self.expand,
                    )
                    fresh[sid] = records
                    self._offsets[sid] = offset + end
        gone = [sid for sid in self._offsets if sid not in listed]
        for sid in gone:
            del self._offsets[sid]
        return fresh, gone
