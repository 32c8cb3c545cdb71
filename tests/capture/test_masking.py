"""PII masking: masked, hashed (keyed HMAC) or dropped before anything is written."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson
import pytest

from vigil.capture.log import SegmentLog
from vigil.capture.masking import Masker
from vigil.capture.reader import read_capture
from vigil.capture.settings import CaptureSettings
from vigil.capture.sink import CaptureSink
from vigil.errors import ConfigurationError

SECRET_EMAIL = "ann.secret@example.org"


def _capture(tmp_path: Path, key: str) -> tuple[CaptureSink, list[str]]:
    settings = CaptureSettings(
        dir=tmp_path / key, mask={"email": "hash", "name": "mask", "ssn": "drop"}, hash_key=key
    )
    sink = CaptureSink.from_settings(settings, tmp_path)
    assert sink is not None
    sink.record_prediction(
        request_id="r1",
        model="m",
        version=1,
        predictions=[1, 0],
        features={
            "email": [SECRET_EMAIL, "bob@example.org"],
            "name": ["Ann", "Bob"],
            "ssn": ["123-45-6789", "987-65-4321"],
            "age": [41, 35],
        },
    )
    sink.record_failure(
        request_id="r2",
        model="m",
        status=422,
        error_code="validation_error",
        error_message="bad",
        body=orjson.dumps([{"email": SECRET_EMAIL, "age": "x"}]),
    )
    sink.record_failure(
        request_id="r3",
        model="m",
        status=400,
        error_code="malformed_request",
        error_message="bad",
        body=b"email=" + SECRET_EMAIL.encode(),
    )
    frame = read_capture("m", log_dir=sink.log.directory)
    return sink, list(frame.to_dict("records"))


def test_values_never_reach_the_file(tmp_path: Path) -> None:
    sink, rows = _capture(tmp_path, "key-one")
    raw = b"".join(p.read_bytes() for p in sink.log.all_segments())
    for secret in (SECRET_EMAIL, "Ann", "123-45-6789", "987-65-4321"):
        assert secret.encode() not in raw
    assert rows[0]["feature.name"] == "***"
    assert "feature.ssn" not in rows[0]
    assert rows[0]["feature.age"] == 41
    expected = hmac.new(b"key-one", orjson.dumps(SECRET_EMAIL), hashlib.sha256).hexdigest()
    assert rows[0]["feature.email"] == expected
    assert orjson.loads(rows[2]["raw_body"]) == [{"email": expected, "age": "x"}]
    assert rows[3]["raw_body"].startswith("<withheld")


def test_hash_is_stable_per_key_and_differs_across_keys(tmp_path: Path) -> None:
    _, first = _capture(tmp_path, "key-one")
    _, again = _capture(tmp_path / "again", "key-one")
    _, other = _capture(tmp_path, "key-two")
    assert first[0]["feature.email"] == again[0]["feature.email"]
    assert first[0]["feature.email"] != other[0]["feature.email"]
    assert first[0]["feature.email"] != first[1]["feature.email"]


def test_hash_needs_a_key_and_the_key_is_never_shown() -> None:
    with pytest.raises(ConfigurationError, match="VIGIL_CAPTURE_HASH_KEY"):
        Masker({"email": "hash"})
    with pytest.raises(ConfigurationError, match="'mask', 'hash' or 'drop'"):
        Masker({"email": "scramble"})
    settings = CaptureSettings(mask={"email": "hash"}, hash_key="do-not-print-me")
    masker = Masker(
        settings.mask, hash_key=settings.hash_key.get_secret_value() if settings.hash_key else None
    )
    assert "do-not-print-me" not in repr(settings) + repr(masker) + str(settings.model_dump())


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIGIL_CAPTURE_FSYNC", "interval")
    monkeypatch.setenv("VIGIL_CAPTURE_MASK", '{"email": "drop"}')
    monkeypatch.setenv("VIGIL_CAPTURE_RETENTION_DAYS", "7")
    settings = CaptureSettings()
    assert (settings.fsync, settings.mask, settings.retention_days) == (
        "interval",
        {"email": "drop"},
        7,
    )
    assert settings.resolved_dir(tmp_path) == tmp_path / "capture"
    monkeypatch.setenv("VIGIL_CAPTURE_ENABLED", "false")
    assert CaptureSink.from_settings(CaptureSettings(), tmp_path) is None


def test_sink_masks_prepared_records_too(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from vigil.capture.record import CaptureRecord

    sink = CaptureSink(SegmentLog(tmp_path), masker=Masker({"email": "mask"}))
    sink.record(
        [CaptureRecord("r", 0, datetime.now(UTC), "v2", "m", 1, features={"email": SECRET_EMAIL})]
    )
    assert SECRET_EMAIL.encode() not in b"".join(p.read_bytes() for p in sink.log.all_segments())


def test_a_rejected_body_too_large_to_mask_is_withheld_but_logged(tmp_path: Path) -> None:
    # Masking means parsing and copying the whole body, to keep 2 KB of it: past 256 KiB
    # only its size is kept. The record itself (status, error) is logged all the same.
    sink = CaptureSink(SegmentLog(tmp_path), masker=Masker({"email": "mask"}))
    large = orjson.dumps({"instances": [{"email": SECRET_EMAIL, "n": i} for i in range(20_000)]})
    assert len(large) > 256 * 1024
    sink.record_failure(
        request_id="big", status=422, error_code="validation_error", error_message="no", body=large
    )
    sink.record_failure(
        request_id="small",
        status=422,
        error_code="validation_error",
        error_message="no",
        body=b'{"email": "' + SECRET_EMAIL.encode() + b'"}',
    )
    rows = {r["request_id"]: r for r in read_capture(log_dir=sink.log.directory).to_dict("records")}
    assert rows["big"]["status"] == 422 and rows["big"]["raw_body"].startswith(
        "<withheld: a body longer than 262144 characters is not masked"
    )
    assert rows["small"]["raw_body"] == '{"email":"***"}'
    assert SECRET_EMAIL.encode() not in b"".join(p.read_bytes() for p in sink.log.all_segments())


def test_without_masking_a_large_rejected_body_keeps_its_start(tmp_path: Path) -> None:
    sink = CaptureSink(SegmentLog(tmp_path), raw_body_limit=100)
    body = "é" * 5_000_000  # 10 MB of two-byte characters: only the kept start is decoded
    sink.record_failure(
        request_id="r",
        status=413,
        error_code="payload_too_large",
        error_message="no",
        body=body.encode(),
    )
    (row,) = read_capture(log_dir=sink.log.directory).to_dict("records")
    assert row["raw_body"] == "é" * 99 + "…"
