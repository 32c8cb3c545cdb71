"""Chain manifests of the compacted log: untampered verifies, tampering is found where."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from vigil.capture.chain import CHAIN_DIR, verify_capture, verify_segments
from vigil.capture.compact import apply_retention, compact
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.storage.artifacts import ArtifactStore

OLD = datetime(2025, 3, 1, 12, tzinfo=UTC)
NEW = datetime(2025, 3, 20, 12, tzinfo=UTC)


def _captured(tmp_path: Path, store: ArtifactStore) -> list[str]:
    """Two segments compacted: churn on two dates, fraud on one."""
    sink = CaptureSink(SegmentLog(tmp_path / "log"))
    parts = []
    for batch, when in enumerate((OLD, NEW)):
        for model in ("churn", "fraud") if batch else ("churn",):
            sink.record_prediction(
                request_id=f"{model}-{batch}",
                model=model,
                version=1,
                time=when,
                features=np.random.default_rng(batch).normal(size=(3, 2)),
                feature_names=["a", "b"],
                predictions=np.arange(3),
                probabilities=np.full((3, 2), 0.5),
                classes=["no", "yes"],
            )
        sink.log.rotate()
        parts += compact(sink.log, store).parts
    return sorted(parts)


def _problems(store: ArtifactStore, model_dir: str | None = None) -> list[tuple[str, str]]:
    return [(p.problem, p.where) for p in verify_capture(store, model_dir=model_dir).problems]


def _tamper_and_check(store: ArtifactStore, parts: list[str]) -> None:
    result = verify_capture(store)
    assert result.ok, result.problems
    assert (result.groups, result.files, result.entries) == (["model=churn", "model=fraud"], 3, 3)
    _churn_old, churn_new, fraud = parts
    # edited
    store.write_bytes(churn_new, store.read_bytes(churn_new) + b"x")
    assert _problems(store) == [("edited", churn_new)]
    # deleted (and the edit undone by deleting the file: only the deletion is left)
    store.fs.rm(store.resolve_key(churn_new))
    assert _problems(store) == [("deleted", churn_new)]
    # inserted: a file no compaction wrote
    planted = "capture/model=fraud/date=2025-03-21/part-planted.parquet"
    store.write_bytes(planted, store.read_bytes(fraud))
    assert _problems(store, "model=fraud") == [("inserted", planted)]
    assert _problems(store, "model=churn") == [("deleted", churn_new)]


def test_untampered_capture_verifies_after_compaction_and_retention(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    parts = _captured(tmp_path, store)
    assert verify_capture(store).ok
    deleted = apply_retention(store, 10, now=NEW + timedelta(days=1))
    assert len(deleted) == 1 and "date=2025-03-01" in deleted[0]
    result = verify_capture(store)
    assert result.ok, result.problems
    assert (result.files, result.entries) == (2, 4)
    # and a partition removed without retention's entry is found
    store.fs.rm(store.resolve_key(parts[1]))
    assert _problems(store) == [("deleted", parts[1])]


def test_edited_deleted_and_inserted_files_are_found_locally(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    _tamper_and_check(store, _captured(tmp_path, store))


def test_edited_deleted_and_inserted_files_are_found_on_s3(
    tmp_path: Path, s3_url: str, s3: object
) -> None:
    store = ArtifactStore(s3_url, s3_endpoint_url=s3.endpoint_url)  # type: ignore[attr-defined]
    _tamper_and_check(store, _captured(tmp_path, store))


@pytest.mark.parametrize("line", [1, 2])
def test_an_edited_or_deleted_manifest_line_breaks_the_chain(tmp_path: Path, line: int) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    _captured(tmp_path, store)
    (manifest,) = store.fs.glob(store.resolve_key(f"capture/{CHAIN_DIR}/model=churn/*.jsonl"))
    key = manifest[len(store.root) + 1 :]
    lines = store.read_bytes(key).splitlines()
    # hiding a deletion: drop the entry that added the part, or change its digest
    edited = lines[line - 1].replace(b'"sha256":"', b'"sha256":"0')
    store.write_bytes(key, b"\n".join([*lines[: line - 1], edited, *lines[line:]]) + b"\n")
    assert _problems(store, "model=churn") == [("chain_edited", f"{key}:{line}")]
    store.write_bytes(key, b"\n".join(lines[1:]) + b"\n")
    assert _problems(store, "model=churn") == [("chain_broken", f"{key}:1")]


def test_the_cli_says_what_is_wrong_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from vigil.app import reset_default
    from vigil.cli import app as cli

    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    reset_default()
    try:
        from vigil.app import default

        store = default().artifacts
        parts = _captured(tmp_path, store)
        runner = CliRunner()
        ok = runner.invoke(cli, ["capture", "verify"])
        assert ok.exit_code == 0, ok.output
        assert "capture intact: 3 files, 3 chain entries" in ok.stdout
        store.fs.rm(store.resolve_key(parts[2]))
        assert runner.invoke(cli, ["capture", "verify", "churn"]).exit_code == 0
        broken = runner.invoke(cli, ["capture", "verify", "fraud"])
        assert broken.exit_code == 1
        assert f"deleted {parts[2]}: {parts[2]} is missing" in broken.stderr
        report = json.loads(runner.invoke(cli, ["capture", "verify", "--json"]).stdout)
        assert report["ok"] is False
        assert [r["root"] for r in report["roots"]][:2] == ["capture", "feedback"]
        assert report["roots"][0]["problems"][0]["where"] == parts[2]
    finally:
        reset_default()


def _closed_segments(directory: Path, n: int) -> SegmentLog:
    log = SegmentLog(directory)
    for i in range(n):
        log.append([{"request_id": f"r{i}", "i": i}])
        log.rotate()
    return log


def test_segments_chain_when_closed_and_when_compaction_replaces_them(tmp_path: Path) -> None:
    sink = CaptureSink(SegmentLog(tmp_path / "log"))
    for i, when in enumerate((OLD, NEW)):
        sink.record_prediction(
            request_id=f"r{i}",
            model="churn",
            version=1,
            time=when,
            features=np.zeros((1, 2)),
            feature_names=["a", "b"],
            predictions=np.arange(1),
        )
        sink.log.rotate()
    before = verify_segments(sink.log.directory, "capture")
    assert before.ok and (before.files, before.entries) == (2, 2)
    compact(sink.log, ArtifactStore(str(tmp_path / "store")))
    after = verify_segments(sink.log.directory, "capture")
    assert after.ok and (after.files, after.entries) == (0, 4)
    # a dead writer's segment, closed by whoever looks next, is recorded too
    dead = sink.log.directory / "capture-host-1-2-3.open"
    dead.write_bytes(b"torn")
    assert len(sink.log.closed_segments()) == 1
    assert verify_segments(sink.log.directory, "capture").ok


def test_edited_deleted_and_inserted_segments_are_found(tmp_path: Path) -> None:
    log = _closed_segments(tmp_path, 3)
    first, second, third = (p.name for p in log.closed_segments())
    (tmp_path / first).write_bytes((tmp_path / first).read_bytes().replace(b"r0", b"r9"))
    (tmp_path / second).unlink()
    (tmp_path / "capture-planted-1-1-1.seg").write_bytes((tmp_path / third).read_bytes())
    found = verify_segments(tmp_path, "capture")
    assert [(p.problem, p.where) for p in found.problems] == [
        ("inserted", "capture-planted-1-1-1.seg"),
        ("edited", first),
        ("deleted", second),
    ]


def test_writers_of_one_directory_never_fork_the_segment_chain(tmp_path: Path) -> None:
    start = threading.Barrier(4)

    def write() -> None:
        start.wait()
        _closed_segments(tmp_path, 10)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify_segments(tmp_path, "capture")
    assert result.ok, result.problems
    assert (result.files, result.entries) == (40, 40)
