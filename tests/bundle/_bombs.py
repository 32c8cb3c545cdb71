"""Hostile model files for the resource-bomb tests, built quickly and deterministically.

* :func:`skops_with_zeros`: a real skops file of a fitted model whose first array member is
  replaced by an honest ``.npy`` of N MiB of zeros, deflated to about 1/1000 of that. The
  deflate stream is built once per MiB: after a full flush every MiB of zeros compresses to
  the same bytes, so a 2 GiB member costs a second, not a minute.
* :func:`skops_referencing`: a skops file whose ``schema.json`` names one 1 MiB array
  ``count`` times (no zip trick at all: each reference is loaded again).
* :func:`mlmodel_dir`: an MLflow model directory with a given ``MLmodel`` text around a real
  skops model.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

MIB = 1 << 20


def fitted() -> LogisticRegression:
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    return LogisticRegression().fit(pd.DataFrame(X, columns=list("abcd")), y)


def _npy_header(n_bytes: int) -> bytes:
    buffer = np.lib.format.header_data_from_array_1_0(np.zeros(0))
    buffer["shape"] = (n_bytes // 8,)
    from io import BytesIO

    out = BytesIO()
    np.lib.format.write_array_header_1_0(out, buffer)
    return out.getvalue()


def _deflated_zeros(header: bytes, mib: int) -> tuple[bytes, int, int]:
    """(raw deflate stream, size, CRC-32) of ``header`` followed by ``mib`` MiB of zeros."""
    zeros = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush()
    crc = zlib.crc32(header)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return head + block * mib + tail, len(header) + mib * MIB, crc


def _write_zip(
    path: Path, members: list[tuple[str, bytes, int, int, int]], *, copies: int = 1
) -> None:
    """A plain zip of ``(name, data, method, size, crc)`` members, data already compressed
    with ``method``, every size below 4 GiB (no zip64). ``copies`` lists each member that
    many times in the central directory, every copy pointing at the same data."""
    central = b""
    with path.open("wb") as out:
        for name, data, method, size, crc in members:
            offset = out.tell()
            encoded = name.encode()
            out.write(
                struct.pack(
                    "<IHHHHHIIIHH",
                    0x04034B50,
                    20,
                    0,
                    method,
                    0,
                    0x21,
                    crc,
                    len(data),
                    size,
                    len(encoded),
                    0,
                )
                + encoded
            )
            out.write(data)
            central += (
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    20,
                    20,
                    0,
                    method,
                    0,
                    0x21,
                    crc,
                    len(data),
                    size,
                    len(encoded),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )
                + encoded
            )
        central *= copies
        count = len(members) * copies
        start = out.tell()
        out.write(central)
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), start, 0))


def skops_with_zeros(path: Path, mib: int) -> Path:
    """A fitted model's skops file whose first ``.npy`` member holds ``mib`` MiB of zeros."""
    sio.dump(fitted(), path)
    with zipfile.ZipFile(path) as source:
        members = [(i.filename, source.read(i.filename)) for i in source.infolist()]
    first = next(n for n, _ in members if n.endswith(".npy"))
    written = []
    for name, data in members:
        if name == first:
            stream, size, crc = _deflated_zeros(_npy_header(mib * MIB), mib)
            written.append((name, stream, zipfile.ZIP_DEFLATED, size, crc))
        else:
            written.append((name, data, zipfile.ZIP_STORED, len(data), zlib.crc32(data)))
    _write_zip(path, written)
    return path


def lying_member(path: Path, actual: bytes, declared: int) -> Path:
    """A zip whose one member inflates to ``actual`` but declares ``declared`` bytes (and
    the CRC of that many): zipfile alone would hand out the declared bytes and stop."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(actual) + compressor.flush()
    crc = zlib.crc32(actual[:declared])
    _write_zip(path, [("big.npy", stream, zipfile.ZIP_DEFLATED, declared, crc)])
    return path


def overlapping(path: Path, copies: int) -> Path:
    """A zip whose ``copies`` members all point at one compressed MiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(bytes(MIB)) + compressor.flush()
    crc = zlib.crc32(bytes(MIB))
    _write_zip(path, [("a.npy", stream, zipfile.ZIP_DEFLATED, MIB, crc)], copies=copies)
    return path


def skops_referencing(path: Path, count: int) -> Path:
    """A skops file of a list whose ``count`` items all name the same 1 MiB array member."""
    sio.dump([np.zeros(MIB // 8)], path)
    with zipfile.ZipFile(path) as source:
        schema = json.loads(source.read("schema.json"))
        array_name = next(n for n in source.namelist() if n.endswith(".npy"))
        array = source.read(array_name)
    item = schema["content"][0]
    schema["content"] = [{**item, "__id__": item["__id__"] + i + 1} for i in range(count)]
    with zipfile.ZipFile(path, "w") as out:
        out.writestr(array_name, array)
        out.writestr("schema.json", json.dumps(schema))
    return path


def mlmodel_dir(root: Path, mlmodel: str) -> Path:
    """An MLflow model directory: ``MLmodel`` as given and a real skops model."""
    root.mkdir(parents=True)
    sio.dump(fitted(), root / "model.skops")
    (root / "MLmodel").write_text(mlmodel)
    return root


SKLEARN_FLAVOR = """\
flavors:
  sklearn:
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.5.0
"""


def yaml_alias_bomb(levels: int = 9) -> str:
    """``saved_input_example_info`` as a billion laughs: 9 levels of 9 aliases, about 1 KB
    of YAML that stands for 9**9 strings."""
    lines = ['  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*l{level - 1}"] * 9)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    return SKLEARN_FLAVOR + "saved_input_example_info:\n" + "\n".join(lines) + "\n"
