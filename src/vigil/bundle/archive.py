"""Bounded unpacking: a zip-based model file is measured before any loader reads it.

A model file is untrusted input, and a zip archive can stand for far more than its own
size: a 2 MB member of zeros that inflates to 2 GiB, members compressed beyond anything
deflate can do (bzip2 turns 1 GiB of zeros into a few hundred bytes), many directory
entries pointing at the same compressed data, a member that inflates past what its header
declares, or (skops) a ``schema.json`` that names one array a thousand times, each name
loaded anew. Every one of these would be unpacked at registration and again at every
server start.

:func:`check_zip` refuses, before a loader reads a byte of content:

* more than :data:`MAX_MEMBERS` members, or members whose compressed data add up to more
  than the file (they share it);
* declared sizes that add up to more than the caller's limit
  (``VIGIL_MAX_UNPACKED_MODEL_BYTES``, 1 GiB by default);
* a member of at least 1 MiB compressed more than :data:`MAX_RATIO` to 1 (deflate, which
  every real model file uses, cannot pass about 1032 to 1);
* a member that inflates to more or less than it declares: each is inflated once, at most
  one byte past its declared size (its CRC is checked when the loader reads it).

:func:`check_skops` adds the bytes ``schema.json`` makes the loader read, counting an array
once per mention. Errors are :class:`~vigil.errors.ModelTooLargeError` (limits) or
:class:`~vigil.errors.BundleError` (damage), both 422.
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

from vigil.errors import BundleError, ModelTooLargeError

MAX_MEMBERS = 10_000
MAX_RATIO = 1100
"""Highest compression ratio of a member (of at least 1 MiB) accepted."""
SETTING = "VIGIL_MAX_UNPACKED_MODEL_BYTES"
_RATIO_FLOOR = 1 << 20
_CHUNK = 1 << 20


def size_text(n: int) -> str:
    """
    >>> size_text(2 << 30), size_text(1536 << 20), size_text(1000)
    ('2.0 GiB', '1.5 GiB', '1000 bytes')
    """
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _too_large(what: str, reason: str, limit: int) -> ModelTooLargeError:
    return ModelTooLargeError(
        f"{what} {reason}, more than the {size_text(limit)} a model may unpack to; if you "
        f"trust this file and have the memory, raise {SETTING}",
        detail={"limit": limit, "setting": SETTING},
    )


def check_zip(path: Path, *, limit: int, what: str) -> dict[str, int]:
    """Measure the zip archive at ``path`` as the module docstring says; returns each
    member's unpacked size by name. ``what`` names the file in messages."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{what} is not a readable zip archive: {exc}") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BundleError(f"{what} has {len(infos)} members, more than {MAX_MEMBERS}")
        if sum(i.compress_size for i in infos) > path.stat().st_size:
            raise ModelTooLargeError(
                f"{what} has members that share their compressed data (a zip bomb): "
                "their compressed sizes add up to more than the file",
                detail={"members": len(infos)},
            )
        declared = sum(i.file_size for i in infos)
        if declared > limit:
            raise _too_large(what, f"unpacks to {size_text(declared)}", limit)
        for info in infos:
            if info.file_size >= _RATIO_FLOOR and info.file_size > MAX_RATIO * max(
                info.compress_size, 1
            ):
                raise ModelTooLargeError(
                    f"{what}: member {info.filename[:100]!r} is compressed more than "
                    f"{MAX_RATIO} to 1 ({size_text(info.file_size)} from "
                    f"{size_text(info.compress_size)}), which no real model file is",
                    detail={"member": info.filename[:100], "max_ratio": MAX_RATIO},
                )
        for info in infos:
            _inflate(archive, info, what)
        return {i.filename: i.file_size for i in infos}


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> None:
    """Inflate ``info`` up to one byte past its declared size, discarding the bytes."""
    probe = copy.copy(info)
    # zipfile stops at the declared size and then checks the CRC: look one byte past it,
    # without the CRC (the loader's own read checks it), to see how large it really is.
    probe.file_size = info.file_size + 1
    del probe.CRC
    actual = 0
    try:
        with archive.open(probe) as member:
            while chunk := member.read(_CHUNK):
                actual += len(chunk)
                if actual > info.file_size:
                    break
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, ValueError) as exc:
        raise BundleError(
            f"{what}: member {info.filename[:100]!r} is damaged or uses an unsupported "
            f"compression ({exc}); save the model again"
        ) from None
    if actual > info.file_size:
        raise ModelTooLargeError(
            f"{what}: member {info.filename[:100]} unpacks to more than the "
            f"{info.file_size} bytes its header declares (a zip bomb)",
            detail={"member": info.filename[:100], "declared": info.file_size},
        )
    if actual < info.file_size:
        raise BundleError(
            f"{what}: member {info.filename[:100]!r} is shorter than its header declares; "
            "the file is damaged"
        )


def check_skops(path: Path, *, limit: int, what: str) -> None:
    """:func:`check_zip`, plus the bytes ``schema.json`` makes skops read: each mention of
    an array member counts its whole size again."""
    sizes = check_zip(path, limit=limit, what=what)
    if "schema.json" not in sizes:
        raise BundleError(f"{what} is not a skops file: it has no schema.json")
    with zipfile.ZipFile(path) as archive:
        try:
            schema = json.loads(archive.read("schema.json"))
        except (ValueError, RecursionError) as exc:
            raise BundleError(f"{what}: schema.json is not valid JSON ({exc})") from None
    mentions: dict[str, int] = {}
    pending: list[Any] = [schema]
    while pending:  # iterative: a deeply nested schema must not exhaust the stack
        node = pending.pop()
        if isinstance(node, dict):
            name = node.get("file")
            if isinstance(name, str):
                mentions[name] = mentions.get(name, 0) + 1
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    read = sum(sizes.get(name, 0) * count for name, count in mentions.items())
    if read > limit:
        name, count = max(mentions.items(), key=lambda m: sizes.get(m[0], 0) * m[1])
        raise _too_large(
            what,
            f"makes the loader read {size_text(read)} (its schema names {name[:60]} {count} times)",
            limit,
        )
