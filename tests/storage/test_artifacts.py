from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.servers import S3Server, needs

from vigil.errors import (
    ArtifactCorruptError,
    BundleError,
    InvalidNameError,
    NotFoundError,
    PathOutsideStoreError,
)
from vigil.storage.artifacts import TREE_INDEX, ArtifactStore
from vigil.storage.tree import TreeFile, list_tree, tree_digest


@pytest.fixture(params=["local", needs("s3", "s3")])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "store"))
    s3: S3Server = request.getfixturevalue("s3")
    return ArtifactStore(request.getfixturevalue("s3_url"), s3_endpoint_url=s3.endpoint_url)


def _files(root: Path) -> dict[str, bytes]:
    return {f.path: (root / f.path).read_bytes() for f in list_tree(root)}


def _stored_key(sha: str, rel: str) -> str:
    return f"bundles/{sha[:2]}/{sha}/{rel}"


def test_put_get_round_trip(
    store: ArtifactStore, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = make_bundle("a")
    stored = store.put_dir(bundle)
    assert stored.sha256 == tree_digest(list_tree(bundle))
    assert stored.size == sum(len(b) for b in _files(bundle).values())
    assert stored.uri.endswith(f"bundles/{stored.sha256[:2]}/{stored.sha256}")
    assert stored.uri.startswith("s3://" if not store.is_local else "/")
    assert store.has(stored.sha256)
    copy = store.get_dir(stored.sha256, tmp_path / "out" / "copy")
    assert _files(copy) == _files(bundle)
    assert not (copy / TREE_INDEX).exists()


def test_put_is_idempotent_and_content_addressed(
    store: ArtifactStore, make_bundle: Callable[..., Path]
) -> None:
    first = store.put_dir(make_bundle("same"))
    again = store.put_dir(make_bundle("same"))
    other = store.put_dir(make_bundle("other"))
    assert first == again
    assert other.sha256 != first.sha256
    index = json.loads(store.read_bytes(_stored_key(first.sha256, TREE_INDEX)))
    assert [f["path"] for f in index["files"]] == ["data/reference.csv", "model.bin", "vigil.json"]


def test_tampered_file_fails_loudly_and_leaves_nothing(
    store: ArtifactStore, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    sha = store.put_dir(make_bundle("a")).sha256
    store.write_bytes(_stored_key(sha, "model.bin"), b"weights of evil")
    dest = tmp_path / "copy"
    with pytest.raises(ArtifactCorruptError, match=r"'model.bin' does not match its digest"):
        store.get_dir(sha, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fetch")] == []


def test_tampered_index_fails_loudly(
    store: ArtifactStore, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    sha = store.put_dir(make_bundle("a")).sha256
    key = _stored_key(sha, TREE_INDEX)
    index = json.loads(store.read_bytes(key))
    index["files"] = index["files"][:-1]  # drop a file from the listing
    store.write_bytes(key, json.dumps(index).encode())
    with pytest.raises(ArtifactCorruptError, match="does not match its digest"):
        store.get_dir(sha, tmp_path / "copy")


def test_index_naming_a_path_outside_the_tree_is_refused(
    store: ArtifactStore, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    sha = store.put_dir(make_bundle("a")).sha256
    key = _stored_key(sha, TREE_INDEX)
    index = json.loads(store.read_bytes(key))
    index["files"][0]["path"] = "../../../../etc/passwd"
    store.write_bytes(key, json.dumps(index).encode())
    with pytest.raises(PathOutsideStoreError):
        store.get_dir(sha, tmp_path / "copy")


def test_missing_stored_file_is_reported(
    store: ArtifactStore, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    sha = store.put_dir(make_bundle("a")).sha256
    store.fs.rm_file(store.resolve_key(_stored_key(sha, "model.bin")))
    with pytest.raises(ArtifactCorruptError, match=r"missing its file 'model.bin'"):
        store.get_dir(sha, tmp_path / "copy")


def test_a_tree_without_its_commit_marker_is_invisible(
    store: ArtifactStore, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    sha = store.put_dir(make_bundle("a")).sha256
    store.fs.rm_file(store.resolve_key(_stored_key(sha, TREE_INDEX)))
    assert not store.has(sha)
    with pytest.raises(NotFoundError, match=f"artifact {sha} is not in the store"):
        store.get_dir(sha, tmp_path / "copy")
    assert store.put_dir(make_bundle("a")).sha256 == sha  # storing it again repairs it
    assert store.has(sha)


def test_delete(store: ArtifactStore, make_bundle: Callable[..., Path]) -> None:
    keep = store.put_dir(make_bundle("keep")).sha256
    gone = store.put_dir(make_bundle("gone")).sha256
    store.delete(gone)
    store.delete(gone)  # a second delete is a no-op
    assert not store.has(gone)
    assert not store.exists(_stored_key(gone, "model.bin"))
    assert store.has(keep)


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/etc/passwd", "a\\..\\b"])
def test_keys_leaving_the_root_are_refused(store: ArtifactStore, key: str) -> None:
    with pytest.raises(PathOutsideStoreError):
        store.write_bytes(key, b"x")
    with pytest.raises(PathOutsideStoreError):
        store.read_bytes(key)


@pytest.mark.parametrize("sha", ["../" * 3 + "x" * 55, "ABC", "g" * 64])
def test_malformed_digests_are_refused(store: ArtifactStore, sha: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError, match="is not a SHA-256 digest"):
        store.get_dir(sha, tmp_path / "x")
    with pytest.raises(InvalidNameError):
        store.delete(sha)


def test_write_and_read_plain_objects(store: ArtifactStore) -> None:
    store.write_bytes("reports/one.html", b"<p>1</p>")
    store.write_bytes("reports/one.html", b"<p>2</p>")
    assert store.read_bytes("reports/one.html") == b"<p>2</p>"
    assert store.exists("reports/one.html")
    with pytest.raises(NotFoundError, match=r"no artifact 'reports/two.html'"):
        store.read_bytes("reports/two.html")


def test_symlink_escaping_the_local_root_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s3cr3t")
    os.symlink(outside, tmp_path / "store" / "escape")
    with pytest.raises(PathOutsideStoreError, match="outside the artifact store"):
        store.read_bytes("escape/secret")
    with pytest.raises(PathOutsideStoreError):
        store.write_bytes("escape/planted", b"x")
    assert not (outside / "planted").exists()


def test_local_layout_and_private_staging(
    tmp_path: Path, make_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    seen: list[int] = []
    real_rename = os.rename

    def spy_rename(src: str | Path, dst: str | Path) -> None:
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        assert not Path(dst).exists()  # nothing is visible before the rename commits it
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy_rename)
    sha = store.put_dir(make_bundle("a")).sha256
    assert seen == [0o700]
    final = tmp_path / "store" / "bundles" / sha[:2] / sha
    assert sorted(p.name for p in final.iterdir()) == [
        TREE_INDEX,
        "data",
        "model.bin",
        "vigil.json",
    ]
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_a_failed_local_upload_leaves_nothing(
    tmp_path: Path, make_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    bundle = make_bundle("a")
    sha = tree_digest(list_tree(bundle))

    def broken_rename(src: str | Path, dst: str | Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError, match="disk full"):
        store.put_dir(bundle)
    assert not store.has(sha)
    assert list((tmp_path / "store" / "tmp").iterdir()) == []
    assert not (tmp_path / "store" / "bundles").exists() or not any(
        (tmp_path / "store" / "bundles").rglob("*.bin")
    )


def test_reserved_index_name_in_a_bundle_is_refused(
    store: ArtifactStore, make_bundle: Callable[..., Path]
) -> None:
    bundle = make_bundle("a")
    (bundle / TREE_INDEX).write_text("{}")
    with pytest.raises(BundleError, match="reserved file name"):
        store.put_dir(bundle)


def test_s3_objects_are_really_in_the_bucket(
    s3: S3Server, s3_url: str, make_bundle: Callable[..., Path]
) -> None:
    store = ArtifactStore(s3_url, s3_endpoint_url=s3.endpoint_url)
    sha = store.put_dir(make_bundle("a")).sha256
    prefix = s3_url.split("/", 3)[3]
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    keys = sorted(obj["Key"][len(prefix) + 1 :] for obj in listed["Contents"])
    base = f"bundles/{sha[:2]}/{sha}"
    assert keys == [
        f"{base}/{TREE_INDEX}",
        f"{base}/data/reference.csv",
        f"{base}/model.bin",
        f"{base}/vigil.json",
    ]
    body = s3.client().get_object(Bucket=s3.bucket, Key=f"{prefix}/{base}/model.bin")["Body"]
    assert body.read() == b"weights of a"


def test_a_bundle_changing_during_upload_is_refused_and_leaves_nothing(
    store: ArtifactStore, make_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vigil.storage.artifacts as artifacts

    bundle = make_bundle("a")
    sha = tree_digest(list_tree(bundle))

    def list_then_change(root: Path) -> list[TreeFile]:
        files = list_tree(root)
        (root / "model.bin").write_bytes(b"changed after hashing")
        return files

    monkeypatch.setattr(artifacts, "list_tree", list_then_change)
    with pytest.raises(BundleError, match="changed while being stored"):
        store.put_dir(bundle)
    assert not store.has(sha)
    assert not store.exists(f"bundles/{sha[:2]}/{sha}/vigil.json")
    assert not store.exists(f"bundles/{sha[:2]}/{sha}/data/reference.csv")


def test_a_tree_missing_files_is_not_complete_and_is_stored_again(
    store: ArtifactStore, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    # What a delete racing with an upload of the same content can leave on S3: the marker,
    # and not every file it lists.
    bundle = make_bundle("torn")
    stored = store.put_dir(bundle)
    assert store.has_complete(stored.sha256)
    store.fs.rm_file(store.resolve_key(_stored_key(stored.sha256, "model.bin")))
    assert store.has(stored.sha256) and not store.has_complete(stored.sha256)
    assert store.put_dir(bundle) == stored
    assert store.has_complete(stored.sha256)
    copy = store.get_dir(stored.sha256, tmp_path / "copy")
    assert _files(copy) == _files(bundle)
    store.delete(stored.sha256)
    assert not store.has_complete(stored.sha256)
