"""A canary that hurts one group is rolled back, through a real server: better or as good
on one group, wrong on every row of the other, with labels sent as feedback. The model's
sensitive attribute (``monitor.fairness``) is a feature, or the same value sent as a field
of the feedback; the canary's guard compares each group's accuracy between the variants
(``max_group_accuracy_drop``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from tests._waiting import wait_for
from tests.experiments._endpoints import FEATURES, create_endpoint, make_vigil, reference
from tests.serving.conftest import ServerThread

from vigil.app import Vigil
from vigil.audit import read_audit
from vigil.experiments.state import SqlPolicyState
from vigil.serving.endpoints import EndpointRouter
from vigil.serving.registry_provider import RegistryProvider

pytestmark = pytest.mark.slow


class GroupBiased(ClassifierMixin, BaseEstimator):
    """Predicts ``f0 > 0.5`` (the label); with ``wrong_for`` set, the opposite for the rows
    whose ``f1`` equals it."""

    def __init__(self, wrong_for: float | None = None):
        self.wrong_for = wrong_for

    def fit(self, X: Any, y: Any) -> GroupBiased:
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype=float)
        right = (values[:, 0] > 0.5).astype(np.int64)
        if self.wrong_for is None:
            return right
        return np.where(values[:, 1] == self.wrong_for, 1 - right, right)

    def predict_proba(self, X: Any) -> np.ndarray:
        pred = self.predict(X)
        return np.column_stack([1.0 - pred, pred.astype(float)])


def _register(app: Vigil, model: GroupBiased, alias: str | None = None) -> int:
    frame = reference()
    model.fit(frame[FEATURES].to_numpy(), frame["y"].to_numpy())
    return app.register(model, name="biased", reference=frame, target="y", alias=alias).version


ATTRIBUTES = {
    "feature": {"name": "f1"},
    "feedback": {"name": "f1", "source": "feedback", "field": "group"},
}


@pytest.fixture(params=sorted(ATTRIBUTES))
def source(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(tmp_path: Path, source: str) -> Iterator[tuple[Vigil, ServerThread, EndpointRouter]]:
    vigil = make_vigil(tmp_path / "home")
    _register(vigil, GroupBiased(), alias="production")
    _register(vigil, GroupBiased(wrong_for=1.0))
    provider = RegistryProvider(vigil, poll_interval=0.2)
    router = EndpointRouter(
        vigil, provider, SqlPolicyState(vigil.database), poll_interval=0.2, flush_interval=0.1
    )
    with pytest.MonkeyPatch.context() as patch:
        fairness = {"biased": {"attributes": [ATTRIBUTES[source]]}}
        patch.setenv("VIGIL_MONITOR_FAIRNESS", json.dumps(fairness))
        patch.setenv("VIGIL_MONITOR_ENABLED", "false")
        with ServerThread(vigil.serving_app(provider, endpoints=router)) as running:
            yield vigil, running, router


def test_a_canary_that_hurts_one_group_is_rolled_back(
    server: tuple[Vigil, ServerThread, EndpointRouter], source: str
) -> None:
    vigil, running, router = server
    create_endpoint(
        vigil,
        {
            "name": "loans",
            "salt": "s",
            "variants": [
                {"name": "stable", "model": "models:/biased@production"},
                {"name": "canary", "model": "models:/biased/2"},
            ],
            "policy": {
                "kind": "canary",
                "stable": "stable",
                "canary": "canary",
                # One long step: only a guard can end it within the test.
                "steps": [
                    {"percent": 50, "min_duration_s": 600, "min_requests": 100_000},
                    {"percent": 100, "min_duration_s": 600, "min_requests": 100_000},
                ],
                "guards": {"max_group_accuracy_drop": 0.2, "min_group_labels": 15},
            },
        },
    )
    wait_for(lambda: router.routed("loans") is not None, what="the router to route loans")
    stop = threading.Event()
    seen: dict[str, int] = {}

    def load(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=running.url, timeout=30) as client:
            while not stop.is_set():
                f0, f1 = float(rng.uniform(0, 1)), float(rng.integers(0, 2))
                r = client.post(
                    "/v1/endpoints/loans/predict",
                    json={"instances": [{"f0": f0, "f1": f1, "f2": 0.5}]},
                    headers={"x-unit-id": f"u{rng.integers(1_000_000)}"},
                )
                assert r.status_code == 200, r.text
                body = r.json()
                seen[body["variant"]] = seen.get(body["variant"], 0) + 1
                feedback: dict[str, Any] = {
                    "request_id": body["request_id"],
                    "label": int(f0 > 0.5),
                }
                if source == "feedback":  # the group known to whoever sends the label
                    feedback["fields"] = {"group": f1}
                assert client.post("/v1/feedback", json=feedback).status_code < 300

    threads = [threading.Thread(target=load, args=(s,), daemon=True) for s in range(2)]
    for t in threads:
        t.start()
    try:

        def rolled_back() -> list[Any] | None:
            with vigil.database.session() as session:
                events = read_audit(session, model_name="biased")
            found = [e for e in events if e.action == "canary.rollback"]
            return found or None

        (event,) = wait_for(rolled_back, 60, what="the canary's rollback")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert seen.get("canary", 0) > 0 and seen.get("stable", 0) > 0
    assert event.after is not None
    reason = event.after["reason"]
    assert reason.startswith("canary accuracy for f1=1 is 0, below the stable 1"), reason
    evidence = event.after["evidence"]
    assert evidence["worst_group_accuracy_drop"] == 1.0
    assert evidence["worst_group_canary_accuracy"] == 0.0
