"""The README's monitoring flow, as a new user follows it, with every default left alone.

``vigil register ... --metric auc=...`` (the README registers AUC, not accuracy), a real
server, 1,000 predictions of normal traffic then 1,000 of shifted traffic whose labels are
noise, the labels sent back, and ``vigil monitor run`` right away, within the first
minute: no window setting, no rule setting. The user must see the drift and the alerts
on the metrics they registered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.metrics import roc_auc_score
from tests._waiting import wait_for
from tests.monitor._data import FEATURES, Trained, make_frame
from tests.serving.conftest import ServerThread
from typer.testing import CliRunner

from vigil.app import Vigil
from vigil.cli import app
from vigil.serving.registry_provider import RegistryProvider

runner = CliRunner()
BATCH = 50


@pytest.fixture
def registered(empty_vigil: Vigil, trained: Trained, tmp_path: Path) -> float:
    """``vigil register churn model.skops --reference ... --metric auc=<holdout AUC>``."""
    sio.dump(trained.model, tmp_path / "model.skops")
    trained.reference.to_parquet(tmp_path / "train.parquet")
    auc = float(
        roc_auc_score(
            trained.reference["label"],
            trained.model.predict_proba(trained.reference[FEATURES])[:, 1],
        )
    )
    r = runner.invoke(
        app,
        [
            "register",
            "churn",
            str(tmp_path / "model.skops"),
            "--reference",
            str(tmp_path / "train.parquet"),
            "--target",
            "label",
            "--alias",
            "production",
            "--metric",
            f"auc={auc:.3f}",
        ],
    )
    assert r.exit_code == 0, r.output
    return auc


@pytest.fixture
def server(empty_vigil: Vigil, registered: float) -> Iterator[ServerThread]:
    with ServerThread(empty_vigil.serving_app(RegistryProvider(empty_vigil))) as running:
        yield running


def _send(client: httpx.Client, frame: pd.DataFrame, labels: np.ndarray) -> list[dict[str, Any]]:
    feedback = []
    for lo in range(0, len(frame), BATCH):
        part = frame.iloc[lo : lo + BATCH]
        r = client.post(
            "/v1/models/churn/predict", json={"instances": part[FEATURES].to_dict("records")}
        )
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        feedback += [
            {"request_id": rid, "row": i, "label": int(y)}
            for i, y in enumerate(labels[lo : lo + BATCH])
        ]
    return feedback


@pytest.mark.slow
def test_readme_flow_sees_drift_and_alerts_with_the_defaults(
    empty_vigil: Vigil, server: ServerThread, registered: float
) -> None:
    normal = make_frame(1000, seed=11)
    shifted = make_frame(1000, seed=12, shift_age=True, shift_plan=True)
    noise = np.random.default_rng(13).integers(0, 2, len(shifted))  # worse labels: coin flips
    with httpx.Client(base_url=server.url, timeout=30) as client:
        feedback = _send(client, normal, normal["label"].to_numpy())
        feedback += _send(client, shifted, noise)
        r = client.post("/v1/feedback", json={"feedback": feedback})
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 2000

    def run() -> dict[str, Any] | None:
        # Normally the first run shows it all; a run in the minute after an hour boundary
        # that cut the traffic waits for that hour's window to close (grace period).
        r = runner.invoke(app, ["monitor", "run", "churn", "--json"])
        assert r.exit_code == 0, r.output
        out: dict[str, Any] = json.loads(r.stdout)
        fired = {a["rule"] for a in out["alerts"] if a["status"] == "firing"}
        return out if {"dataset_drift", "roc_auc_drop"} <= fired else None

    out = wait_for(run, timeout=100, interval=1, what="drift and the AUC alert")
    windows = out["windows"]
    assert all(not w["partial"] for w in windows)
    assert sum(w["rows"] for w in windows) == 2000
    drifted = [w for w in windows if w["dataset_drifted"]]
    assert drifted and all({"age", "plan"} <= set(w["drifted_features"]) for w in drifted)
    (auc_alert,) = [a for a in out["alerts"] if a["rule"] == "roc_auc_drop"]
    assert auc_alert["value"] < -0.1  # AUC on coin-flip labels is about 0.5
    assert "registered" in auc_alert["summary"]

    shown = runner.invoke(app, ["alert", "list", "--json"])
    assert {"dataset_drift", "roc_auc_drop"} <= {a["rule"] for a in json.loads(shown.stdout)}
