from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from vigil.errors import BundleError, PathOutsideStoreError
from vigil.storage.tree import TreeFile, check_relative_path, list_tree, tree_digest


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_digest_is_sha256_over_sorted_path_size_and_file_digest(tmp_path: Path) -> None:
    root = _write(tmp_path / "b", {"z.txt": b"zz", "a/b.bin": b"\x00\x01", "m.json": b"{}"})
    expected = hashlib.sha256()
    for rel, data in sorted({"z.txt": b"zz", "a/b.bin": b"\x00\x01", "m.json": b"{}"}.items()):
        expected.update(f"{rel}\0{len(data)}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    files = list_tree(root)
    assert [f.path for f in files] == ["a/b.bin", "m.json", "z.txt"]
    assert files[0] == TreeFile("a/b.bin", 2, hashlib.sha256(b"\x00\x01").hexdigest())
    assert tree_digest(files) == expected.hexdigest()


def test_digest_ignores_creation_order_and_empty_dirs_but_not_names_or_bytes(
    tmp_path: Path,
) -> None:
    one = _write(tmp_path / "one", {"a": b"1", "b/c": b"2"})
    two = _write(tmp_path / "two", {"b/c": b"2", "a": b"1"})
    (two / "empty").mkdir()
    renamed = _write(tmp_path / "three", {"a2": b"1", "b/c": b"2"})
    changed = _write(tmp_path / "four", {"a": b"X", "b/c": b"2"})
    digests = [tree_digest(list_tree(d)) for d in (one, two, renamed, changed)]
    assert digests[0] == digests[1]
    assert len({digests[0], digests[2], digests[3]}) == 3


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    root = _write(tmp_path / "b", {"vigil.json": b"{}"})
    os.symlink(secret, root / "model.bin")
    with pytest.raises(BundleError, match=r"'model.bin'.*symbolic link"):
        list_tree(root)
    os.unlink(root / "model.bin")
    os.symlink(tmp_path, root / "linked_dir")
    with pytest.raises(BundleError, match=r"'linked_dir'.*symbolic link"):
        list_tree(root)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is not a directory"):
        list_tree(tmp_path / "missing")


@pytest.mark.parametrize(
    "bad", ["../x", "a/../../x", "/etc/passwd", "a\\b", "a//b", "./a", "a/\x00", "", "a/"]
)
def test_unsafe_relative_paths_are_refused(bad: str) -> None:
    with pytest.raises(PathOutsideStoreError):
        check_relative_path(bad)


def test_safe_relative_paths_pass() -> None:
    assert check_relative_path("bundles/ab/x.json") == "bundles/ab/x.json"
    assert check_relative_path("a..b/c") == "a..b/c"
