"""A server started without a model list serves models registered while it runs, and a
server with nothing to serve says so and how to fix it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.serving.conftest import ServerThread

from vigil.app import Vigil
from vigil.serving.registry_provider import RegistryProvider
from vigil.settings import load_settings

FEATURES = ["tenure", "spend"]
ROW = {"tenure": 0.5, "spend": -1.0}


def _register(vigil: Vigil, name: str, alias: str | None = "production") -> int:
    X, y = make_classification(n_samples=100, n_features=2, n_informative=2, n_redundant=0,
                               random_state=0)  # fmt: skip
    frame = pd.DataFrame(X, columns=FEATURES)
    model = LogisticRegression().fit(frame, y)
    return vigil.register(model, name=name, reference=frame.assign(y=y), target="y",
                          alias=alias).version  # fmt: skip


@pytest.fixture
def vigil(vigil_home: object) -> Iterator[Vigil]:
    instance = Vigil(load_settings())
    yield instance
    instance.database.dispose()


def test_an_empty_server_warns_then_serves_a_model_registered_while_it_runs(
    vigil: Vigil, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="vigil.serving")
    provider = RegistryProvider(vigil, poll_interval=0.1)
    with (
        ServerThread(vigil.serving_app(provider)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "models": 0}
        warning = " ".join(r.getMessage() for r in caplog.records)
        assert "no model to serve" in warning
        assert "vigil register" in warning and "picked up" in warning

        assert http.post("/v1/models/churn/predict", json={"inputs": ROW}).status_code == 404
        _register(vigil, "churn")

        def served() -> httpx.Response | None:
            r = http.post("/v1/models/churn/predict", json={"inputs": ROW})
            return r if r.status_code == 200 else None

        answer = wait_for(served, timeout=30, what="churn served without a restart").json()
        assert (answer["model"], answer["version"]) == ("churn", 1)
        assert http.get("/readyz").json() == {"status": "ready", "models": 1}

        # A model registered without the serving alias is not served; giving it the alias is
        # what serves it.
        _register(vigil, "fraud", alias=None)
        assert wait_for(lambda: provider.polls >= 3, timeout=30)
        assert http.post("/v1/models/fraud/predict", json={"inputs": ROW}).status_code == 404
        vigil.registry.set_alias("fraud", "production", 1)
        wait_for(
            lambda: http.post("/v1/models/fraud/predict", json={"inputs": ROW}).status_code == 200,
            timeout=30,
            what="fraud served once it has the alias",
        )


def test_a_server_given_explicit_models_serves_only_those(vigil: Vigil) -> None:
    _register(vigil, "churn")
    provider = RegistryProvider(vigil, uris=["models:/churn@production"], poll_interval=0.1)
    with (
        ServerThread(vigil.serving_app(provider)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        _register(vigil, "fraud")
        assert wait_for(lambda: provider.polls >= 3, timeout=30)
        assert http.post("/v1/models/fraud/predict", json={"inputs": ROW}).status_code == 404
        assert http.post("/v1/models/churn/predict", json={"inputs": ROW}).status_code == 200
