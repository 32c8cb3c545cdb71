"""A sensitive attribute sent beside the features (``passthrough``) through a real server:
the model never sees it, the inference log keeps it, monitoring measures fairness by it
(equal to Fairlearn's on the same rows), and bad passthrough bodies get a 422 that names
the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
from fairlearn.metrics import MetricFrame, demographic_parity_difference, selection_rate
from mlflow.utils.proto_json_utils import dump_input_data
from tests.monitor._data import FEATURES, Trained, make_frame
from tests.serving.conftest import ServerThread
from tests.serving.test_grpc import GrpcServerThread
from tritonclient.utils import InferenceServerException

from vigil.app import Vigil
from vigil.capture.reader import read_capture
from vigil.monitor.engine import monitor_windows
from vigil.monitor.series import read_series
from vigil.monitor.settings import MonitorSettings
from vigil.serving.registry_provider import RegistryProvider
from vigil.storage.sql import utcnow

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def server(vigil: Vigil, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    monkeypatch.setenv("VIGIL_MONITOR_ENABLED", "false")
    with ServerThread(vigil.serving_app(RegistryProvider(vigil, poll_interval=0))) as running:
        yield running


def test_passthrough_is_logged_not_modelled_and_measured(
    vigil: Vigil, trained: Trained, server: ServerThread
) -> None:
    frame = make_frame(240, seed=11)
    rng = np.random.default_rng(3)
    # An attribute tied to age (which the model reads), so the groups are selected unequally.
    sex = np.where(frame["age"] + rng.normal(0, 8, len(frame)) > 40, "m", "f").tolist()
    sent: list[tuple[str, int]] = []
    with httpx.Client(base_url=server.url) as client:
        for lo in range(0, len(frame), 8):
            part = frame.iloc[lo : lo + 8]
            body = {
                "instances": part[FEATURES].to_dict("records"),
                "passthrough": {"sex": sex[lo : lo + 8]},
            }
            r = client.post("/v1/models/churn/predict", json=body)
            assert r.status_code == 200, r.text
            # The model answers exactly what it answers without the passthrough field.
            assert r.json()["predictions"] == trained.model.predict(part[FEATURES]).tolist()
            sent += [(r.json()["request_id"], i) for i in range(len(part))]

        bad = client.post(
            "/v1/models/churn/predict",
            json={
                "instances": frame[FEATURES].iloc[:2].to_dict("records"),
                "passthrough": {"sex": ["f"]},
            },
        )
        assert bad.status_code == 422 and bad.json()["detail"]["field"] == "passthrough.sex"
        assert "has 1 values for 2 rows" in bad.text
        for wrong in ({"sex": "f"}, ["f"], {"1x": ["f"]}, {"sex": [{"nested": 1}]}):
            r = client.post(
                "/v1/models/churn/predict",
                json={"inputs": frame[FEATURES].iloc[0].to_dict(), "passthrough": wrong},
            )
            assert r.status_code == 422, r.text
            assert r.json()["detail"]["field"].startswith("passthrough"), r.text

    store = vigil.feedback_store()
    labels = [
        {"request_id": rid, "row": row, "label": int(frame["label"].iloc[k])}
        for k, (rid, row) in enumerate(sent)
    ]
    assert store.submit(labels).accepted == len(frame)
    store.close()

    logged = read_capture("churn", store=vigil.artifacts, log_dir=vigil.capture_dir)
    logged = logged[logged["status"] < 400]
    assert logged["passthrough.sex"].tolist() == sex
    assert "feature.sex" not in logged

    settings = MonitorSettings(
        window=str(len(frame)),
        rules=[],
        grace_s=0,
        fairness={"churn": {"attributes": [{"name": "sex", "source": "passthrough"}]}},
    )
    results = monitor_windows(vigil, now=utcnow() + timedelta(seconds=1), settings=settings).results
    assert [r.n_rows for r in results] == [len(frame)]
    stored = {
        p.metric: p.value for p in read_series(vigil.database) if p.metric.startswith("fairness.")
    }
    y_pred = trained.model.predict(frame[FEATURES])
    by_group = MetricFrame(
        metrics=selection_rate, y_true=frame["label"], y_pred=y_pred, sensitive_features=sex
    ).by_group
    for group in ("f", "m"):
        assert stored[f"fairness.sex.{group}.selection_rate"] == pytest.approx(
            by_group[group], abs=1e-12
        )
    assert stored["fairness.sex.demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(frame["label"], y_pred, sensitive_features=sex), abs=1e-12
    )


def test_v2_requests_carry_passthrough_in_their_parameters(
    vigil: Vigil, server: ServerThread
) -> None:
    inputs = [
        {"name": "age", "shape": [2], "datatype": "FP64", "data": [30.0, 60.0]},
        {"name": "income", "shape": [2], "datatype": "FP64", "data": [40.0, 55.0]},
        {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["basic", "pro"]},
    ]
    with httpx.Client(base_url=server.url) as client:
        r = client.post(
            "/v2/models/churn/infer",
            json={"inputs": inputs, "parameters": {"passthrough": {"sex": ["f", "m"]}}},
        )
        assert r.status_code == 200, r.text
        rid = r.headers["x-request-id"]
        bad = client.post(
            "/v2/models/churn/infer",
            json={"inputs": inputs, "parameters": {"passthrough": {"sex": ["f"]}}},
        )
        assert bad.status_code == 422 and bad.json()["detail"]["field"] == "passthrough.sex"
    logged = read_capture("churn", store=vigil.artifacts, log_dir=vigil.capture_dir)
    mine = logged[logged["request_id"] == rid].sort_values("row")
    assert mine["passthrough.sex"].tolist() == ["f", "m"]


def test_mlflow_and_grpc_requests_carry_passthrough(
    vigil: Vigil, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's client puts it in ``params`` (``dump_input_data(df, params=...)``), a gRPC
    request in the ``passthrough`` string parameter (tritonclient's ``parameters``): both
    logged beside the features as the native route does, bad ones refused naming it."""
    monkeypatch.setenv("VIGIL_MONITOR_ENABLED", "false")
    frame = make_frame(3, seed=5)[FEATURES]
    app = vigil.serving_app(RegistryProvider(vigil, poll_interval=0))
    with GrpcServerThread(app) as server:
        with httpx.Client(base_url=server.url) as client:
            body = dump_input_data(frame, params={"passthrough": {"sex": ["f", "m", None]}})
            r = client.post("/v1/models/churn/invocations", content=body, headers=JSON)
            assert r.status_code == 200, r.text
            via_mlflow = r.headers["x-request-id"]
            bad = dump_input_data(frame, params={"passthrough": {"sex": ["f"]}})
            r = client.post("/v1/models/churn/invocations", content=bad, headers=JSON)
            assert r.status_code == 400 and "has 1 values for 3 rows" in r.json()["message"]
        triton = tg.InferenceServerClient(server.target)
        try:
            inputs = []
            for name, datatype in (("age", "FP64"), ("income", "FP64"), ("plan", "BYTES")):
                column = frame[name].to_numpy(dtype=object if datatype == "BYTES" else float)
                tensor = tg.InferInput(name, [len(frame)], datatype)
                tensor.set_data_from_numpy(column)
                inputs.append(tensor)
            sent = json.dumps({"sex": ["m", "f", "f"]})
            answer = triton.infer("churn", inputs, parameters={"passthrough": sent})
            via_grpc = answer.get_response().id
            for wrong, message in (
                ('{"sex": ["m"]}', "has 1 values for 3 rows"),
                ('{"sex": "m"}', "must be a list"),
                ("{not json", "not valid JSON"),
            ):
                with pytest.raises(InferenceServerException) as caught:
                    triton.infer("churn", inputs, parameters={"passthrough": wrong})
                assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
                assert message in caught.value.message()
        finally:
            triton.close()
    logged = read_capture("churn", store=vigil.artifacts, log_dir=vigil.capture_dir)
    for rid, expected in ((via_mlflow, ["f", "m", None]), (via_grpc, ["m", "f", "f"])):
        mine = logged[logged["request_id"] == rid].sort_values("row")
        assert [None if v is None or v != v else v for v in mine["passthrough.sex"]] == expected
        assert "feature.sex" not in mine
