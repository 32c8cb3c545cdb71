"""Encryption at rest of the inference log: AES-256-GCM under keys with ids, rotatable.

One :class:`LogCodec` is built by the composition root from the key file
(``VIGIL_CAPTURE_ENCRYPTION_KEY_FILE``: one ``ID:BASE64`` key a line) and handed to the
segment writer (:class:`~vigil.capture.log.SegmentLog`) and to the artifact store, which
every reader of the log already receives. The first key encrypts; every key decrypts, so a
rotation is: put the new key first, run ``vigil capture rekey``, then drop the old key.

Two formats, both authenticated (a flipped byte raises :class:`LogIntegrityError` naming
the file and the place, never garbage and never a silent skip):

* **segments**: each appended buffer of frames becomes one line
  ``E1 <key id> <base64(nonce | ciphertext)>\\n``; its associated data binds the segment id
  and the line's byte offset, so records cannot be reordered, moved to another segment or
  dropped from the middle unnoticed. Decrypted, the line gives back the very frames a plain
  segment holds (:mod:`vigil.capture.framing`), so everything downstream is unchanged. A
  last line without its newline is a torn write, counted as plain torn frames are.
* **Parquet parts and quarantine files**: a chunked envelope ``VGLE1`` (header, then
  1 MiB chunks sealed one by one, each bound to the file's last three path components,
  its index and whether it is the last). :meth:`LogCodec.open_part` returns a seekable
  file that decrypts only the chunks a reader touches, so PyArrow's reads of a footer and
  of a few row groups stay bounded in memory, as they are on a plain file. (Parquet's own
  modular encryption would also keep reads bounded, but needs its decryption properties
  passed to every ``ParquetFile`` call; the envelope changes only how a file is opened.)

Files written before encryption was turned on stay readable as they are (a plain segment
starts with a CRC's hex digits, a plain part with ``PAR1``).

>>> import base64
>>> ring = KeyRing.parse("k2:" + base64.b64encode(bytes(32)).decode() + "\\n"
...                      "k1:" + base64.b64encode(bytes(range(32))).decode())
>>> codec = LogCodec(ring)
>>> line = codec.seal_frames(b"00000000 {}\\n", segment="s", offset=0)
>>> line[:6], b"{}" in line
(b'E1 k2 ', False)
>>> codec.open_segment(line + line[:10], segment="s")
(b'00000000 {}\\n', 1)
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vigil.errors import ConfigurationError, LogIntegrityError, require

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from vigil.storage.artifacts import ArtifactStore

KEY_BYTES = 32
"""AES-256."""
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_SEGMENT_LINE = b"E1 "
_PART_MAGIC = b"VGLE1"
_CHUNK = 1 << 20
_TAG = 16
_NONCE = 12


class KeyRing:
    """Named AES-256 keys; the first one encrypts. Never shows key material.

    >>> KeyRing.parse("a:" + base64.b64encode(bytes(32)).decode())
    KeyRing(['a'])
    >>> KeyRing.parse("a:c2hvcnQ=")
    Traceback (most recent call last):
    ...
    vigil.errors.ConfigurationError: encryption key file, line 1 (key 'a'): the key is 5 bytes; ...
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ConfigurationError("the encryption key file holds no key; add one line ID:KEY")
        self.primary = next(iter(keys))
        self._keys = dict(keys)
        self._ciphers: dict[str, AESGCM] = {}

    def __repr__(self) -> str:
        return f"KeyRing({list(self._keys)!r})"

    @property
    def ids(self) -> list[str]:
        """The key ids, the encrypting one first."""
        return list(self._keys)

    @classmethod
    def parse(cls, text: str, *, source: str = "encryption key file") -> KeyRing:
        """Keys from ``ID:BASE64`` lines (blank lines and ``#`` comments skipped)."""
        keys: dict[str, bytes] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            kid, sep, encoded = line.partition(":")
            kid = kid.strip()
            where = f"{source}, line {number}"
            if not sep or not _KEY_ID.match(kid):
                raise ConfigurationError(
                    f"{where}: write ID:KEY, the id 1-32 letters, digits, '.', '_' or '-' "
                    "(make a line with `vigil capture keygen ID`)"
                )
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error:
                raise ConfigurationError(
                    f"{where} (key {kid!r}): the key is not base64; "
                    "make one with `vigil capture keygen ID`"
                ) from None
            if len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"{where} (key {kid!r}): the key is {len(key)} bytes; AES-256 needs "
                    f"{KEY_BYTES} (make one with `vigil capture keygen ID`)"
                )
            if kid in keys:
                raise ConfigurationError(f"{where}: key id {kid!r} appears twice")
            keys[kid] = key
        return cls(keys)

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        """The keys of a key file (see :meth:`parse`)."""
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read VIGIL_CAPTURE_ENCRYPTION_KEY_FILE {path}: {exc.strerror}"
            ) from None
        return cls.parse(text, source=f"encryption key file {path}")

    def cipher(self, kid: str, *, what: str) -> AESGCM:
        """The cipher of key ``kid``; :class:`LogIntegrityError` naming it when absent."""
        cipher = self._ciphers.get(kid)
        if cipher is None:
            key = self._keys.get(kid)
            if key is None:
                raise LogIntegrityError(
                    f"{what} is encrypted under key {kid!r}, which is not in "
                    "VIGIL_CAPTURE_ENCRYPTION_KEY_FILE; add that key back (after a "
                    "rotation, keep old keys until `vigil capture rekey` has run)",
                    detail={"key_id": kid},
                )
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            cipher = self._ciphers[kid] = AESGCM(key)
        return cipher


def new_key_line(kid: str) -> str:
    """A fresh ``ID:BASE64`` key-file line (32 random bytes)."""
    if not _KEY_ID.match(kid):
        raise ConfigurationError(
            f"key id {kid!r}: use 1-32 letters, digits, '.', '_' or '-'", detail={"id": kid}
        )
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def _segment_aad(segment: str, offset: int) -> bytes:
    return b"vigil-seg1\0%b\0%d" % (segment.encode(), offset)


def _part_binding(key: str) -> bytes:
    # The last three components (model=/date=/part-...) name a part wherever the store is.
    return "/".join(str(key).rstrip("/").rsplit("/", 3)[-3:]).encode()


def is_encrypted_segment(data: bytes) -> bool:
    """Whether segment bytes were written encrypted."""
    return data[:3] == _SEGMENT_LINE


def is_encrypted_part(head: bytes) -> bool:
    """Whether a part (its first bytes) is in the encrypted envelope."""
    return head[:5] == _PART_MAGIC


class LogCodec:
    """Encrypts what the log writes and decrypts what it reads (see the module docstring).

    ``encrypt=False`` only decrypts (a key file kept to read old files after turning
    encryption off).
    """

    def __init__(self, keys: KeyRing, *, encrypt: bool = True) -> None:
        require("cryptography", "encrypt")  # at start-up, with the pip line, not mid-request
        self.keys = keys
        self.encrypt = encrypt

    def __repr__(self) -> str:
        return f"LogCodec({self.keys!r}, encrypt={self.encrypt})"

    # -- segments ---------------------------------------------------------------------------

    def seal_frames(self, data: bytes, *, segment: str, offset: int) -> bytes:
        """One encrypted line holding the frames ``data``, written at byte ``offset`` of
        segment ``segment`` (its id)."""
        kid = self.keys.primary
        nonce = os.urandom(_NONCE)
        sealed = self.keys.cipher(kid, what="").encrypt(nonce, data, _segment_aad(segment, offset))
        return b"E1 %b %b\n" % (kid.encode(), base64.b64encode(nonce + sealed))

    def open_segment(self, data: bytes, *, segment: str, start: int = 0) -> tuple[bytes, int]:
        """The plain frames of encrypted segment bytes (read from byte ``start`` of the
        file) and the number of torn lines (a last line without newline)."""
        return open_segment(data, segment=segment, start=start, codec=self)

    # -- parts ------------------------------------------------------------------------------

    def seal_part(self, data: bytes, *, key: str) -> bytes:
        """``data`` (a whole Parquet or JSON-lines file) in the encrypted envelope, bound to
        the last three components of ``key``."""
        kid = self.keys.primary
        cipher = self.keys.cipher(kid, what="")
        prefix = os.urandom(8)
        header = _PART_MAGIC + bytes([len(kid)]) + kid.encode() + prefix
        out = [header]
        binding = _part_binding(key)
        count = max(1, -(-len(data) // _CHUNK))
        for i in range(count):
            chunk = data[i * _CHUNK : (i + 1) * _CHUNK]
            aad = b"%b\0%d\0%d" % (binding, i, int(i == count - 1))
            out.append(cipher.encrypt(prefix + struct.pack(">I", i), chunk, aad))
        return b"".join(out)

    def part_bytes(self, data: bytes, *, key: str) -> bytes:
        """What to store for a new file at ``key``: sealed when encrypting."""
        return self.seal_part(data, key=key) if self.encrypt else data

    def frames(self, data: bytes, *, segment: str) -> bytes:
        """What to write for a whole rewritten segment of frames (erase, rekey)."""
        return self.seal_frames(data, segment=segment, offset=0) if self.encrypt else data


def open_segment(
    data: bytes, *, segment: str, start: int = 0, codec: LogCodec | None
) -> tuple[bytes, int]:
    """Plain frames of segment bytes, encrypted or not, and the torn lines found while
    decrypting. Plain bytes come back as they are."""
    if not is_encrypted_segment(data):
        if b"\nE1 " in data:  # a plain line put before encrypted ones would hide them
            offset = start + data.index(b"\nE1 ") + 1
            raise LogIntegrityError(
                f"segment {segment}, byte {offset}: an encrypted record after plain ones "
                "(the file was altered); restore it from a backup or erase it",
                detail={"segment": segment, "offset": offset},
            )
        return data, 0
    if codec is None:
        kid = data[3:].split(b" ", 1)[0].decode("ascii", "replace")
        raise LogIntegrityError(
            f"segment {segment} is encrypted under key {kid!r} and no "
            "VIGIL_CAPTURE_ENCRYPTION_KEY_FILE is set; set it to the key file",
            detail={"key_id": kid, "segment": segment},
        )
    out: list[bytes] = []
    offset = start
    lines = data.split(b"\n")
    torn = 1 if lines[-1] else 0
    for line in lines[:-1]:
        place = f"segment {segment}, byte {offset}"
        parts = line.split(b" ")
        if len(parts) != 3 or parts[0] != b"E1":
            raise LogIntegrityError(
                f"{place}: a line that is not an encrypted record in an encrypted segment "
                "(the file was altered); restore it from a backup or erase it",
                detail={"segment": segment, "offset": offset},
            )
        kid = parts[1].decode("ascii", "replace")
        cipher = codec.keys.cipher(kid, what=place)
        try:
            blob = base64.b64decode(parts[2], validate=True)
            plain = cipher.decrypt(blob[:_NONCE], blob[_NONCE:], _segment_aad(segment, offset))
        except Exception:  # InvalidTag, bad base64, short blob: all one thing to the user
            raise LogIntegrityError(
                f"{place}: the record fails authentication under key {kid!r} (altered, "
                "moved or truncated); restore the file from a backup or erase it",
                detail={"segment": segment, "offset": offset, "key_id": kid},
            ) from None
        out.append(plain)
        offset += len(line) + 1
    return b"".join(out), torn


class _PartReader(io.RawIOBase):
    """A seekable, read-only view of an encrypted part, decrypting one chunk at a time."""

    def __init__(self, raw: IO[bytes], key: str, codec: LogCodec | None, size: int) -> None:
        super().__init__()
        head = raw.read(6)
        kid_len = head[5] if len(head) == 6 else 0
        kid = raw.read(kid_len).decode("ascii", "replace")
        self._prefix = raw.read(8)
        self._where = f"file {key}"
        if codec is None:
            raise LogIntegrityError(
                f"{self._where} is encrypted under key {kid!r} and no "
                "VIGIL_CAPTURE_ENCRYPTION_KEY_FILE is set; set it to the key file",
                detail={"key_id": kid, "file": key},
            )
        self._cipher = codec.keys.cipher(kid, what=self._where)
        self._raw = raw
        self._base = 6 + kid_len + 8
        body = size - self._base
        self._count = max(1, -(-body // (_CHUNK + _TAG)))
        self._size = body - self._count * _TAG
        if self._size < 0 or len(self._prefix) != 8:
            self._fail(0)
        self._binding = _part_binding(key)
        self._pos = 0
        self._cached: tuple[int, bytes] = (-1, b"")

    def _fail(self, index: int) -> None:
        raise LogIntegrityError(
            f"{self._where}: chunk {index} fails authentication (altered, moved or "
            "truncated); restore it from a backup or erase it",
            detail={"file": self._where[5:], "chunk": index},
        )

    def _chunk(self, index: int) -> bytes:
        if self._cached[0] == index:
            return self._cached[1]
        self._raw.seek(self._base + index * (_CHUNK + _TAG))
        sealed = self._raw.read(_CHUNK + _TAG)
        aad = b"%b\0%d\0%d" % (self._binding, index, int(index == self._count - 1))
        try:
            plain = self._cipher.decrypt(self._prefix + struct.pack(">I", index), sealed, aad)
        except Exception:
            self._fail(index)
        self._cached = (index, plain)
        return plain

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            index, within = divmod(self._pos, _CHUNK)
            chunk = self._chunk(index)
            take = min(len(view) - done, len(chunk) - within)
            view[done : done + take] = chunk[within : within + take]
            done += take
            self._pos += take
        return done

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_part(raw: IO[bytes], *, key: str, codec: LogCodec | None) -> IO[bytes]:
    """A readable, seekable file of a part's plain bytes over ``raw`` (a file opened for
    reading, which the result closes), encrypted or not."""
    head = raw.read(5)
    raw.seek(0)
    if not is_encrypted_part(head):
        return raw
    size = raw.seek(0, 2)
    raw.seek(0)
    return io.BufferedReader(_PartReader(raw, key, codec, size), buffer_size=1 << 16)


def part_plain(data: bytes, *, key: str, codec: LogCodec | None) -> bytes:
    """The plain bytes of a whole part read into memory (encrypted or not)."""
    if not is_encrypted_part(data):
        return data
    with open_part(io.BytesIO(data), key=key, codec=codec) as fh:
        return fh.read()


# -- the byte layer the readers and writers of the log call ----------------------------------


def store_codec(store: ArtifactStore | None) -> LogCodec | None:
    """The codec the composition root gave ``store`` (``None``: a plain log)."""
    return store.log_codec if store is not None else None


def open_log_file(store: ArtifactStore, path: str) -> IO[bytes]:
    """Open a file of the log in ``store`` (a full store path, as ``fs.glob`` gives it)
    for reading its plain bytes, decrypting on the fly when it is encrypted."""
    return open_part(store.fs.open(path, "rb"), key=str(path), codec=store_codec(store))


def stored_bytes(store: ArtifactStore, key: str, data: bytes) -> bytes:
    """What to write at ``key`` in ``store`` for the plain file ``data`` (sealed when the
    store's codec encrypts)."""
    codec = store_codec(store)
    return codec.part_bytes(data, key=key) if codec is not None else data


def read_log_bytes(store: ArtifactStore, key: str) -> bytes:
    """The plain bytes of the log file at ``key`` (decrypted when encrypted)."""
    return part_plain(store.read_bytes(key), key=key, codec=store_codec(store))


def log_filesystem(store: ArtifactStore) -> Any:
    """A PyArrow file system over the store's that decrypts the log files it opens, for
    ``pyarrow.dataset`` scans (the store's own fsspec file system when the log is plain)."""
    if store_codec(store) is None:
        return store.fs
    import pyarrow as pa
    from pyarrow.fs import FileInfo, FSSpecHandler, PyFileSystem

    class _Decrypting(FSSpecHandler):  # type: ignore[misc]
        def get_file_info(self, paths: list[str]) -> list[FileInfo]:
            infos: list[FileInfo] = super().get_file_info(paths)
            for info in infos:
                if info.size is not None and info.path.endswith(".parquet"):
                    with open_log_file(store, info.path) as fh:
                        info.size = fh.seek(0, 2)
            return infos

        def open_input_file(self, path: str) -> Any:
            return pa.PythonFile(open_log_file(store, path), mode="r")

    return PyFileSystem(_Decrypting(store.fs))
