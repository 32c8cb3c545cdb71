"""The on-disk framing of log records: one line per frame, guarded by a CRC-32.

Two frame formats share a file, told apart by their header:

* format 1, ``<crc32 as 8 hex digits> <orjson payload>\\n``: one record;
* format 2, ``<crc32 as 8 hex digits>#2 <orjson payload>\\n``: a *columnar batch* of
  records (:func:`encode_batch_frame`), written by the server's group commit: the columns
  are encoded once for many rows (NumPy arrays straight from the model call), which is what
  makes capture cheap on the hot path. The reader expands it back into the very records
  format 1 would hold, so nothing downstream knows the difference.

orjson never writes a raw newline inside a payload, so frames can be found again after any
damage by splitting on ``\\n``. A frame whose CRC does not match, or a last line without
its newline (the writer was killed in the middle of ``write()``), is torn: it is skipped and
counted.

>>> data = encode_frame({"a": 1}) + encode_frame({"b": 2})
>>> decode_frames(data + data[:5])
([{'a': 1}, {'b': 2}], 1)
>>> batch = encode_batch_frame({"n": 3, "same": {"m": "x"},
...     "requests": {"sizes": [2, 1], "request_id": ["r1", "r2"]},
...     "rows": {"y": [0, 1, 1]}, "maps": {"f": {"keys": ["a"], "rows": [[1], [2], [3]]}}})
>>> for record in decode_frames(batch)[0]:
...     print(record)
{'m': 'x', 'request_id': 'r1', 'row': 0, 'y': 0, 'f': {'a': 1}}
{'m': 'x', 'request_id': 'r1', 'row': 1, 'y': 1, 'f': {'a': 2}}
{'m': 'x', 'request_id': 'r2', 'row': 0, 'y': 1, 'f': {'a': 3}}
"""

from __future__ import annotations

import math
import zlib
from typing import Any, NamedTuple

import numpy as np
import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z
_ODD_VALUE_LIMIT = 256


def _fallback(value: Any) -> Any:
    # Odd types (Decimal, bytes, sets, objects) must never fail an append: store their text.
    if isinstance(value, np.ndarray):
        # orjson encodes contiguous numeric arrays itself; the rest (object arrays of
        # strings, transposed views) arrive here.
        return value.tolist()
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, float) and not math.isfinite(item):
            return None
        return item
    if isinstance(value, bytes | bytearray):
        return value[:_ODD_VALUE_LIMIT].decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)[:_ODD_VALUE_LIMIT]


def encode_payload(obj: Any) -> bytes:
    """orjson bytes of ``obj``; NaN/Inf become ``null`` and odd types their text."""
    return orjson.dumps(obj, default=_fallback, option=_OPTIONS)


def encode_frame(obj: Any) -> bytes:
    """One framed line holding ``obj``."""
    payload = encode_payload(obj)
    return b"%08x %b\n" % (zlib.crc32(payload), payload)


def encode_batch_frame(batch: dict[str, Any]) -> bytes:
    """One format-2 framed line holding a columnar batch of records.

    ``batch`` has ``n`` (rows), ``same`` (fields equal on every row), ``requests`` (``sizes``:
    rows per request, plus one value per request for each other field, repeated on its
    rows, whose position within the request becomes ``row``), ``rows`` (one value per row)
    and ``maps`` (per-row mappings sharing their ``keys``, given as ``rows`` row-major or
    ``columns`` column-major; a ``None`` row stands for no mapping).
    """
    payload = encode_payload(batch)
    return b"%08x#2 %b\n" % (zlib.crc32(payload), payload)


def expand_batch(batch: dict[str, Any], *, maps: bool = True) -> list[dict[str, Any]]:
    """The records of a columnar batch (see :func:`encode_batch_frame`); ``maps=False``
    leaves the per-row mappings (features, probabilities) out, for readers that only need
    the other fields and should not pay for building them."""
    same = batch.get("same") or {}
    requests = dict(batch.get("requests") or {"sizes": [batch["n"]]})
    sizes = requests.pop("sizes")
    per_row = batch.get("rows") or {}
    mappings: list[tuple[str, list[str], Any]] = []
    for name, spec in (batch.get("maps") or {}).items() if maps else ():
        rows = list(zip(*spec["columns"], strict=True)) if "columns" in spec else spec["rows"]
        mappings.append((name, spec["keys"], rows))
    records: list[dict[str, Any]] = []
    i = 0
    for r, size in enumerate(sizes):
        shared = {**same, **{name: values[r] for name, values in requests.items()}}
        for j in range(size):
            record = {**shared, "row": j}
            for name, values in per_row.items():
                record[name] = values[i]
            for name, keys, rows in mappings:
                values = rows[i] if rows else None
                record[name] = None if values is None else dict(zip(keys, values, strict=True))
            records.append(record)
            i += 1
    return records


class Batch(NamedTuple):
    """A columnar batch as written (see :func:`encode_batch_frame`), not expanded into
    records: for readers that want whole requests, not rows."""

    frame: dict[str, Any]


def decode_frames(data: bytes, *, maps: bool = True, expand: bool = True) -> tuple[list[Any], int]:
    """The intact records in ``data`` and the number of torn or corrupt frames skipped
    (``maps``: see :func:`expand_batch`; ``expand=False`` leaves each columnar batch whole,
    as a :class:`Batch`)."""
    records: list[Any] = []
    torn = 0
    lines = data.split(b"\n")
    # The piece after the last newline is a frame whose write never finished.
    if lines[-1]:
        torn += 1
    for line in lines[:-1]:
        marker = line[8:9]
        if marker == b" ":
            start = 9
        elif line[8:11] == b"#2 ":
            start = 11
        else:
            torn += 1
            continue
        payload = line[start:]
        try:
            if int(line[:8], 16) != zlib.crc32(payload):
                torn += 1
                continue
            value = orjson.loads(payload)
            if start == 9:
                records.append(value)
            elif not expand:
                records.append(Batch(value))
            else:
                records.extend(expand_batch(value, maps=maps))
        except (ValueError, KeyError, TypeError, IndexError):
            torn += 1
    return records, torn
