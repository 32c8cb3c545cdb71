"""Encryption at rest of the inference log: keys, tampering, missing keys, mixed logs,
rotation end to end through the CLI, and a real S3-compatible store."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vigil.app import reset_default
from vigil.capture.chain import verify_capture, verify_segments
from vigil.capture.compact import compact
from vigil.capture.crypt import KeyRing, LogCodec, new_key_line, read_log_bytes, stored_bytes
from vigil.capture.log import SegmentLog, read_segment
from vigil.capture.reader import read_capture
from vigil.capture.rekey import rekey_log
from vigil.capture.scan import scan_capture
from vigil.capture.sink import CaptureSink
from vigil.cli import app
from vigil.errors import ConfigurationError, LogIntegrityError
from vigil.storage.artifacts import ArtifactStore

runner = CliRunner()
SECRET_CITY = "zanzibar-7f3a"
SECRET_NUMBER = 31337.4242


@pytest.fixture(autouse=True)
def _fresh_root() -> Iterator[None]:
    """The CLI's composition root is per process: each test reads its own settings."""
    reset_default()
    yield
    reset_default()


def _ring(*ids: str) -> KeyRing:
    return KeyRing.parse("\n".join(new_key_line(i) for i in ids))


def _log(tmp: Path, codec: LogCodec | None) -> tuple[SegmentLog, ArtifactStore]:
    store = ArtifactStore(str(tmp / "store"))
    store.log_codec = codec
    return SegmentLog(tmp / "capture", codec=codec), store


def _traffic(log: SegmentLog, n: int = 5, prefix: str = "r") -> None:
    sink = CaptureSink(log)
    for i in range(n):
        sink.record_prediction(
            request_id=f"{prefix}{i}",
            model="churn",
            version=1,
            features=[{"city": SECRET_CITY, "amount": SECRET_NUMBER + i}],
            predictions=np.array([i % 2]),
            time=datetime(2026, 12, 1, 10, i, tzinfo=UTC),
        )


def _plaintext_files(root: Path) -> list[Path]:
    packed = struct.pack("<d", SECRET_NUMBER)
    return [
        p
        for p in root.rglob("*")
        if p.is_file()
        and any(s in p.read_bytes() for s in (SECRET_CITY.encode(), b"31337.42", packed))
    ]


# -- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1:" + base64.b64encode(bytes(16)).decode(), "the key is 16 bytes; AES-256 needs 32"),
        ("k1:not base64!", "the key is not base64"),
        ("no colon here", "write ID:KEY"),
        ("bad id!:" + base64.b64encode(bytes(32)).decode(), "write ID:KEY"),
        ("# only a comment\n", "holds no key"),
    ],
)
def test_bad_key_files_are_named_without_key_material(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as error:
        KeyRing.parse(text)
    assert "not base64!" not in str(error.value) and "AAAA" not in str(error.value)


def test_duplicate_ids_and_repr_never_shows_keys(tmp_path: Path) -> None:
    line = new_key_line("a")
    with pytest.raises(ConfigurationError, match="key id 'a' appears twice"):
        KeyRing.parse(f"{line}\n{line}")
    ring = KeyRing.parse(f"{line}\n{new_key_line('b')}")
    assert ring.ids == ["a", "b"] and line.split(":")[1] not in repr(LogCodec(ring))


def test_a_bad_key_file_stops_the_cli_with_one_line(tmp_path: Path, vigil_home: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("k1:c2hvcnQ=\n")
    env = {**os.environ, "VIGIL_CAPTURE_ENCRYPTION_KEY_FILE": str(keys)}
    result = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "capture", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 1 (key 'k1'): the key is 5 bytes" in lines[0]
    assert "c2hvcnQ" not in result.stderr + result.stdout


# -- what is written ----------------------------------------------------------------------


def test_segments_parts_and_quarantine_hold_no_plaintext(tmp_path: Path) -> None:
    codec = LogCodec(_ring("k1"))
    log, store = _log(tmp_path, codec)
    _traffic(log)
    # A record that cannot be a row goes to quarantine: it must be encrypted too.
    log.append([{"request_id": "q", "time": "not a time", "model": "churn", "x": SECRET_CITY}])
    live = log.live_segments()[0]
    assert read_segment(live, codec)[0][0]["features"]["city"] == SECRET_CITY
    assert _plaintext_files(tmp_path) == []
    log.rotate()
    done = compact(log, store)
    assert (done.rows, done.quarantined) == (5, 1)
    _traffic(log, 2, prefix="s")  # and a live segment beside the parts
    assert _plaintext_files(tmp_path) == []
    frame = read_capture("churn", store=store, log_dir=log.directory)
    assert sorted(frame["request_id"]) == ["r0", "r1", "r2", "r3", "r4", "s0", "s1"]
    assert set(frame["feature.city"]) == {SECRET_CITY}
    scanned = scan_capture("churn", store=store, log_dir=log.directory, columns=["request_id"])
    assert sum(b.num_rows for b in scanned.batches()) == 7
    assert verify_capture(store, "capture").ok and verify_segments(log.directory, "capture").ok


def test_the_same_answers_as_a_plain_log(tmp_path: Path) -> None:
    plain_log, plain_store = _log(tmp_path / "plain", None)
    secret_log, secret_store = _log(tmp_path / "secret", LogCodec(_ring("k1")))
    frames = []
    for log, store in ((plain_log, plain_store), (secret_log, secret_store)):
        _traffic(log, 8)
        log.rotate()
        compact(log, store)
        _traffic(log, 3, prefix="s")
        frame = read_capture("churn", store=store, log_dir=log.directory)
        frames.append(frame.drop(columns=["segment"]))
    assert frames[0].equals(frames[1])


# -- tampering and keys -------------------------------------------------------------------


def test_a_flipped_byte_in_a_segment_is_named(tmp_path: Path) -> None:
    codec = LogCodec(_ring("k1"))
    log, _store = _log(tmp_path, codec)
    _traffic(log, 3)
    path = log.rotate()
    assert path is not None
    data = bytearray(path.read_bytes())
    second = data.index(b"\n") + 1
    data[second + 40] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(LogIntegrityError, match=rf"segment .*, byte {second}: the record fails"):
        read_segment(path, codec)


def test_reordered_and_moved_records_fail(tmp_path: Path) -> None:
    codec = LogCodec(_ring("k1"))
    log, _store = _log(tmp_path, codec)
    _traffic(log, 2)
    first = log.rotate()
    _traffic(log, 1, prefix="x")
    other = log.rotate()
    assert first is not None and other is not None
    lines = first.read_bytes().splitlines(keepends=True)
    first.write_bytes(lines[1] + lines[0])  # two records swapped
    with pytest.raises(LogIntegrityError, match="byte 0: the record fails authentication"):
        read_segment(first, codec)
    other.write_bytes(other.read_bytes() + lines[0])  # a record moved to another segment
    with pytest.raises(LogIntegrityError, match="fails authentication"):
        read_segment(other, codec)
    first.write_bytes(b'00000000 {"request_id": "forged"}\n' + lines[0] + lines[1])
    with pytest.raises(LogIntegrityError, match="an encrypted record after plain ones"):
        read_segment(first, codec)


def test_a_torn_last_line_is_counted_not_raised(tmp_path: Path) -> None:
    codec = LogCodec(_ring("k1"))
    log, _store = _log(tmp_path, codec)
    _traffic(log, 2)
    path = log.rotate()
    assert path is not None
    path.write_bytes(path.read_bytes()[:-30])  # the writer died inside its last write()
    records, torn = read_segment(path, codec)
    assert [r["request_id"] for r in records] == ["r0"] and torn == 1


def test_a_flipped_byte_in_a_part_is_named(tmp_path: Path) -> None:
    codec = LogCodec(_ring("k1"))
    log, store = _log(tmp_path, codec)
    _traffic(log)
    log.rotate()
    (key,) = compact(log, store).parts
    full = Path(store.resolve_key(key))
    data = bytearray(full.read_bytes())
    data[len(data) // 2] ^= 0x10
    full.write_bytes(bytes(data))
    with pytest.raises(LogIntegrityError, match=r"model=churn/date=2026-12-01/part-.*: chunk 0"):
        read_capture("churn", store=store)


def test_a_missing_key_names_its_id(tmp_path: Path) -> None:
    log, store = _log(tmp_path, LogCodec(_ring("old")))
    _traffic(log)
    log.rotate()
    compact(log, store)
    _traffic(log, 1, prefix="s")
    store.log_codec = LogCodec(_ring("new"))
    with pytest.raises(LogIntegrityError, match="encrypted under key 'old', which is not in"):
        read_capture("churn", store=store)
    elsewhere = ArtifactStore(str(tmp_path / "empty"))
    elsewhere.log_codec = store.log_codec
    with pytest.raises(LogIntegrityError, match=r"segment .* encrypted under key 'old', which"):
        read_capture("churn", log_dir=log.directory, store=elsewhere)
    store.log_codec = None
    with pytest.raises(LogIntegrityError, match="no VIGIL_CAPTURE_ENCRYPTION_KEY_FILE is set"):
        read_capture("churn", store=store)


# -- mixed logs and rotation --------------------------------------------------------------


def test_plain_files_stay_readable_and_rekey_encrypts_them(tmp_path: Path) -> None:
    log, store = _log(tmp_path, None)
    _traffic(log, 4)
    log.rotate()
    compact(log, store)
    _traffic(log, 2, prefix="p")
    log.rotate()  # a closed plain segment, not compacted
    codec = LogCodec(_ring("k1"))
    log, store = _log(tmp_path, codec)  # encryption turned on
    _traffic(log, 2, prefix="e")
    log.rotate()
    assert sorted(read_capture("churn", store=store, log_dir=log.directory)["request_id"]) == [
        "e0", "e1", "p0", "p1", "r0", "r1", "r2", "r3"
    ]  # fmt: skip
    assert _plaintext_files(tmp_path) != []
    done = rekey_log(log.directory, "capture", store, "capture", codec)
    assert len(done.rewritten) == 2 and done.current == 1  # the plain part and segment
    assert _plaintext_files(tmp_path) == []
    assert verify_capture(store, "capture").ok and verify_segments(log.directory, "capture").ok
    assert len(read_capture("churn", store=store, log_dir=log.directory)) == 8


def test_rotation_end_to_end_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vigil_home: Path
) -> None:
    keys = tmp_path / "keys.txt"
    made = runner.invoke(app, ["capture", "keygen", "k1", "--file", str(keys)])
    assert made.exit_code == 0, made.output
    assert keys.stat().st_mode & 0o777 == 0o600 and keys.read_text() not in made.output
    monkeypatch.setenv("VIGIL_CAPTURE_ENCRYPTION_KEY_FILE", str(keys))
    monkeypatch.setenv("VIGIL_CAPTURE_COMPACT_INTERVAL_S", "0.5")
    old = LogCodec(KeyRing.from_file(keys))
    log, store = _log(vigil_home, old)
    store = ArtifactStore(str(vigil_home / "artifacts"))
    store.log_codec = old
    _traffic(log, 4)
    log.rotate()
    compact(log, store)
    _traffic(log, 2, prefix="s")
    log.rotate()
    summary = "summaries/model=churn/date=2026-12-01/part-x.g3600.summary"
    store.write_bytes(summary, stored_bytes(store, summary, SECRET_CITY.encode()))
    # The new key first, the servers restarted with it, then every file rewritten under it.
    assert runner.invoke(app, ["capture", "keygen", "k2", "--file", str(keys)]).exit_code == 0
    assert KeyRing.from_file(keys).ids == ["k2", "k1"]
    result = runner.invoke(app, ["capture", "rekey", "--wait", "0", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["key"], len(out["rewritten"]), out["live"]) == ("key 'k2'", 3, [])
    assert summary in out["rewritten"] and store.read_bytes(summary)[5:8] == b"\x02k2"
    again = json.loads(runner.invoke(app, ["capture", "rekey", "--wait", "0", "--json"]).stdout)
    assert (again["rewritten"], again["current"]) == ([], 3)
    # The old key dropped: everything still reads, and the chains still hold.
    keys.write_text(keys.read_text().splitlines()[0] + "\n")
    store.log_codec = LogCodec(KeyRing.from_file(keys))
    assert read_log_bytes(store, summary) == SECRET_CITY.encode()
    assert len(read_capture("churn", store=store, log_dir=log.directory)) == 6
    verified = runner.invoke(app, ["capture", "verify", "--json"])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"], verified.output
    trail = json.loads(runner.invoke(app, ["audit", "show", "--json"]).stdout)
    rekeyed = [a["after"] for a in trail if a["action"] == "capture.rekey"]
    assert sorted((a["key_id"], a["rewritten"]) for a in rekeyed) == [("k2", 0), ("k2", 3)]


def test_rekey_without_a_key_file_is_one_line(vigil_home: Path) -> None:
    result = runner.invoke(app, ["capture", "rekey"])
    assert result.exit_code == 1
    assert "set VIGIL_CAPTURE_ENCRYPTION_KEY_FILE" in result.output
    assert "Traceback" not in result.output


# -- S3 -----------------------------------------------------------------------------------


@pytest.mark.s3
def test_an_encrypted_log_on_s3(tmp_path: Path, s3_url: str, s3) -> None:
    codec = LogCodec(_ring("k1"))
    store = ArtifactStore(s3_url, s3_endpoint_url=s3.endpoint_url)
    store.log_codec = codec
    log = SegmentLog(tmp_path / "capture", codec=codec)
    _traffic(log, 6)
    log.rotate()
    parts = compact(log, store).parts
    assert parts
    for key in parts:
        data = store.read_bytes(key)
        assert data[:5] == b"VGLE1" and SECRET_CITY.encode() not in data
    frame = read_capture("churn", store=store)
    assert sorted(frame["request_id"]) == [f"r{i}" for i in range(6)]
    scanned = scan_capture("churn", store=store, columns=["feature.amount"])
    values = sorted(v for b in scanned.batches() for v in b.column(0).to_pylist())
    assert values == [SECRET_NUMBER + i for i in range(6)]
    assert verify_capture(store, "capture").ok


def test_a_ray_backfill_refuses_an_encrypted_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vigil_home: Path
) -> None:
    from vigil.app import Vigil
    from vigil.batch.backfill import backfill
    from vigil.errors import InvalidParameterError
    from vigil.settings import load_settings

    keys = tmp_path / "keys"
    keys.write_text(new_key_line("k1"))
    monkeypatch.setenv("VIGIL_CAPTURE_ENCRYPTION_KEY_FILE", str(keys))
    with pytest.raises(InvalidParameterError, match="Ray workers do not get its keys"):
        backfill(Vigil(load_settings(home=vigil_home)), "churn", engine="ray")
