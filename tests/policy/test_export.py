"""The training-data export reads feedback one day of the window at a time: the labels of
that day's predictions, never the whole feedback store (rows counted), and writes what the
whole-store join would.

Parts are written straight in the compacted formats (capture and feedback Parquet under the
home's artifact store), as compaction leaves them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.monitor._data import capture_sink, home_vigil

from vigil.capture.compact import compact
from vigil.feedback.export import export_capture
from vigil.feedback.join import join_feedback
from vigil.feedback.record import FeedbackRecord
from vigil.feedback.store import FeedbackStore
from vigil.policy.export import HOLDOUT_FILE as HOLDOUT
from vigil.policy.export import export_training_data

DAY = datetime(2026, 3, 2, tzinfo=UTC)
ROWS = 1000
"""Captured rows of the model per day (three days)."""
OTHERS = 30_000
"""Feedback on another model's predictions: the store is much larger than a window's."""
LEGACY = 10
"""Feedback stored before it recorded its prediction (no prediction time: joined by id),
half in a compacted part without the column, half in a live segment with it null."""


def _write(app: Any, key: str, table: pa.Table) -> None:
    path = Path(app.artifacts.resolve_key(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=4096)


def _capture(app: Any, day: datetime, k: int) -> pa.Table:
    rng = np.random.default_rng(k)
    times = day + np.sort(rng.uniform(0, 80_000, ROWS)) * timedelta(seconds=1)
    table = pa.table(
        {
            "request_id": [f"m{k}-{i}" for i in range(ROWS)],
            "row": np.zeros(ROWS, dtype=np.int64),
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "model": ["m"] * ROWS,
            "version": np.ones(ROWS, dtype=np.int64),
            "status": np.full(ROWS, 200, dtype=np.int64),
            "prediction": rng.integers(0, 2, ROWS),
            "feature.x": rng.normal(size=ROWS),
            "feature.plan": rng.choice(["a", "b"], ROWS),
        }
    )
    _write(app, f"capture/model=m/date={day.date().isoformat()}/part-c{k:04d}.parquet", table)
    return table


def _feedback(
    app: Any,
    name: str,
    ids: list[str],
    at: list[datetime],
    model: str | None,
    arrived: datetime,
    labels: pa.Array | None = None,
) -> None:
    n = len(ids)
    columns: dict[str, Any] = {
        "request_id": ids,
        "row": np.zeros(n, dtype=np.int64),
        "reward": pa.nulls(n, pa.float64()),
        "time": pa.array([arrived] * n, pa.timestamp("us", tz="UTC")),
        "caller": pa.nulls(n, pa.string()),
    }
    if model is not None:
        columns["prediction_time"] = pa.array(at, pa.timestamp("us", tz="UTC"))
        columns["prediction_model"] = [model] * n
    columns["label"] = np.arange(n, dtype=np.int64) % 2 if labels is None else labels
    columns["segment"] = [name] * n
    day = arrived.date().isoformat()
    _write(app, f"feedback/date={day}/part-{name}.parquet", pa.table(columns))


def test_export_reads_one_days_labels_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = home_vigil(tmp_path / "home")
    arrived = DAY + timedelta(days=4)
    captured = []
    for d in range(3):
        day = DAY + timedelta(days=d)
        table = _capture(app, day, d)
        captured.append(table)
        labelled = table.slice(0, 600)  # 60 % of each day labelled
        ids, times = labelled["request_id"].to_pylist(), labelled["time"].to_pylist()
        _feedback(app, f"f{d}", ids, times, "m", arrived)
    other = [DAY + timedelta(days=1, seconds=i) for i in range(OTHERS)]
    _feedback(app, "o", [f"o-{i}" for i in range(OTHERS)], other, "other", arrived)
    legacy = captured[1].slice(900, LEGACY)["request_id"].to_pylist()
    _feedback(app, "legacy", legacy[:5], [], None, arrived)
    # The rest in a live segment (not compacted), with no prediction time recorded either.
    live = app.feedback_store()
    live.log.append(FeedbackRecord(r, label=1, time=arrived).to_dict() for r in legacy[5:])
    live.close()

    held: list[int] = []
    original = FeedbackStore.read_predicted

    def counted(self: FeedbackStore, *args: Any, **kwargs: Any) -> pa.Table | None:
        table = original(self, *args, **kwargs)
        held.append(0 if table is None else table.num_rows)
        return table

    def whole(*_: Any, **__: Any) -> None:
        raise AssertionError("the export read the whole feedback store")

    monkeypatch.setattr(FeedbackStore, "read_predicted", counted)
    monkeypatch.setattr(FeedbackStore, "read_table", whole)
    since, until = DAY + timedelta(days=1), DAY + timedelta(days=2, hours=12)
    result = export_training_data(
        app,
        "m",
        since=since,
        until=until,
        directory=tmp_path / "export",
        holdout_dir=tmp_path / "holdout",
        holdout_share=0.2,
        target="churned",
        reference={},
    )
    monkeypatch.undo()

    # Each of the window's two days read twice (the labels' type, then the rows), each read
    # holding only that day's labels of the model (and the few that cannot be placed), of a
    # store of 31,810 feedback rows.
    store = app.feedback_store()
    total = store.read_table()
    assert total is not None and total.num_rows == 3 * 600 + OTHERS + LEGACY
    day_two = sum(t < until for t in captured[2]["time"].to_pylist()[:600])
    assert held == [600 + LEGACY, day_two + LEGACY] * 2

    # What the whole-store join gives for the window.
    rows = pd.concat([t.to_pandas() for t in captured], ignore_index=True)
    times = pd.to_datetime(rows["time"], utc=True)
    rows = rows[(times >= since) & (times < until)]
    want = join_feedback(rows, store.read())
    store.close()
    train = pq.read_table(result.train).to_pandas()
    holdout = pq.read_table(tmp_path / "holdout" / "holdout.parquet").to_pandas()
    got = pd.concat([train, holdout], ignore_index=True)
    assert len(got) == len(want) == 600 + LEGACY + day_two
    assert sorted(got["request_id"]) == sorted(want["request_id"])
    by_id = dict(zip(want["request_id"], want["label"], strict=True))
    assert all(by_id[r] == v for r, v in zip(got["request_id"], got["churned"], strict=True))
    assert {"x", "plan", "churned", "request_id", "row", "time", "version"} <= set(train.columns)
    assert result.manifest["answered_rows"] == int(
        (pd.to_datetime(rows["time"], utc=True) < until).sum()
    )
    assert result.manifest["labelled_rows"] == len(want)
    assert result.manifest["features"] == ["plan", "x"]


def test_passthrough_fields_that_vary_across_the_window_are_all_exported(
    tmp_path: Path,
) -> None:
    """Requests carry passthrough fields of their own (or none): the file holds every field
    of the window, null where a request lacked it; a field sent as a number one day and as
    text the next is text throughout (as the capture reader reads it)."""
    app = home_vigil(tmp_path / "home")
    sink = capture_sink(app)

    def predict(rid: str, at: datetime, x: float, passthrough: dict[str, list[Any]] | None) -> None:
        sink.record_prediction(
            request_id=rid,
            model="m",
            version=1,
            time=at,
            features=[{"x": x}],
            predictions=[1],
            passthrough=passthrough,
        )

    # Day one compacted: a number field, and a request without any field.
    predict("a", DAY + timedelta(hours=1), 1.0, {"region": [3]})
    predict("b", DAY + timedelta(hours=2), 2.0, None)
    sink.log.rotate()
    compact(sink.log, app.artifacts)
    # Day two compacted: the same field as text, and a new one.
    predict("c", DAY + timedelta(days=1, hours=1), 3.0, {"region": ["north"], "tier": ["gold"]})
    sink.log.rotate()
    compact(sink.log, app.artifacts)
    # Day three still in a live segment: another field again.
    predict("d", DAY + timedelta(days=2, hours=1), 4.0, {"age_band": [40]})
    sink.close()
    feedback = app.feedback_store()
    try:
        labels = [{"request_id": r, "label": i % 2} for i, r in enumerate("abcd")]
        assert feedback.submit(labels, admin=True).accepted == 4
    finally:
        feedback.close()

    until = DAY + timedelta(days=3)
    result = export_training_data(
        app,
        "m",
        since=DAY,
        until=until,
        directory=tmp_path / "export",
        holdout_dir=None,
        holdout_share=0.0,
        target="churned",
        reference={},
    )
    train = pq.read_table(result.train)
    assert train.column_names == [
        "request_id",
        "row",
        "time",
        "version",
        "x",
        "passthrough.region",
        "passthrough.tier",
        "passthrough.age_band",
        "churned",
    ]
    assert train.schema.field("passthrough.region").type == pa.string()
    assert train.schema.field("passthrough.age_band").type == pa.int64()
    got = train.select(["request_id", "x", *train.column_names[5:]]).to_pylist()
    assert got == [
        {"request_id": "a", "x": 1.0, "passthrough.region": "3", "passthrough.tier": None,
         "passthrough.age_band": None, "churned": 0},
        {"request_id": "b", "x": 2.0, "passthrough.region": None, "passthrough.tier": None,
         "passthrough.age_band": None, "churned": 1},
        {"request_id": "c", "x": 3.0, "passthrough.region": "north", "passthrough.tier": "gold",
         "passthrough.age_band": None, "churned": 0},
        {"request_id": "d", "x": 4.0, "passthrough.region": None, "passthrough.tier": None,
         "passthrough.age_band": 40, "churned": 1},
    ]  # fmt: skip
    assert result.manifest["rows"] == result.manifest["labelled_rows"] == 4

    # ``vigil capture export`` reads the span as one scan: the same columns and values.
    feedback = app.feedback_store()
    try:
        done = export_capture(
            tmp_path / "capture.parquet",
            "m",
            DAY,
            until,
            feedback=feedback,
            store=app.artifacts,
            log_dir=app.capture_dir,
        )
    finally:
        feedback.close()
    captured = pq.read_table(done.path)
    assert [c for c in captured.column_names if c.startswith("passthrough.")] == [
        "passthrough.region",
        "passthrough.tier",
        "passthrough.age_band",
    ]
    want = [{k: r[k] for k in ("request_id", *train.column_names[5:8])} for r in got]
    keep = ["request_id", "passthrough.region", "passthrough.tier", "passthrough.age_band"]
    assert captured.select(keep).to_pylist() == want
    assert captured["label"].to_pylist() == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("later", "kind", "want"),
    [
        (pa.array(["north", "south"] * 5), pa.string(), ["0", "1"] * 5 + ["north", "south"] * 5),
        (pa.array([0.5, 2.0] * 5), pa.float64(), [0.0, 1.0] * 5 + [0.5, 2.0] * 5),
        (pa.array([1.0, 3.0] * 5), pa.int64(), [0, 1] * 5 + [1, 3] * 5),
    ],
    ids=["text", "fractions", "whole-floats"],
)
def test_the_labels_type_is_the_whole_windows(
    tmp_path: Path, later: pa.Array, kind: pa.DataType, want: list[Any]
) -> None:
    """Labels sent as integers one day and as text (or fractions) the next: the label column
    follows the features' rule over the whole window (text where types clash, integers and
    floats widened to floats), not the first batch's type, and ``vigil capture export``
    writes the same values. Whole floats stay integers, as they were."""
    app = home_vigil(tmp_path / "home")
    arrived = DAY + timedelta(days=3)
    for d, labels in enumerate([None, later]):
        table = _capture(app, DAY + timedelta(days=d), d).slice(0, 10)
        ids, times = table["request_id"].to_pylist(), table["time"].to_pylist()
        _feedback(app, f"f{d}", ids, times, "m", arrived + timedelta(hours=d), labels)
    until = DAY + timedelta(days=2)
    result = export_training_data(
        app,
        "m",
        since=DAY,
        until=until,
        directory=tmp_path / "export",
        holdout_dir=tmp_path / "holdout",
        holdout_share=0.3,
        target="churned",
        reference={},
    )
    parts = [pq.read_table(result.train), pq.read_table(tmp_path / "holdout" / HOLDOUT)]
    assert [t.schema.field("churned").type for t in parts] == [kind, kind]
    got = pa.concat_tables(parts).sort_by([("time", "ascending")])
    assert got["churned"].to_pylist() == want

    feedback = app.feedback_store()
    try:
        done = export_capture(
            tmp_path / "capture.parquet",
            "m",
            DAY,
            until,
            feedback=feedback,
            store=app.artifacts,
            log_dir=app.capture_dir,
        )
    finally:
        feedback.close()
    captured = pq.read_table(done.path).sort_by([("time", "ascending")])
    assert captured["label"].to_pylist() == want  # its whole floats stay floats: 1.0 == 1
