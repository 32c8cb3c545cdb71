"""``vigil capture erase``: after it, no byte of the capture directory, the feedback
directory, the artifact store (compacted partitions, chains) or the SQL database holds the
subject's value or its keyed hash; the other records are all there and every chain
verifies; a run killed in the middle leaves each file old or new, and the next run
completes the erasure."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.capture.chain import store_keys, verify_capture, verify_segments
from vigil.capture.compact import compact
from vigil.capture.erase import Subject
from vigil.capture.masking import Masker
from vigil.capture.sink import CaptureSink
from vigil.cli import app as cli
from vigil.errors import ValidationError
from vigil.monitor.summaries.store import summary_key

KEY = "erasure-test-key-0123456789abcdef"
SUBJECT = "ann.subject@example.com"
SUBJECT_BAND = "band-only-ann-holds"
OTHERS = [f"person{i}@example.org" for i in range(12)]
WHEN = datetime.now(UTC) - timedelta(days=1)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_CAPTURE_MASK", json.dumps({"email": "hash"}))
    monkeypatch.setenv("VIGIL_CAPTURE_HASH_KEY", KEY)
    reset_default()


def _predict(sink: CaptureSink, request_id: str, email: str, *, when: datetime = WHEN) -> None:
    sink.record_prediction(
        request_id=request_id,
        model="churn",
        version=1,
        time=when,
        features=[{"email": email, "age": 41, "city": "Lyon"}],
        predictions=[1],
    )


def _capture(vigil: Vigil) -> tuple[int, list[str]]:
    """Predictions of the subject and of others in compacted partitions (two days), in a
    closed segment and in a dead writer's segment, with feedback on some of each; returns
    the number of other records and the subject's request ids."""
    sink = CaptureSink.from_settings(vigil.capture_settings, vigil.settings.home)
    assert sink is not None
    ours: list[str] = []
    others = 0
    for day in (2, 1):
        for i, email in enumerate([SUBJECT, *OTHERS]):
            rid = f"d{day}-{i}"
            _predict(sink, rid, email, when=datetime.now(UTC) - timedelta(days=day))
            ours += [rid] if email == SUBJECT else []
            others += email != SUBJECT
        sink.log.rotate()
        compact(sink.log, vigil.artifacts)
    # A record compaction cannot store (a time that is no time) is quarantined, as is.
    hashed = Masker({"email": "hash"}, hash_key=KEY).hash_value(SUBJECT)
    odd = {"request_id": "odd", "row": 0, "time": "yesterday", "model": "churn"}
    sink.log.append([{**odd, "features": {"email": hashed, "age": 41}, "prediction": 1}])
    sink.log.rotate()
    assert compact(sink.log, vigil.artifacts).quarantined == 1
    ours.append("odd")
    # The monitor's stored summary of a part (a stand-in holding the value, as the
    # category counts of a hashed feature do).
    part = next(k for k in store_keys(vigil.artifacts, "capture") if k.endswith(".parquet"))
    vigil.artifacts.write_bytes(summary_key(part), hashed.encode())
    for i, email in enumerate([*OTHERS[:4], SUBJECT]):
        _predict(sink, f"seg-{i}", email)
    ours.append("seg-4")
    others += 4
    sink.log.rotate()
    feedback = vigil.feedback_store()
    try:
        # Feedback fields too: the subject's e-mail (hashed before it is stored, by the
        # capture's rule) and a value only the subject's feedback holds.
        labels = [
            {"request_id": r, "label": 1, "fields": {"email": SUBJECT, "band": SUBJECT_BAND}}
            if r in ours
            else {"request_id": r, "label": 1, "fields": {"band": "common"}}
            for r in [*ours, "d2-1", "d1-2", "seg-0"]
        ]
        labels = [x for x in labels if x["request_id"] != "odd"]
        assert feedback.submit(labels, admin=True).accepted == len(labels)
        feedback.log.rotate()
        feedback.compact()  # half the feedback compacted ...
        feedback.submit([{"request_id": "seg-1", "label": 0}], admin=True)
    finally:
        feedback.close()  # ... the rest in a closed segment
    return others, ours


def _files(vigil: Vigil) -> list[Path]:
    roots = [vigil.settings.home]  # capture, feedback, artifact store and the database
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def _traces(vigil: Vigil) -> list[str]:
    """Files that hold the subject's e-mail, plain or hashed (as text, or in the bytes of
    a compressed Parquet page: read back), or the subject's request ids."""
    hashed = Masker({"email": "hash"}, hash_key=KEY).hash_value(SUBJECT)
    needles = [SUBJECT.encode(), hashed.encode(), SUBJECT_BAND.encode()]
    found = []
    for path in _files(vigil):
        data = path.read_bytes()
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            data += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        if any(n in data for n in needles):
            found.append(str(path.relative_to(vigil.settings.home)))
    return found


def _all_verify(vigil: Vigil) -> None:
    home = vigil.settings.home
    for result in (
        verify_capture(vigil.artifacts, "capture"),
        verify_capture(vigil.artifacts, "feedback"),
        verify_segments(home / "capture", "capture"),
        verify_segments(home / "feedback", "feedback"),
    ):
        assert result.ok, result.problems


def _remaining(vigil: Vigil) -> tuple[int, int]:
    """Capture and feedback rows left, read back the way monitoring reads them."""
    from vigil.capture.reader import read_capture

    frame = read_capture(
        "churn", WHEN - timedelta(days=5), store=vigil.artifacts, log_dir=vigil.capture_dir
    )
    feedback = vigil.feedback_store()
    try:
        fed = feedback.read()
    finally:
        feedback.close()
    return len(frame), len(fed)


def _feedback(vigil: Vigil) -> Any:
    feedback = vigil.feedback_store()
    try:
        return feedback.read()
    finally:
        feedback.close()


def test_erase_leaves_no_trace_of_the_subject_and_the_rest_intact(env: None) -> None:
    vigil = Vigil()
    others, ours = _capture(vigil)
    assert _traces(vigil)  # the hash is everywhere before
    _all_verify(vigil)
    rows_before, fed_before = _remaining(vigil)
    assert rows_before == others + len(ours) - 1  # less the quarantined one
    fed = _feedback(vigil)
    hashed = Masker({"email": "hash"}, hash_key=KEY).hash_value(SUBJECT)
    assert set(fed["field.email"].dropna()) == {hashed}  # masked before it was stored
    assert set(fed["field.band"].dropna()) == {SUBJECT_BAND, "common"}

    out = CliRunner().invoke(cli, ["capture", "erase", "--where", f"email={SUBJECT}", "--json"])
    assert out.exit_code == 0, out.output
    done = json.loads(out.stdout)
    assert (done["records"], done["feedback_records"], done["complete"]) == (4, 3, True)
    assert done["fields"] == ["email"]

    assert _traces(vigil) == []
    _all_verify(vigil)
    assert _remaining(vigil) == (others, fed_before - 3)
    assert set(_feedback(vigil)["field.band"].dropna()) == {"common"}  # the others' fields kept
    verified = CliRunner().invoke(cli, ["capture", "verify"])
    assert verified.exit_code == 0, verified.output

    entry = next(e for e in vigil.registry.audit(None, limit=10) if e.action == "capture.erase")
    assert entry.after is not None and entry.after["records"] == 4
    assert entry.after["fields"] == ["email"] and entry.after["files"] == len(
        entry.after["file_names"]
    )
    # A second run finds nothing, and says so.
    again = CliRunner().invoke(cli, ["capture", "erase", "--where", f"email={SUBJECT}", "--json"])
    assert json.loads(again.stdout)["records"] == 0
    # Feedback about a prediction vigil never saw is found by its request id alone.
    feedback = vigil.feedback_store()
    try:
        assert feedback.submit([{"request_id": "ghost-9", "label": 0}], admin=True).unknown == 1
    finally:
        feedback.close()
    ghost = vigil.erase_subject({"request_id": "ghost-9"}, wait=0)
    assert (ghost.capture.records, ghost.feedback.records) == (0, 1)
    assert _remaining(vigil) == (others, fed_before - 3)


def test_a_feedback_field_names_a_subject_and_erases_the_predictions_it_labels(
    env: None,
) -> None:
    """``--where field.email=...``: the feedback items carrying the (hashed) value are
    found in the feedback log, and they and the predictions they label go, from parts,
    closed segments and quarantine alike."""
    vigil = Vigil()
    others, ours = _capture(vigil)
    feedback = vigil.feedback_store()
    try:
        # The quarantined prediction is labelled too: found through its feedback.
        odd = {"request_id": "odd", "label": 0, "fields": {"email": SUBJECT, "band": "common"}}
        assert feedback.submit([odd], admin=True).accepted == 1
    finally:
        feedback.close()
    rows_before, fed_before = _remaining(vigil)
    assert _traces(vigil)

    where = ["--where", f"field.email={SUBJECT}"]
    out = CliRunner().invoke(cli, ["capture", "erase", *where, "--json"])
    assert out.exit_code == 0, out.output
    done = json.loads(out.stdout)
    # d2-0 and d1-0 (parts), seg-4 (a closed segment), odd (quarantine): each labelled once.
    assert (done["records"], done["feedback_records"], done["complete"]) == (4, 4, True)
    assert done["fields"] == ["field.email"]

    assert _traces(vigil) == []  # the e-mail, its hash, the band only the subject's held
    _all_verify(vigil)
    assert _remaining(vigil) == (rows_before - 3, fed_before - 4) == (others, fed_before - 4)
    left = _feedback(vigil)
    assert not set(left["request_id"]) & set(ours)
    assert set(left["field.band"].dropna()) == {"common"}
    verified = CliRunner().invoke(cli, ["capture", "verify"])
    assert verified.exit_code == 0, verified.output
    entry = next(e for e in vigil.registry.audit(None, limit=10) if e.action == "capture.erase")
    assert entry.after is not None and entry.after["fields"] == ["field.email"]
    assert entry.after["records"] == 4 and entry.after["feedback_records"] == 4
    again = vigil.erase_subject({"field.email": SUBJECT}, wait=0)
    assert (again.capture.records, again.feedback.records) == (0, 0)
    # With a field feedback does not hold (a feature), there is nothing to find it by.
    with pytest.raises(ValidationError, match="name it by feedback fields"):
        vigil.erase_subject({"field.email": SUBJECT, "age": "41"}, wait=0)


def test_a_masked_field_cannot_name_a_subject_and_bad_input_is_one_line(env: None) -> None:
    with pytest.raises(Exception, match="captured with the 'mask' action"):
        Subject({"name": "Ann"}, Masker({"name": "mask"}))
    out = CliRunner().invoke(cli, ["capture", "erase", "--where", "email"])
    assert out.exit_code != 0 and "--where takes FIELD=VALUE" in out.output
    assert "Traceback" not in out.output


def test_live_segments_of_a_running_writer_are_left_and_reported(env: None) -> None:
    vigil = Vigil()
    sink = CaptureSink.from_settings(vigil.capture_settings, vigil.settings.home)
    assert sink is not None
    _predict(sink, "live-1", SUBJECT)  # this process holds the live segment open
    erase = ["capture", "erase", "--where", f"email={SUBJECT}", "--wait", "0.2"]
    out = CliRunner().invoke(cli, erase)  # no compactor here to honour the request
    assert out.exit_code == 1
    assert "1 matching records are in live segments that their servers did not" in out.output
    sink.log.rotate()
    out = CliRunner().invoke(cli, erase)
    assert out.exit_code == 0, out.output
    assert _traces(vigil) == []
    _all_verify(vigil)


CRASH = """
import os, sys
from vigil.app import Vigil
calls = 0
real = os.replace
def dying(src, dst, **kwargs):
    global calls
    # Only where an erased file takes its place (a part or a segment): its new content is
    # written and chained, the old one still there.
    if os.path.basename(str(dst)).startswith(("part-", "capture-", "feedback-")):
        calls += 1
        if calls == int(sys.argv[1]):
            os._exit(9)  # as kill -9: no cleanup, no finally
    return real(src, dst, **kwargs)
os.replace = dying
Vigil().erase_subject({sys.argv[3]: sys.argv[2]}, wait=0)
"""


@pytest.mark.parametrize(("field", "crash_at"), [("email", 1), ("email", 4), ("field.email", 2)])
def test_a_run_killed_in_the_middle_is_completed_by_the_next(
    env: None, field: str, crash_at: int
) -> None:
    """Named by a feedback field, the predictions go first (two parts, then segments):
    killed on the second part, the next run finds them again through the feedback."""
    vigil = Vigil()
    others, _ours = _capture(vigil)
    sink = CaptureSink.from_settings(vigil.capture_settings, vigil.settings.home)
    assert sink is not None
    _predict(sink, "x", SUBJECT)
    sink.log.rotate()  # a second closed segment with the subject
    if field.startswith("field."):
        feedback = vigil.feedback_store()
        try:
            fields = {"email": SUBJECT, "band": "common"}
            for rid in ("x", "odd"):  # the new prediction and the quarantined one labelled
                feedback.submit([{"request_id": rid, "label": 1, "fields": fields}], admin=True)
        finally:
            feedback.close()
    died = subprocess.run(
        [sys.executable, "-c", CRASH, str(crash_at), SUBJECT, field],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert died.returncode == 9, died.stderr
    # The new content of the file it died on waits beside the old one.
    assert [p for p in _files(vigil) if p.name.endswith(".erasing")]
    done = vigil.erase_subject({field: SUBJECT}, wait=0)
    assert done.complete  # what the killed run chained is moved into place first
    assert _traces(vigil) == []
    _all_verify(vigil)
    assert _remaining(vigil)[0] == others


def test_erase_while_a_real_server_captures(tmp_path: Path) -> None:
    """A server keeps answering (and capturing) while a person's rows are erased: its
    compactor closes its live segment on request, and the erasure then finds the rows
    there, in closed segments and in partitions."""
    import httpx
    import pyarrow.parquet as pq
    from tests.capture.conftest import _shop
    from tests.serving.conftest import SETTINGS, ServerThread, SklearnAdapter, shop_signature

    from vigil.bundle.model import LoadedBundle
    from vigil.capture.reader import read_capture
    from vigil.capture.settings import CaptureSettings
    from vigil.feedback.erase import erase_subject
    from vigil.serving.app import create_app
    from vigil.serving.capture_runtime import CaptureRuntime
    from vigil.serving.provider import StaticProvider
    from vigil.storage.artifacts import ArtifactStore

    shop, rows = _shop()
    provider = StaticProvider(
        [LoadedBundle(SklearnAdapter(shop), shop_signature(), name="shop", version=3)],
        settings=SETTINGS,
    )
    store = ArtifactStore(str(tmp_path / "artifacts"))
    settings = CaptureSettings(mask={"city": "hash"}, hash_key=KEY, compact_interval_s=0.2)
    runtime = CaptureRuntime.from_settings(settings, home=tmp_path, store=store)
    assert runtime is not None
    masker = Masker({"city": "hash"}, hash_key=KEY)
    hashed = masker.hash_value("nice")
    instances = rows.to_dict("records")
    with ServerThread(create_app(provider, capture=runtime)) as server:

        def predict(n: int) -> None:
            for i in range(n):
                r = httpx.post(
                    f"{server.url}/v1/models/shop/predict",
                    json={"instances": [instances[i % len(instances)]]},
                )
                assert r.status_code == 200

        predict(10)
        runtime.sink.log.rotate()  # some closed, soon compacted ...
        predict(10)  # ... and some live when the erasure starts
        subject = sum(instances[i % len(instances)]["city"] == "nice" for i in range(20))
        assert subject > 0
        done = erase_subject(
            {"city": "nice"},
            capture_dir=tmp_path / "capture",
            feedback_dir=tmp_path / "feedback",
            store=store,
            masker=masker,
            wait=10,
        )
        assert done.complete and done.capture.records == subject
        left = read_capture("shop", store=store, log_dir=tmp_path / "capture")
        assert len(left) == 20 - subject and hashed not in set(left["feature.city"])
        for path in tmp_path.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if path.suffix == ".parquet":
                    data += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
                assert hashed.encode() not in data, path
        assert verify_segments(tmp_path / "capture", "capture").ok
        assert verify_capture(store, "capture").ok
        predict(4)  # still serving and capturing
    assert len(read_capture("shop", store=store, log_dir=tmp_path / "capture")) == 24 - subject


def test_erase_from_partitions_in_s3(tmp_path: Path, s3_url: str, s3: object) -> None:
    """The same erasure on a real S3-compatible store: parts rewritten with one PUT each,
    re-chained, nothing of the subject left in any object."""
    from vigil.capture.log import SegmentLog
    from vigil.capture.reader import read_capture
    from vigil.feedback.erase import erase_subject
    from vigil.storage.artifacts import ArtifactStore

    store = ArtifactStore(s3_url, s3_endpoint_url=s3.endpoint_url)  # type: ignore[attr-defined]
    masker = Masker({"email": "hash"}, hash_key=KEY)
    sink = CaptureSink(SegmentLog(tmp_path / "capture"), masker=masker)
    for i, email in enumerate([SUBJECT, *OTHERS, SUBJECT]):
        _predict(sink, f"s3-{i}", email)
    sink.log.rotate()
    compact(sink.log, store)
    done = erase_subject(
        {"email": SUBJECT},
        capture_dir=tmp_path / "capture",
        feedback_dir=tmp_path / "feedback",
        store=store,
        masker=masker,
    )
    assert (done.capture.records, done.complete) == (2, True)
    assert verify_capture(store, "capture").ok
    hashed = masker.hash_value(SUBJECT).encode()
    import pyarrow.parquet as pq

    for key in store_keys(store, "capture") + store_keys(store, "quarantine"):
        data = store.read_bytes(key)
        if key.endswith(".parquet"):
            rows = pq.read_table(io.BytesIO(data)).to_pylist()
            data += json.dumps(rows, default=str).encode()
        assert hashed not in data and SUBJECT.encode() not in data, key
    left = read_capture("churn", store=store, log_dir=tmp_path / "capture")
    assert sorted(left["request_id"]) == sorted(f"s3-{i}" for i in range(1, len(OTHERS) + 1))


def test_a_passthrough_field_names_a_subject_in_records_and_partitions() -> None:
    import pyarrow as pa

    # An identifier sent beside the features (never to the model), hashed by its bare name.
    masker = Masker({"customer": "hash"}, hash_key="k")
    subject = Subject({"passthrough.customer": "c-7"}, masker)
    hashed = masker.hash_value("c-7")
    assert subject.record({"features": {}, "passthrough": {"customer": hashed}})
    assert not subject.record({"features": {"customer": hashed}, "passthrough": {}})
    table = pa.table({"passthrough.customer": [hashed, masker.hash_value("c-8"), None]})
    assert subject.table(table).to_pylist() == [True, False, False]
