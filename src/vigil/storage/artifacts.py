"""The artifact store: content-addressed bundle directories on a local disk or S3.

A directory is stored under its tree digest (:mod:`vigil.storage.tree`)::

    <root>/bundles/<sha[:2]>/<sha>/<the bundle's files>
    <root>/bundles/<sha[:2]>/<sha>/.vigil-tree.json      <- the commit marker

The marker lists every file with its size and SHA-256 and is written *last*, so a tree
without it is invisible: on a local disk the whole tree is assembled in a private temp
directory and renamed into place in one step; on S3 (where there is no rename) the
files are uploaded first and the marker after them. Storing the same content twice is a
no-op. Reads verify every byte against the marker and the marker against the digest.

Every key is checked against the store root: ``..``, absolute paths and symbolic links
that lead outside it raise :class:`~vigil.errors.PathOutsideStoreError`.

>>> import pathlib, tempfile
>>> bundle = pathlib.Path(tempfile.mkdtemp()); _ = (bundle / "vigil.json").write_text("{}")
>>> store = ArtifactStore(tempfile.mkdtemp())
>>> stored = store.put_dir(bundle)
>>> stored.sha256[:12], stored.size
('364985e36091', 2)
>>> copy = store.get_dir(stored.sha256, pathlib.Path(tempfile.mkdtemp()) / "copy")
>>> (copy / "vigil.json").read_text()
'{}'
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from vigil._redact import redact_url
from vigil.errors import (
    ArtifactCorruptError,
    BundleError,
    InvalidNameError,
    NotFoundError,
    PathOutsideStoreError,
    require,
)
from vigil.storage.tree import TreeFile, check_relative_path, list_tree, tree_digest

if TYPE_CHECKING:
    from vigil.settings import Settings

TREE_INDEX = ".vigil-tree.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class StoredTree(NamedTuple):
    """Where :meth:`ArtifactStore.put_dir` put a directory."""

    sha256: str
    size: int
    uri: str


def check_sha256(sha: object) -> str:
    """Return ``sha`` if it is a lower-case hex SHA-256, else raise ``InvalidNameError``."""
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise InvalidNameError(
            f"{sha!r} is not a SHA-256 digest (64 lower-case hex characters)",
            detail={"kind": "sha256"},
        )
    return sha


class ArtifactStore:
    """Content-addressed storage for bundle directories (and a few plain objects).

    Parameters
    ----------
    url:
        A local directory (created if missing), ``file://...``, ``s3://bucket/prefix``
        or any other fsspec URL.
    s3_endpoint_url:
        Endpoint of an S3-compatible server (MinIO, moto...); AWS when ``None``.
        Credentials come from the usual AWS environment variables or files.
    """

    def __init__(self, url: str, *, s3_endpoint_url: str | None = None) -> None:
        self.url = url
        self.log_codec: Any = None
        """The inference log's :class:`~vigil.capture.crypt.LogCodec` (``None``: plain),
        set by the composition root: every reader of the log is handed this store."""
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        self.is_local = protocol in ("file", "local")
        self._fs: Any = None
        if self.is_local:
            local = url.split("://", 1)[1] if "://" in url else url
            root = Path(local).expanduser().resolve()
            root.mkdir(parents=True, exist_ok=True)
            self.root = root.as_posix()
        else:
            # fsspec: only when a store is opened (a local one opens it at first use)
            import fsspec

            options: dict[str, Any] = {"skip_instance_cache": True}
            if protocol == "s3":
                require("s3fs", "s3")
                options["use_listings_cache"] = False
                if s3_endpoint_url:
                    options["client_kwargs"] = {"endpoint_url": s3_endpoint_url}
            self._fs = fsspec.filesystem(protocol, **options)
            self.root = url.split("://", 1)[1].rstrip("/")
            if not self.root:
                raise InvalidNameError(
                    f"artifact URL {redact_url(url)!r} names no bucket or directory"
                )

    @property
    def fs(self) -> Any:
        """The store's fsspec filesystem. A local store builds it at first use: a serving
        worker reads its bundles with plain file calls and never needs it before it is
        ready (importing fsspec costs about 0.05 s of CPU: the cold start's budget)."""
        if self._fs is None:
            import fsspec  # cold start: see above

            self._fs = fsspec.filesystem("file")
        return self._fs

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactStore:
        """The store ``settings`` name (``VIGIL_ARTIFACT_URL``, ``VIGIL_S3_ENDPOINT_URL``):
        the composition root's, and a Ray actor's, which gets the settings alone."""
        return cls(settings.resolved_artifact_url, s3_endpoint_url=settings.s3_endpoint_url)

    def __repr__(self) -> str:
        return f"ArtifactStore({redact_url(self.url)!r})"

    # -- keys -------------------------------------------------------------------------

    def resolve_key(self, key: str) -> str:
        """The full store path of ``key``; refuses anything that would leave the root."""
        check_relative_path(key)
        full = posixpath.join(self.root, key)
        if self.is_local:
            real = os.path.realpath(full)
            if real != self.root and not real.startswith(self.root + "/"):
                raise PathOutsideStoreError(
                    f"{key!r} resolves to {real}, outside the artifact store {self.root}; "
                    "remove the symbolic link that leads out of the store",
                    detail={"key": key},
                )
        return full

    def uri(self, key: str) -> str:
        """A URI for ``key`` that names the store's backend (for display and lineage)."""
        full = self.resolve_key(key)
        return full if self.is_local else f"{self.url.split('://', 1)[0]}://{full}"

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, replacing it atomically."""
        full = self.resolve_key(key)
        if self.is_local:
            Path(full).parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=Path(full).parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, full)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        else:
            self.fs.pipe_file(full, data)

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored at ``key`` (``NotFoundError`` if there are none)."""
        full = self.resolve_key(key)
        try:
            with self._open_read(full) as fh:
                data: bytes = fh.read()
        except FileNotFoundError:
            raise NotFoundError(f"no artifact {key!r} in {redact_url(self.url)}") from None
        return data

    def _open_read(self, full: str) -> Any:
        """``full`` (a resolved key) open for reading: a plain file in a local store."""
        return open(full, "rb") if self.is_local else self.fs.open(full, "rb")

    def ping(self) -> None:
        """Ask the store about its root once: raises when it cannot be reached (a refused
        connection, bad credentials, a missing local directory). What ``/readyz`` checks;
        a store with nothing in it yet answers too."""
        if self.is_local:
            if not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
                raise OSError(f"the artifact directory {self.root} is missing or not writable")
            return
        with contextlib.suppress(FileNotFoundError):  # reachable, with nothing stored yet
            self.fs.info(self.root)

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.resolve_key(key)))

    # -- bundle trees -----------------------------------------------------------------

    def _tree_key(self, sha: str) -> str:
        check_sha256(sha)
        return f"bundles/{sha[:2]}/{sha}"

    def has(self, sha: str) -> bool:
        """Whether a tree with this digest was committed (its marker is there)."""
        return self.exists(f"{self._tree_key(sha)}/{TREE_INDEX}")

    def has_complete(self, sha: str) -> bool:
        """Whether a committed tree with this digest still holds every file its marker
        lists, at its size (one listing; the bytes are checked when the tree is read).

        On S3 a tree is many objects, so a deletion racing with an upload of the same
        content can leave a marker with files missing; this is what tells.
        """
        try:
            files = self.read_index(sha)
        except (NotFoundError, ArtifactCorruptError):
            return False
        prefix = self.resolve_key(self._tree_key(sha))
        if self.is_local:
            try:
                return all(os.stat(f"{prefix}/{f.path}").st_size == f.size for f in files)
            except FileNotFoundError:
                return False
        listed = self.fs.find(prefix, detail=True)
        sizes = {str(path)[len(prefix) + 1 :]: info.get("size") for path, info in listed.items()}
        return all(sizes.get(f.path) == f.size for f in files)

    def tree_uri(self, sha: str) -> str:
        return self.uri(self._tree_key(sha))

    def put_dir(self, local_dir: Path | str) -> StoredTree:
        """Store a directory under its digest; returns ``(sha256, size, uri)``.

        Idempotent: storing content that is already there uploads nothing.
        """
        root = Path(local_dir)
        files = list_tree(root)
        if any(f.path == TREE_INDEX for f in files):
            raise BundleError(f"{TREE_INDEX!r} is a reserved file name; remove it from {root}")
        sha = tree_digest(files)
        stored = StoredTree(sha, sum(f.size for f in files), self.tree_uri(sha))
        if self.has_complete(sha):
            return stored
        index = json.dumps(
            {"sha256": sha, "files": [dataclasses.asdict(f) for f in files]},
            indent=1,
        ).encode()
        if self.is_local:
            self._put_local(root, files, sha, index)
        else:
            self._put_remote(root, files, sha, index)
        return stored

    def _staging_dir(self) -> Path:
        staging = Path(self.root, "tmp")
        staging.mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="put-", dir=staging))

    def _put_local(self, root: Path, files: list[TreeFile], sha: str, index: bytes) -> None:
        final = Path(self.resolve_key(self._tree_key(sha)))
        staging = self._staging_dir()
        try:
            for f in files:
                target = staging / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                with (root / f.path).open("rb") as src, target.open("wb") as dst:
                    _copy_verified(src, dst, f, what=f"{root / f.path}", uploading=True)
            (staging / TREE_INDEX).write_bytes(index)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)
            except OSError:
                if self.has_complete(sha):
                    return  # another writer committed the same content first: keep theirs
                if not final.is_dir():
                    raise
                # A tree without its marker was never committed (writers rename complete
                # trees into place), and one missing files was damaged: either is debris,
                # so clear it and commit ours.
                self._discard_tree_dir(final)
                os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _put_remote(self, root: Path, files: list[TreeFile], sha: str, index: bytes) -> None:
        prefix = self._tree_key(sha)
        try:
            for f in files:
                with (
                    (root / f.path).open("rb") as src,
                    self.fs.open(self.resolve_key(f"{prefix}/{f.path}"), "wb") as dst,
                ):
                    _copy_verified(src, dst, f, what=f"{root / f.path}", uploading=True)
            self.fs.pipe_file(self.resolve_key(f"{prefix}/{TREE_INDEX}"), index)
        except BaseException:
            # Without the marker the files are invisible, but do not leave them lying about.
            with contextlib.suppress(Exception):
                if not self.has(sha):
                    self.fs.rm(self.resolve_key(prefix), recursive=True)
            raise

    def read_index(self, sha: str) -> list[TreeFile]:
        """The verified file list of a stored tree."""
        key = f"{self._tree_key(sha)}/{TREE_INDEX}"
        try:
            raw = json.loads(self.read_bytes(key))
            files = [
                TreeFile(str(r["path"]), int(r["size"]), str(r["sha256"])) for r in raw["files"]
            ]
        except NotFoundError:
            raise NotFoundError(
                f"artifact {sha} is not in the store {redact_url(self.url)}; register the bundle "
                "again",
                detail={"sha256": sha},
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactCorruptError(f"artifact {sha} has an unreadable index: {exc}") from exc
        for f in files:
            check_relative_path(f.path)
        if tree_digest(files) != sha:
            raise ArtifactCorruptError(
                f"artifact {sha} in {redact_url(self.url)} does not match its digest (the index was "
                "changed); restore it from a backup or register the bundle again",
                detail={"sha256": sha},
            )
        return files

    def get_dir(self, sha: str, dest: Path | str) -> Path:
        """Download a stored tree to ``dest`` (which must not exist yet), verifying it.

        Raises :class:`~vigil.errors.ArtifactCorruptError` if any byte differs from what
        was stored; nothing is left at ``dest`` then.
        """
        dest = Path(dest)
        files = self.read_index(sha)
        if dest.exists():
            raise FileExistsError(f"{dest} already exists; pass a new directory")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".fetch-{sha[:12]}-", dir=dest.parent))
        try:
            prefix = self._tree_key(sha)
            for f in files:
                target = staging / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                source = self.resolve_key(f"{prefix}/{f.path}")
                try:
                    with self._open_read(source) as src, target.open("wb") as dst:
                        _copy_verified(src, dst, f, what=f"artifact {sha} file {f.path!r}")
                except FileNotFoundError:
                    raise ArtifactCorruptError(
                        f"artifact {sha} is missing its file {f.path!r}; restore it from a "
                        "backup or register the bundle again",
                        detail={"sha256": sha, "path": f.path},
                    ) from None
            try:
                os.rename(staging, dest)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    # Another process (a sibling worker) fetched it at the same moment.
                    raise FileExistsError(f"{dest} appeared while it was being fetched") from exc
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def _discard_tree_dir(self, path: Path) -> None:
        # Renaming first makes the tree vanish in one step; the slow removal comes after.
        trash = Path(self.root, "tmp", f"delete-{uuid.uuid4().hex}")
        trash.parent.mkdir(exist_ok=True)
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def delete(self, sha: str) -> None:
        """Remove a stored tree (no-op if absent). The marker goes first, so a partly
        deleted tree is never taken for a complete one."""
        prefix = self.resolve_key(self._tree_key(sha))
        if self.is_local:
            if os.path.isdir(prefix):
                self._discard_tree_dir(Path(prefix))
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{prefix}/{TREE_INDEX}")
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(prefix, recursive=True)


def _copy_verified(
    src: BinaryIO, dst: BinaryIO, expected: TreeFile, *, what: str, uploading: bool = False
) -> None:
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        dst.write(chunk)
    if size != expected.size or digest.hexdigest() != expected.sha256:
        found = (
            f"{what} does not match its digest: expected {expected.size} bytes with SHA-256 "
            f"{expected.sha256[:12]}..., read {size} bytes with {digest.hexdigest()[:12]}..."
        )
        if uploading:
            raise BundleError(f"{found}; it changed while being stored, try again")
        raise ArtifactCorruptError(
            f"{found}; the stored copy was tampered with or damaged: restore it from a backup "
            "or register the bundle again",
            detail={"path": expected.path},
        )
