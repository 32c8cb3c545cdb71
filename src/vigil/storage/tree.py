"""A deterministic SHA-256 digest of a directory tree (what names an artifact).

The digest covers every regular file: its path relative to the root (POSIX separators),
its size and its own SHA-256, in sorted path order, so the same tree gives the same digest
on any machine and file system. Empty directories carry no content and are ignored.
Symbolic links and other special files are refused: a link could smuggle in content
from outside the tree.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "model.json").write_text("{}")
>>> (root / "data").mkdir(); _ = (root / "data" / "ref.csv").write_text("x\\n1\\n")
>>> [f.path for f in list_tree(root)]
['data/ref.csv', 'model.json']
>>> tree_digest(list_tree(root)) == tree_digest(list_tree(root))
True
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vigil.errors import BundleError, PathOutsideStoreError

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class TreeFile:
    """One file of a tree: relative POSIX path, size in bytes and SHA-256 (hex)."""

    path: str
    size: int
    sha256: str


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_relative_path(relpath: str) -> str:
    """Return ``relpath`` if it is a safe relative POSIX path, else raise.

    >>> check_relative_path("model/weights.onnx")
    'model/weights.onnx'
    >>> check_relative_path("../etc/passwd")
    Traceback (most recent call last):
    ...
    vigil.errors.PathOutsideStoreError: path '../etc/passwd' leaves its directory; use a plain relative path without '..', '\\\\' or a leading '/'
    """
    parts = relpath.split("/")
    if (
        not relpath
        or relpath.startswith("/")
        or "\\" in relpath
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or c == "\x7f" for c in relpath)
    ):
        raise PathOutsideStoreError(
            f"path {relpath!r} leaves its directory; use a plain relative path without "
            "'..', '\\\\' or a leading '/'",
            detail={"path": relpath},
        )
    return relpath


def list_tree(root: Path) -> list[TreeFile]:
    """Every regular file under ``root`` with size and digest, sorted by path."""
    if not root.is_dir():
        raise BundleError(f"{root} is not a directory; pass the bundle directory")
    files: list[TreeFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                filenames.append(name)  # reported as a refused link below
                dirnames.remove(name)
        for name in filenames:
            full = Path(dirpath, name)
            mode = full.lstat().st_mode
            rel = full.relative_to(root).as_posix()
            if not stat.S_ISREG(mode):
                kind = "symbolic link" if stat.S_ISLNK(mode) else "special file"
                raise BundleError(
                    f"{rel!r} in {root} is a {kind}; bundles may hold regular files only "
                    "(copy the target into the bundle instead)",
                    detail={"path": rel},
                )
            check_relative_path(rel)
            files.append(TreeFile(rel, full.stat().st_size, file_sha256(full)))
    files.sort(key=lambda f: f.path)
    return files


def tree_digest(files: Iterable[TreeFile]) -> str:
    """The tree's SHA-256 over (path, size, file digest) of every file, in path order."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.size}\0{f.sha256}\n".encode())
    return digest.hexdigest()
