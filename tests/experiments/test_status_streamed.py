"""The streamed experiment status (vigil.experiments.log_counts) against the reference that
reads the whole log and feedback store as frames (read_frames + counts_from_frames), on the
same real capture log and feedback store: compacted parts and live segments, several days,
late feedback, rewards or labels, errors and refusals, callers, ids reused across days and
variants, other endpoints' and direct traffic, under every kind of policy; and a check that
the read is bounded (record batches of the projected columns, never the whole log)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from tests.experiments._registry import vigil_with_models

import vigil.experiments.log_counts as log_counts
from vigil.app import Vigil
from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.scan import CaptureScan
from vigil.capture.settings import CaptureSettings
from vigil.capture.sink import CaptureSink
from vigil.errors import ModelInputError
from vigil.experiments.config import EndpointConfig, parse_endpoint
from vigil.experiments.log_counts import counts_from_log
from vigil.experiments.status import (
    counts_from_frames,
    experiment_status,
    read_frames,
    summarize_counts,
)
from vigil.experiments.store import EndpointStore
from vigil.feedback.record import FeedbackRecord
from vigil.feedback.store import FeedbackStore
from vigil.settings import load_settings

DAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
VARIANTS = [
    {"name": "a", "model": "models:/churn@production"},
    {"name": "b", "model": "models:/churn/2"},
    {"name": "c", "model": "models:/churn/3"},
]
POLICIES: list[dict[str, Any]] = [
    {"kind": "split", "weights": {"a": 50, "b": 30, "c": 20}},
    {"kind": "canary", "stable": "a", "canary": "b"},
    {"kind": "thompson"},
    {"kind": "epsilon_greedy", "epsilon": 0.2, "reward": "gaussian"},
    {"kind": "shadow", "primary": "b", "shadows": ["a", "c"]},
    {"kind": "fixed", "variant": "c"},
]


def config(policy: dict[str, Any], name: str = "checkout") -> EndpointConfig:
    return parse_endpoint({"name": name, "variants": VARIANTS, "policy": policy})


def feedback_store(app: Vigil) -> FeedbackStore:
    return FeedbackStore.from_settings(CaptureSettings(), app.settings.home, app.artifacts)


def write_log(app: Vigil, kind: str, seed: int) -> None:
    """Three days of traffic: days 1 and 2 compacted, day 3 in live segments; feedback
    partly compacted, partly live, some of it days late."""
    rng = np.random.default_rng(seed)
    sink = CaptureSink(SegmentLog(app.capture_dir))
    given: list[FeedbackRecord] = []
    rates = {"a": 0.3, "b": 0.45, "c": 0.35, "old": 0.5}

    def predict(rid: str, variant: str | None, at: datetime, **extra: Any) -> None:
        rows = int(rng.integers(1, 4))
        predictions = [int(p) for p in rng.integers(0, 2, rows)]
        sink.record_prediction(
            request_id=rid,
            model=extra.pop("model", "churn"),
            version={"a": 1, "b": 2, "c": 3}.get(variant or "", 1),
            features=[{"tenure": float(rng.normal()), "plan": "basic"}] * rows,
            predictions=predictions,
            variant=variant,
            endpoint=extra.pop("endpoint", "checkout"),
            time=at,
            **extra,
        )
        for row, predicted in enumerate(predictions):
            if rng.random() < 0.7 and variant is not None:
                late = timedelta(hours=float(rng.choice([0.1, 5.0, 60.0])))
                item: dict[str, Any] = {"request_id": rid, "row": row, "time": at + late}
                if kind == "labels":
                    hit = rng.random() < rates[variant] + 0.3
                    label = predicted if hit else 1 - predicted
                    item["label"] = str(label) if rng.random() < 0.2 else label
                elif kind == "binary":
                    item["reward"] = float(rng.random() < rates[variant])
                else:
                    item["reward"] = float(rng.normal(10 + rates[variant], 2))
                given.append(FeedbackRecord(**item))

    for day in range(3):
        start = DAY + timedelta(days=day)
        for i in range(120):
            at = start + timedelta(minutes=7 * i)
            variant = str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2]))
            rid = f"d{day}-{i}"
            if i % 17 == 0:
                sink.record_failure(
                    request_id=rid,
                    status=500,
                    error_code="prediction_failed",
                    error_message="boom",
                    model="churn",
                    endpoint="checkout",
                    variant=variant,
                    time=at,
                )
            elif i % 23 == 0:
                sink.record_failure(
                    request_id=rid,
                    status=422,
                    error_code=ModelInputError.code,
                    error_message="refused",
                    model="churn",
                    endpoint="checkout",
                    variant=variant,
                    time=at,
                )
            elif i % 29 == 0:  # the client's fault: a request, not an error
                sink.record_failure(
                    request_id=rid,
                    status=400,
                    error_code="invalid_input",
                    error_message="bad",
                    model="churn",
                    endpoint="checkout",
                    variant=variant,
                    time=at,
                )
            else:
                predict(rid, variant, at, caller="k1" if i % 5 == 0 else None)
            if i % 11 == 0:  # another endpoint, direct traffic, another model, an old variant
                predict(f"s{day}-{i}", "a", at, endpoint="search")
                predict(f"x{day}-{i}", None, at, endpoint=None)
                predict(f"f{day}-{i}", "b", at, model="fraud")
                predict(f"o{day}-{i}", "old", at)
        # A request id a client reuses: on every day, another variant each time, and a
        # server error the third day (an error of the first day's variant).
        if day < 2:
            predict("reused", ["a", "c"][day], start + timedelta(hours=3))
        else:
            sink.record_failure(
                request_id="reused",
                status=503,
                error_code="overloaded",
                error_message="busy",
                model="churn",
                endpoint="checkout",
                variant="b",
                time=start + timedelta(hours=3),
            )
        sink.log.rotate()
        if day < 2:
            compact(sink.log, app.artifacts)
    sink.close()
    given.append(FeedbackRecord(request_id="nobody", row=0, reward=1.0, label=1))
    store = feedback_store(app)
    half = len(given) // 2
    store.submit(given[:half])
    store.submit(given[half:], caller="k1", admin=True)
    store.log.rotate()
    store.compact()
    store.submit([FeedbackRecord(request_id="d2-1", row=0, reward=1.0, label=0)])
    store.close()


def streamed(app: Vigil, cfg: EndpointConfig, since: datetime | None = None, **kw: Any) -> Any:
    counts = counts_from_log(
        cfg,
        store=app.artifacts,
        log_dir=app.capture_dir,
        feedback=lambda: feedback_store(app),
        since=since,
        **kw,
    )
    return summarize_counts(cfg, counts).to_dict()


def reference(app: Vigil, cfg: EndpointConfig, since: datetime | None = None) -> Any:
    return summarize_counts(cfg, counts_from_frames(cfg, *read_frames(app, since))).to_dict()


@pytest.fixture(scope="module", params=["binary", "continuous", "labels"])
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vigil]:
    """A home with the log alone (the counts need no registered model)."""
    app = Vigil(load_settings(home=tmp_path_factory.mktemp(f"streamed-{request.param}")))
    write_log(app, request.param, seed=len(request.param))
    yield app
    app.database.dispose()


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p["kind"])
def test_the_streamed_status_equals_the_whole_log_reference(
    app: Vigil, policy: dict[str, Any]
) -> None:
    cfg = config(policy)
    got = streamed(app, cfg, batch_rows=50)
    assert got == reference(app, cfg)
    assert sum(v["requests"] for v in got["variants"]) > 300
    assert sum(v["feedback"] for v in got["variants"]) > 300
    since = DAY + timedelta(days=1, hours=5)
    assert streamed(app, cfg, since) == reference(app, cfg, since)


def test_other_endpoints_and_an_empty_span(app: Vigil) -> None:
    search = config(POLICIES[0], name="search")
    assert streamed(app, search) == reference(app, search)
    nowhere = config(POLICIES[0], name="nowhere")
    assert streamed(app, nowhere) == reference(app, nowhere)
    later = DAY + timedelta(days=30)
    cfg = config(POLICIES[0])
    assert streamed(app, cfg, later) == reference(app, cfg, later)


def test_experiment_status_streams_and_never_reads_the_whole_log(
    tmp_path: Path, make_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = vigil_with_models(tmp_path / "home", make_bundle)
    write_log(app, "binary", seed=11)
    cfg = config(POLICIES[0])
    EndpointStore(app).create(cfg, actor="ada")
    expected = summarize_counts(cfg, counts_from_frames(cfg, *read_frames(app, None))).to_dict()
    captured, _feedback = read_frames(app, None)
    ours = int(
        ((captured["endpoint"] == "checkout") & captured["variant"].isin(["a", "b", "c"])).sum()
    )

    # The whole-log readers must not be called at all.
    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the status read the whole log or store")

    monkeypatch.setattr("vigil.capture.reader.read_capture_table", refuse)
    monkeypatch.setattr(FeedbackStore, "read", refuse)
    monkeypatch.setattr(FeedbackStore, "read_table", refuse)
    # Every batch of the log the status sees: its rows and columns.
    seen: list[tuple[int, tuple[str, ...]]] = []
    batches = CaptureScan.batches

    def watched(scan: CaptureScan) -> Iterator[pa.RecordBatch]:
        for batch in batches(scan):
            seen.append((batch.num_rows, tuple(batch.schema.names)))
            yield batch

    monkeypatch.setattr(CaptureScan, "batches", watched)
    monkeypatch.setattr(log_counts, "BATCH_ROWS", 40)
    got = experiment_status(app, "checkout", source="capture").to_dict()
    got.pop("live")
    expected.pop("live")
    assert got == expected
    # Two passes over this endpoint's rows of its variants (filtered inside the scan:
    # no other endpoint's row, no direct traffic reaches the status), 40 rows at a time,
    # with only the columns the counts need (never a feature or a raw body).
    assert [sum(r for r, _ in seen[: len(seen) // 2]), sum(r for r, _ in seen[len(seen) // 2 :])]
    assert sum(rows for rows, _ in seen) == 2 * ours
    assert max(rows for rows, _ in seen) <= 40 and len(seen) > 2 * ours // 40
    first = {"request_id", "row", "time", "variant", "status", "error_code"}
    second = {"request_id", "row", "time", "caller", "variant", "prediction", "status"}
    assert {frozenset(cols) for _, cols in seen} == {frozenset(first), frozenset(second)}
    app.database.dispose()


def test_the_key_set_is_exact_even_when_first_halves_collide() -> None:
    held = np.array([[5, 1], [5, 2], [3, 9], [5, 1]], dtype=np.uint64)
    keys = log_counts._KeySet(batch_rows=1)
    keys.add(held[:2])
    keys.add(held[2:])
    asked = np.array([[5, 2], [5, 3], [3, 9], [4, 9], [5, 1]], dtype=np.uint64)
    assert keys.contains(asked).tolist() == [True, False, True, False, True]
    assert len(keys) == 3
    ids = pa.array([f"r{i}" for i in range(1000)] * 2)
    made = log_counts.request_keys(ids)
    assert len(np.unique(made, axis=0)) == 1000 and (made[:1000] == made[1000:]).all()


def test_the_key_order_is_numpys_lexsort() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(1, 60))
        keys = rng.integers(0, 4, (n, 2)).astype(np.uint64)
        time, row = rng.integers(0, 3, n), rng.integers(0, 3, n)
        got = log_counts._key_order(keys, row, time)
        want = np.lexsort((row, time, keys[:, 1], keys[:, 0]))
        as_rows = [np.column_stack([keys[o], time[o], row[o]]) for o in (got, want)]
        assert (as_rows[0] == as_rows[1]).all()
