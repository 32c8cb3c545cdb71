"""The on-disk framing of log records: one line per record, guarded by a CRC-32.

A frame is ``<crc32 as 8 hex digits> <orjson payload>\\n``. orjson never writes a raw
newline inside a payload, so frames can be found again after any damage by splitting
on ``\\n``. A frame whose CRC does not match, or a last line without its newline (the
writer was killed in the middle of ``write()``), is torn: it is skipped and counted.

>>> data = encode_frame({"a": 1}) + encode_frame({"b": 2})
>>> decode_frames(data + data[:5])
([{'a': 1}, {'b': 2}], 1)
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z
_ODD_VALUE_LIMIT = 256


def _fallback(value: Any) -> Any:
    # Odd types (Decimal, bytes, sets, objects) must never fail an append: store their text.
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


def decode_frames(data: bytes) -> tuple[list[Any], int]:
    """The intact records in ``data`` and the number of torn or corrupt frames skipped."""
    records: list[Any] = []
    torn = 0
    lines = data.split(b"\n")
    # The piece after the last newline is a frame whose write never finished.
    if lines[-1]:
        torn += 1
    for line in lines[:-1]:
        if len(line) < 10 or line[8:9] != b" ":
            torn += 1
            continue
        payload = line[9:]
        try:
            if int(line[:8], 16) != zlib.crc32(payload):
                torn += 1
                continue
            records.append(orjson.loads(payload))
        except ValueError:
            torn += 1
    return records, torn
