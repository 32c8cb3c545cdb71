"""``vigil replay``: a candidate scored on the traffic the served model got, with the labels
that came back, against scikit-learn on the same rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from tests.monitor._data import (
    FEATURES,
    Trained,
    capture_sink,
    home_vigil,
    make_frame,
    register,
    train,
    write_traffic,
)
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.cli import app

runner = CliRunner()
# Late evening: the traffic crosses midnight, so the log is read in two days' partitions.
T0 = datetime(2025, 3, 1, 23, 0, tzinfo=UTC)


@pytest.fixture
def world(vigil_home: Path) -> Iterator[dict[str, Any]]:
    """churn v1 (served) and a weaker v2 on ``age`` alone; 800 requests of one row over two
    hours either side of midnight; labels for every other row, sent late."""
    reset_default()
    vigil = home_vigil(vigil_home)
    trained: Trained = train(seed=0)
    register(vigil, trained)
    ref = trained.reference
    weaker = LogisticRegression().fit(ref[["age"]], ref["label"])
    vigil.register(weaker, name="churn", reference=ref[["age", "label"]], target="label")
    traffic = make_frame(800, seed=5)
    sink = capture_sink(vigil)
    ids = write_traffic(sink, trained.model, traffic, start=T0, step=timedelta(seconds=9))
    sink.close()
    labelled = np.arange(800) % 2 == 0
    store = vigil.feedback_store()
    late = T0 + timedelta(days=1)
    submitted = store.submit(
        [
            {"request_id": ids[i], "row": 0, "label": int(traffic["label"].iloc[i]), "time": late}
            for i in np.flatnonzero(labelled)
        ]
    )
    assert submitted.accepted == 400
    store.close()
    yield {"traffic": traffic, "labelled": labelled, "trained": trained, "weaker": weaker}
    vigil.database.dispose()
    reset_default()


def _replay(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["replay", *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    out: dict[str, Any] = json.loads(result.stdout)
    return out


WINDOW = ["--since", "2025-03-01T00:00:00Z", "--until", "2025-03-03T00:00:00Z"]


def test_replay_scores_the_logged_traffic_like_sklearn(world: dict[str, Any]) -> None:
    out = _replay("models:/churn/2", *WINDOW, "--against", "models:/churn/1")
    traffic, labelled = world["traffic"], world["labelled"]
    served = world["trained"].model.predict(traffic[FEATURES])
    candidate = world["weaker"].predict(traffic[["age"]])
    assert (out["rows"], out["replayed"], out["rejected"], out["labelled"]) == (800, 800, 0, 400)
    results = {r["name"]: r["metrics"] for r in out["results"]}
    y = traffic["label"].to_numpy()[labelled]
    assert results["candidate"]["accuracy"] == pytest.approx(accuracy_score(y, candidate[labelled]))
    assert results["served"]["accuracy"] == pytest.approx(accuracy_score(y, served[labelled]))
    assert results["against"]["accuracy"] == results["served"]["accuracy"]  # v1 served it all
    assert results["candidate"]["f1"] == pytest.approx(f1_score(y, candidate[labelled]))
    agreement = float(np.mean(candidate == served))
    assert out["agreement"] == {
        "served": pytest.approx(agreement),
        "against": pytest.approx(agreement),
    }
    assert out["prediction_drift"]["column"] == "prediction"


def test_a_window_holds_only_its_traffic(world: dict[str, Any]) -> None:
    # From midnight on: the requests logged after 00:00 on 2 March.
    times = [T0 + timedelta(seconds=9 * i) for i in range(800)]
    after = sum(t >= datetime(2025, 3, 2, tzinfo=UTC) for t in times)
    out = _replay("models:/churn/2", "--since", "2025-03-02T00:00:00Z", "--until", "2025-03-03")
    assert out["rows"] == after and 0 < after < 800


def test_rows_the_candidate_cannot_take_are_counted_with_the_reason(
    world: dict[str, Any], vigil_home: Path
) -> None:
    vigil = Vigil()
    ref = world["trained"].reference.assign(tenure=1.0)
    needs_more = LogisticRegression().fit(ref[["age", "tenure"]], ref["label"])
    vigil.register(
        needs_more, name="churn", reference=ref[["age", "tenure", "label"]], target="label"
    )
    reset_default()
    out = _replay("models:/churn/3", *WINDOW)
    assert (out["replayed"], out["rejected"]) == (0, 800)
    assert "tenure" in out["rejections"][0]


def test_text_output_reads_as_a_summary(world: dict[str, Any]) -> None:
    result = runner.invoke(
        app, ["replay", "models:/churn/2", *WINDOW, "--against", "models:/churn/1"]
    )
    assert result.exit_code == 0, result.output
    assert "replayed 800 of 800 answered rows of churn" in result.stdout
    assert "400 have a label" in result.stdout
    assert "candidate agrees with served:" in result.stdout


def test_an_empty_window_is_a_clear_error(world: dict[str, Any]) -> None:
    result = runner.invoke(
        app, ["replay", "models:/churn/2", "--since", "2025-03-02", "--until", "2025-03-01"]
    )
    assert result.exit_code != 0
    assert "the replay window is empty" in str(result.exception)


def test_small_batches_give_the_same_report(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log is streamed in record batches: 50-row batches (16 per day here, labels
    joined batch by batch) give the report one batch per day gives."""
    import vigil.batch.replay as replay_module

    whole = _replay("models:/churn/2", "--against", "models:/churn/1", *WINDOW)
    monkeypatch.setattr(replay_module, "CHUNK_ROWS", 50)
    batched = _replay("models:/churn/2", "--against", "models:/churn/1", *WINDOW)
    assert batched == whole
    assert whole["rows"] == 800


def test_the_log_is_read_a_day_at_a_time() -> None:
    """The progress moves a day at a time: a window is cut at midnight."""
    from vigil.batch.replay import _days

    days = list(_days(datetime(2025, 3, 1, 23, tzinfo=UTC), datetime(2025, 3, 2, 2, tzinfo=UTC)))
    assert days == [
        (datetime(2025, 3, 1, 23, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)),
        (datetime(2025, 3, 2, tzinfo=UTC), datetime(2025, 3, 2, 2, tzinfo=UTC)),
    ]
