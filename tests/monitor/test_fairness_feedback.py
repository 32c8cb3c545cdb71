"""A sensitive attribute sent with the feedback (``fields``) through a real server: stored
with the label, joined to its prediction by request id, measured per window equal to
Fairlearn on the same rows; bad fields get a 422 naming them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
    true_positive_rate,
)
from tests.monitor._data import FEATURES, Trained, make_frame
from tests.serving.conftest import ServerThread

from vigil.app import Vigil
from vigil.monitor.engine import monitor_windows
from vigil.monitor.series import read_series
from vigil.monitor.settings import MonitorSettings
from vigil.serving.registry_provider import RegistryProvider
from vigil.storage.sql import utcnow


@pytest.fixture
def server(vigil: Vigil, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    monkeypatch.setenv("VIGIL_MONITOR_ENABLED", "false")
    with ServerThread(vigil.serving_app(RegistryProvider(vigil, poll_interval=0))) as running:
        yield running


def test_a_feedback_field_is_joined_and_measured_as_fairlearn_does(
    vigil: Vigil, trained: Trained, server: ServerThread
) -> None:
    frame = make_frame(240, seed=17)
    rng = np.random.default_rng(5)
    # A group tied to income (which the model reads): the groups are selected unequally.
    band = np.where(frame["income"] + rng.normal(0, 10, len(frame)) > 50, "high", "low")
    sent: list[tuple[str, int]] = []
    with httpx.Client(base_url=server.url) as client:
        for lo in range(0, len(frame), 12):
            part = frame.iloc[lo : lo + 12]
            r = client.post(
                "/v1/models/churn/predict", json={"instances": part[FEATURES].to_dict("records")}
            )
            assert r.status_code == 200, r.text
            sent += [(r.json()["request_id"], i) for i in range(len(part))]
        # Every 9th row's feedback has no band: that row belongs to no group.
        told = np.arange(len(frame)) % 9 != 0
        items = [
            {"request_id": rid, "row": row, "label": int(frame["label"].iloc[k])}
            | ({"fields": {"band": str(band[k]), "source": "survey"}} if told[k] else {})
            for k, (rid, row) in enumerate(sent)
        ]
        r = client.post("/v1/feedback", json={"feedback": items})
        assert r.status_code == 200 and r.json()["accepted"] == len(frame), r.text
        rid = sent[0][0]
        for fields, field in (
            ({"1band": "x"}, "fields"),
            ({"band": {"nested": 1}}, "fields.band"),
            ({"band": "x" * 300}, "fields.band"),
            ("high", "fields"),
            ({f"f{i}": 1 for i in range(17)}, "fields"),
        ):
            bad = client.post(
                "/v1/feedback", json={"request_id": rid, "row": 1, "label": 1, "fields": fields}
            )
            assert bad.status_code == 422, bad.text
            assert bad.json()["detail"]["field"] == field, bad.text

    settings = MonitorSettings(
        window=str(len(frame)),
        rules=[],
        grace_s=0,
        fairness={
            "churn": {
                "attributes": [{"name": "band", "source": "feedback"}],
                "positive_label": 1,
                "min_group_size": 10,
            }
        },
    )
    results = monitor_windows(vigil, now=utcnow() + timedelta(seconds=1), settings=settings).results
    assert [r.n_rows for r in results] == [len(frame)]
    assert any(f"{(~told).sum()} rows without a band" in n for n in results[0].notes), results[
        0
    ].notes
    stored = {
        p.metric: p.value for p in read_series(vigil.database) if p.metric.startswith("fairness.")
    }
    y_true = frame["label"].to_numpy()[told]
    y_pred = trained.model.predict(frame[FEATURES])[told]
    groups = band[told]
    by_group = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    ).by_group
    for group in ("high", "low"):
        assert stored[f"fairness.band.{group}.count"] == (groups == group).sum()
        for metric in ("selection_rate", "tpr"):
            assert stored[f"fairness.band.{group}.{metric}"] == pytest.approx(
                by_group.loc[group, metric], abs=1e-12
            )
    assert stored["fairness.band.demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=groups), abs=1e-12
    )
    assert stored["fairness.band.equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=groups), abs=1e-12
    )
