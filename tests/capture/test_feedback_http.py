"""Feedback over HTTP (single, batch, duplicate, unknown, late, wrong type, listeners) and
``vigil feedback FILE``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.capture.conftest import Captured
from tests.serving.conftest import CLF_FEATURES, ServerThread, SklearnAdapter, clf_signature
from typer.testing import CliRunner

from vigil.bundle.model import LoadedBundle
from vigil.capture.log import SegmentLog
from vigil.capture.settings import CaptureSettings
from vigil.capture.sink import CaptureSink
from vigil.errors import ValidationError
from vigil.feedback import FeedbackStore
from vigil.feedback.record import MatchedFeedback
from vigil.serving.app import create_app
from vigil.serving.provider import StaticProvider


def _predict(captured: Captured, rows: int = 1) -> str:
    rid = uuid.uuid4().hex
    instances = [dict(zip(CLF_FEATURES, r.tolist(), strict=True)) for r in captured.X[:rows]]
    r = httpx.post(
        f"{captured.url}/v1/models/clf/predict",
        json={"instances": instances},
        headers={"x-request-id": rid},
    )
    assert r.status_code == 200
    return rid


def _feedback(captured: Captured, body: Any) -> httpx.Response:
    return httpx.post(f"{captured.url}/v1/feedback", json=body, timeout=30)


def _stored(captured: Captured) -> pd.DataFrame:
    feedback = captured.runtime.feedback
    assert feedback is not None
    return feedback.read()


def test_single_feedback_is_stored_and_joined(captured: Captured) -> None:
    rid = _predict(captured)
    r = _feedback(captured, {"request_id": rid, "label": 1})
    assert r.status_code == 200
    assert r.json() == {
        "accepted": 1,
        "duplicates": 0,
        "unknown": 0,
        "late": 0,
        "unknown_request_ids": [],
    }
    stored = _stored(captured)
    mine = stored[stored["request_id"] == rid]
    assert list(mine["label"]) == [1] and list(mine["row"]) == [0]


def test_batch_counts_duplicates_and_unknown_ids(captured: Captured) -> None:
    two_rows = _predict(captured, rows=2)
    other = _predict(captured)
    ghost = "never-predicted-" + uuid.uuid4().hex[:8]
    body = {
        "feedback": [
            {"request_id": two_rows, "row": 0, "label": 0},
            {"request_id": two_rows, "row": 1, "reward": 0.25},
            {"request_id": two_rows, "row": 1, "reward": 0.75},  # repeat within the batch
            {"request_id": two_rows, "row": 2, "label": 1},  # that request had 2 rows
            {"request_id": other, "reward": True},
            {"request_id": ghost, "label": "yes"},
        ]
    }
    r = _feedback(captured, body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "accepted": 5,
        "duplicates": 1,
        "unknown": 2,
        "late": 0,
        "unknown_request_ids": sorted([two_rows, ghost]),
    }
    again = _feedback(captured, {"request_id": other, "reward": 0.0})
    assert again.json()["duplicates"] == 1 and again.json()["accepted"] == 0
    stored = _stored(captured).set_index(["request_id", "row"])
    assert stored.loc[(two_rows, 1), "reward"] == 0.25  # the first one wins
    assert stored.loc[(other, 0), "reward"] == 1.0  # a click counts as 1
    assert stored.loc[(ghost, 0), "label"] == "yes"  # unknown ids are kept: they may join later


def test_invalid_items_fail_the_whole_batch_naming_each(captured: Captured) -> None:
    rid = _predict(captured)
    before = len(_stored(captured))
    body = {
        "feedback": [
            {"request_id": rid, "label": 1},
            {"request_id": rid, "reward": "1"},
            {"request_id": rid, "label": {"nested": True}},
            {"request_id": "bad id!", "label": 1},
        ]
    }
    r = _feedback(captured, body)
    assert r.status_code == 422
    problem = r.json()
    assert problem["error"] == "validation_error"
    assert problem["message"].startswith("feedback item 1: ")
    assert "reward must be a finite number" in problem["message"]
    errors = problem["detail"]["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (1, "reward"),
        (2, "label"),
        (3, "request_id"),
    ]
    assert len(_stored(captured)) == before  # nothing stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([{"request_id": "a", "label": 1}], None),
        ({"feedback": []}, "feedback"),
        ({"feedback": [{"request_id": "a", "label": 1}], "extra": 1}, "extra"),
        ({"request_id": "a", "label": 1, "time": "2025-01-01T00:00:00+00:00"}, "time"),
        ({"request_id": "a"}, "label"),
    ],
)
def test_malformed_bodies_are_422(captured: Captured, body: Any, field: str | None) -> None:
    r = _feedback(captured, body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["field"] == field


def test_not_json_is_400(captured: Captured) -> None:
    r = httpx.post(
        f"{captured.url}/v1/feedback",
        content=b"request_id=a",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"] == "malformed_request"


def test_late_feedback_and_another_writers_prediction(captured: Captured) -> None:
    """A prediction logged three days ago by another process (its own segment, not yet
    compacted) is found, and feedback for it counts as late."""
    other_worker = CaptureSink(SegmentLog(captured.capture_dir))
    rid = "old-" + uuid.uuid4().hex[:8]
    other_worker.record_prediction(
        request_id=rid,
        model="clf",
        version=1,
        features=np.zeros((1, 2)),
        feature_names=["a", "b"],
        predictions=[1],
        time=datetime.now(UTC) - timedelta(days=3),
    )
    r = _feedback(captured, {"request_id": rid, "label": 0})
    assert r.json() == {
        "accepted": 1,
        "duplicates": 0,
        "unknown": 0,
        "late": 1,
        "unknown_request_ids": [],
    }
    other_worker.close()


def test_compacted_predictions_are_found(captured: Captured) -> None:
    rid = _predict(captured)
    captured.runtime.sink.log.rotate()
    assert captured.runtime.compactor is not None
    done = captured.runtime.compactor.run_once()
    assert done is not None and done.capture.rows >= 1
    assert not any(p.suffix == ".seg" for p in captured.capture_dir.iterdir())
    r = _feedback(captured, {"request_id": rid, "reward": 2.5})
    assert r.json()["unknown"] == 0 and r.json()["accepted"] == 1


def test_listeners_get_endpoint_variant_and_reward(captured: Captured) -> None:
    rid = "exp-" + uuid.uuid4().hex[:8]
    captured.runtime.sink.record_prediction(
        request_id=rid,
        model="clf",
        version=2,
        endpoint="checkout",
        variant="b",
        features=np.zeros((1, 1)),
        feature_names=["a"],
        predictions=[1],
    )
    plain: list[MatchedFeedback] = []
    awaited: list[MatchedFeedback] = []

    async def async_listener(items: list[MatchedFeedback]) -> None:
        awaited.extend(items)

    def broken(items: list[MatchedFeedback]) -> None:
        raise RuntimeError("a subscriber bug")

    listeners = captured.app.dataplane.feedback_listeners
    listeners.extend([plain.extend, broken, async_listener])
    try:
        ghost = "ghost-" + uuid.uuid4().hex[:8]
        body = {"feedback": [{"request_id": rid, "reward": 1}, {"request_id": ghost, "reward": 1}]}
        r = _feedback(captured, body)
    finally:
        del listeners[-3:]
    assert r.status_code == 200 and r.json()["accepted"] == 2
    assert len(plain) == 1 and awaited == plain  # only the matched one
    (item,) = plain
    assert (item.feedback.request_id, item.feedback.reward, item.feedback.label) == (rid, 1.0, None)
    c = item.captured
    assert (c.endpoint, c.variant, c.model, c.version, c.prediction) == (
        "checkout",
        "b",
        "clf",
        2,
        1,
    )


def test_a_server_without_capture_refuses_feedback() -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=100, n_features=20, random_state=0)
    bundle = LoadedBundle(
        SklearnAdapter(LogisticRegression().fit(X, y)), clf_signature(), name="clf"
    )
    with ServerThread(create_app(StaticProvider([bundle]))) as server:
        r = httpx.post(f"{server.url}/v1/feedback", json={"request_id": "a", "label": 1})
    assert r.status_code == 404
    assert "capture is off" in r.json()["message"]


def test_openapi_documents_feedback(captured: Captured) -> None:
    doc = httpx.get(f"{captured.url}/openapi.json").json()
    operation = doc["paths"]["/v1/feedback"]["post"]
    assert operation["operationId"] == "feedback"
    assert "FeedbackRequest" in doc["components"]["schemas"]


# -- vigil feedback FILE -----------------------------------------------------------------


def _home_with_predictions(home: Path) -> list[str]:
    sink = CaptureSink.from_settings(CaptureSettings(), home)
    assert sink is not None
    ids = [f"req-{i}" for i in range(4)]
    for rid in ids:
        sink.record_prediction(
            request_id=rid,
            model="churn",
            version=1,
            features=np.zeros((1, 1)),
            feature_names=["a"],
            predictions=[0],
        )
    sink.close()
    return ids


def _invoke(*args: str) -> Any:
    from vigil.app import reset_default
    from vigil.cli import app

    reset_default()  # VIGIL_HOME is per test
    return CliRunner().invoke(app, ["feedback", *args])


def test_cli_loads_csv_and_reports_counts(vigil_home: Path, tmp_path: Path) -> None:
    ids = _home_with_predictions(vigil_home)
    path = tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "request_id": [*ids, ids[0], "unknown-1"],
            "label": [1, 0, 1, 0, 0, 1],
            "reward": [0.5, None, 1.0, None, None, 2.0],
        }
    ).to_csv(path, index=False)
    result = _invoke(str(path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("rows", "accepted", "duplicates", "unknown", "late")} == {
        "rows": 6,
        "accepted": 5,
        "duplicates": 1,
        "unknown": 1,
        "late": 0,
    }
    assert summary["unknown_request_ids"] == ["unknown-1"]
    stored = FeedbackStore(vigil_home / "feedback").read().set_index("request_id")
    assert stored.loc["req-0", "reward"] == 0.5 and stored.loc["req-2", "label"] == 1
    table = _invoke(str(path))  # again: everything is a duplicate now, shown as a table
    assert table.exit_code == 0 and "duplicates" in table.output and "6" in table.output


def test_cli_loads_jsonl_and_parquet(vigil_home: Path, tmp_path: Path) -> None:
    ids = _home_with_predictions(vigil_home)
    jsonl = tmp_path / "rewards.jsonl"
    jsonl.write_text("\n".join(json.dumps({"request_id": i, "reward": 1}) for i in ids[:2]))
    parquet = tmp_path / "labels.parquet"
    pd.DataFrame({"request_id": ids[2:], "label": ["a", "b"]}).to_parquet(parquet)
    for path in (jsonl, parquet):
        result = _invoke(str(path), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["accepted"] == 2


def test_cli_names_the_bad_line(vigil_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("request_id,reward\nr1,1\nr2,lots\n")
    result = _invoke(str(path))
    assert isinstance(result.exception, ValidationError)
    assert "bad.csv line 2" in str(result.exception)
    assert FeedbackStore(vigil_home / "feedback").read().empty
