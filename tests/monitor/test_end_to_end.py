"""End to end through the real server: traffic, drift, labels, accuracy and a webhook.

The registered model is served by a real uvicorn server (capture on, monitoring scheduled
every half second on windows of 200 predictions). Reference-like traffic gives a window
without drift; traffic with ``age`` and ``plan`` shifted gives one that drifted on exactly
those two features and fires the default ``dataset_drift`` rule, whose notification reaches
a webhook receiver started here. Labels sent to ``POST /v1/feedback`` land in the windows
of their predictions, whose accuracy then equals scikit-learn's on the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score
from tests._waiting import wait_for
from tests.monitor._data import FEATURES, Trained, make_frame
from tests.monitor._receiver import Receiver
from tests.serving.conftest import ServerThread

from vigil.app import Vigil
from vigil.monitor.series import StoredWindow, stored_windows
from vigil.serving.registry_provider import RegistryProvider

WINDOW = 200
BATCH = 4


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as hook:
        yield hook


@pytest.fixture
def server(
    vigil: Vigil, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerThread]:
    monkeypatch.setenv("VIGIL_MONITOR_WINDOW", str(WINDOW))
    monkeypatch.setenv("VIGIL_MONITOR_INTERVAL_S", "0.5")
    monkeypatch.setenv("VIGIL_MONITOR_WEBHOOKS", json.dumps([f"{receiver.url}/hook?token=t0k"]))
    monkeypatch.setenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS", "true")  # a loopback receiver
    provider = RegistryProvider(vigil, poll_interval=0)
    with ServerThread(vigil.serving_app(provider)) as running:
        yield running


def _send(client: httpx.Client, frame: pd.DataFrame) -> list[tuple[str, int, int, Any]]:
    """Predict ``frame`` in requests of BATCH rows, one after the other; returns
    (request_id, row, label, prediction) per row."""
    sent = []
    for lo in range(0, len(frame), BATCH):
        part = frame.iloc[lo : lo + BATCH]
        r = client.post(
            "/v1/models/churn/predict", json={"instances": part[FEATURES].to_dict("records")}
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        for i, (label, prediction) in enumerate(
            zip(part["label"], answer["predictions"], strict=True)
        ):
            sent.append((answer["request_id"], i, int(label), prediction))
    return sent


@pytest.mark.slow
def test_serve_drift_labels_alert(
    vigil: Vigil, trained: Trained, server: ServerThread, receiver: Receiver
) -> None:
    def windows(n: int, labelled: int = 0) -> Callable[[], list[StoredWindow] | None]:
        def check() -> list[StoredWindow] | None:
            found = stored_windows(vigil.database, window=str(WINDOW), model="churn")
            done = [w for w in found if not w.partial]
            if len(done) >= n and all(w.n_labelled >= labelled for w in done[:n]):
                return done
            return None

        return check

    with httpx.Client(base_url=server.url, timeout=30) as client:
        calm = _send(client, make_frame(WINDOW, seed=1))
        (first,) = wait_for(windows(1), what="the first window")
        assert (first.n_rows, first.key.route) == (WINDOW, "native_predict")
        assert first.summary["dataset_drifted"] is False
        assert first.summary["drifted_features"] == []

        shifted = _send(client, make_frame(WINDOW, seed=3, shift_age=True, shift_plan=True))
        _, second = wait_for(windows(2), what="the shifted window")
        assert second.summary["dataset_drifted"] is True
        assert sorted(second.summary["drifted_features"]) == ["age", "plan"]

        (call,) = receiver.wait_calls(1)
        assert call.path == "/hook?token=t0k"
        (alert,) = call.body["alerts"]
        assert (call.body["status"], alert["labels"]["alertname"]) == ("firing", "dataset_drift")
        assert (alert["labels"]["model"], alert["labels"]["version"]) == ("churn", "1")

        # Labels for both windows, after the fact: each lands in its prediction's window.
        rows = calm + shifted
        feedback = [{"request_id": rid, "row": row, "label": label} for rid, row, label, _ in rows]
        r = client.post("/v1/feedback", json={"feedback": feedback})
        assert r.status_code == 200, r.text
        relabelled = wait_for(windows(2, labelled=WINDOW), what="the labelled windows")
        for stored, sent in zip(relabelled, (calm, shifted), strict=True):
            truth = np.array([label for _, _, label, _ in sent])
            predicted = np.array([prediction for _, _, _, prediction in sent])
            expected = accuracy_score(truth, predicted)
            assert stored.summary["performance"]["accuracy"] == pytest.approx(expected)
            assert stored.summary["reference"] == {"accuracy": trained.accuracy}

        exposition = client.get("/metrics").text
        assert (
            'vigil_monitor_value{feature="",metric="drift.dataset",model="churn",'
            'route="native_predict",version="1"} 1.0'
        ) in exposition
    assert receiver.calls == 1  # one transition, one notification
