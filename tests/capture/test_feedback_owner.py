"""Feedback is bound to the API key that made the prediction (authentication on).

Another predict key can neither label someone else's prediction nor, by labelling first an
id the victim will choose (``X-Request-ID``), get the victim's own label dropped as a
duplicate; two keys that choose the same request id keep two separate predictions. An
admin key may label any prediction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import ROW, bearer, register_churn

from vigil.app import Vigil
from vigil.auth.keys import KeyStore
from vigil.feedback import FeedbackStore, labelled_predictions
from vigil.feedback.store import FeedbackStore as Store
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider


class Keys:
    def __init__(self, vigil: Vigil) -> None:
        store = KeyStore.from_vigil(vigil)
        victim, other = store.create("predict", name="victim"), store.create("predict")
        self.victim, self.victim_id = victim.token, victim.key.id
        self.other, self.other_id = other.token, other.key.id
        self.admin = store.create("admin", name="ops").token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vigil, ServerThread, Keys]]:
    vigil = register_churn(tmp_path_factory.mktemp("owner-home"))
    settings = ServingSettings(auth="on", auth_cache_seconds=5.0)
    provider = RegistryProvider(vigil, poll_interval=0.2, settings=settings)
    keys = Keys(vigil)
    with ServerThread(vigil.serving_app(provider)) as server:
        yield vigil, server, keys


@pytest.fixture
def http(served: tuple[Vigil, ServerThread, Keys]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1].url, timeout=30) as client:
        yield client


def _predict(http: httpx.Client, token: str, rid: str | None = None) -> str:
    headers = bearer(token) | ({"x-request-id": rid} if rid else {})
    r = http.post("/v1/models/churn/predict", json={"inputs": ROW}, headers=headers)
    assert r.status_code == 200, r.text
    returned: str = r.json()["request_id"]
    return returned


def _label(http: httpx.Client, token: str, *items: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/feedback", json={"feedback": list(items)}, headers=bearer(token))


def _joined(vigil: Vigil) -> pd.DataFrame:
    from vigil.capture.settings import CaptureSettings

    settings = CaptureSettings()
    home = vigil.settings.home
    feedback = FeedbackStore.from_settings(settings, home, vigil.artifacts)
    return labelled_predictions(
        "churn", feedback=feedback, store=vigil.artifacts, capture_dir=settings.resolved_dir(home)
    )


def test_another_key_cannot_label_a_prediction_it_did_not_make(
    served: tuple[Vigil, ServerThread, Keys], http: httpx.Client
) -> None:
    vigil, _server, keys = served
    rid = _predict(http, keys.victim)
    r = _label(
        http,
        keys.other,
        {"request_id": "unrelated-" + rid, "label": 0},
        {"request_id": rid, "label": 0},
    )
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"] == "forbidden"
    assert body["detail"]["errors"] == [{"index": 1, "request_id": rid}]
    assert "only the API key that made" in body["message"]
    assert rid not in set(_joined(vigil)["request_id"])  # and nothing of the batch was stored
    r = _label(http, keys.victim, {"request_id": rid, "label": 1})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    mine = _joined(vigil).set_index("request_id")
    assert mine.loc[rid, "label"] == 1 and mine.loc[rid, "caller"] == keys.victim_id


def test_a_label_sent_first_by_another_key_cannot_block_the_owners(
    served: tuple[Vigil, ServerThread, Keys], http: httpx.Client
) -> None:
    vigil, _server, keys = served
    rid = f"order-{uuid.uuid4().hex[:8]}"  # an id the victim will choose, guessed in advance
    early = _label(http, keys.other, {"request_id": rid, "label": 0})
    assert early.status_code == 200
    assert (early.json()["accepted"], early.json()["unknown"]) == (1, 1)  # stored, unmatched
    assert _predict(http, keys.victim, rid) == rid
    r = _label(http, keys.victim, {"request_id": rid, "label": 1})
    assert r.status_code == 200
    assert (r.json()["accepted"], r.json()["duplicates"], r.json()["unknown"]) == (1, 0, 0)
    again = _label(http, keys.victim, {"request_id": rid, "label": 0})
    assert again.json()["duplicates"] == 1  # the victim's own first label still wins
    joined = _joined(vigil)
    assert joined.loc[joined["request_id"] == rid, "label"].tolist() == [1]


def test_two_keys_choosing_one_request_id_keep_two_predictions(
    served: tuple[Vigil, ServerThread, Keys], http: httpx.Client
) -> None:
    vigil, _server, keys = served
    rid = f"shared-{uuid.uuid4().hex[:8]}"
    _predict(http, keys.victim, rid)
    _predict(http, keys.other, rid)
    assert _label(http, keys.victim, {"request_id": rid, "label": 1}).json()["accepted"] == 1
    assert _label(http, keys.other, {"request_id": rid, "label": 0}).json()["accepted"] == 1
    joined = _joined(vigil)
    mine = joined[joined["request_id"] == rid].set_index("caller")["label"].to_dict()
    assert mine == {keys.victim_id: 1, keys.other_id: 0}


def test_an_admin_key_may_label_any_prediction(
    served: tuple[Vigil, ServerThread, Keys], http: httpx.Client
) -> None:
    vigil, _server, keys = served
    rid = _predict(http, keys.victim)
    r = _label(http, keys.admin, {"request_id": rid, "label": 1})
    assert r.status_code == 200 and (r.json()["accepted"], r.json()["unknown"]) == (1, 0)
    assert _label(http, keys.victim, {"request_id": rid, "label": 0}).json()["duplicates"] == 1
    joined = _joined(vigil)
    assert joined.loc[joined["request_id"] == rid, "label"].tolist() == [1]


def test_feedback_from_the_cli_joins_whoever_made_the_prediction(
    served: tuple[Vigil, ServerThread, Keys], http: httpx.Client, tmp_path: Path
) -> None:
    vigil, _server, keys = served
    rid = _predict(http, keys.other)
    from vigil.capture.settings import CaptureSettings

    store = Store.from_settings(CaptureSettings(), vigil.settings.home, vigil.artifacts)
    result = store.submit([{"request_id": rid, "reward": 0.5}])  # no caller: the operator
    assert (result.accepted, result.unknown) == (1, 0)
    joined = _joined(vigil)
    assert joined.loc[joined["request_id"] == rid, "reward"].tolist() == [0.5]


def test_every_reader_joins_feedback_only_to_its_callers_prediction() -> None:
    from vigil.experiments._counts import counts_from_frames
    from vigil.experiments.config import EndpointConfig
    from vigil.monitor.measure import labelled_rows

    captured = pd.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "row": [0, 0],
            "caller": ["victim", "victim"],
            "endpoint": ["checkout", "checkout"],
            "variant": ["a", "b"],
            "status": [200, 200],
            "prediction": [1, 1],
        }
    )
    at = pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"], utc=True)
    feedback = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2"],
            "row": [0, 0, 0],
            "caller": ["other", "victim", "other"],  # the other key's came first
            "label": [0, 1, 0],
            "reward": [0.0, 1.0, 0.0],
            "time": at,
        }
    )
    assert labelled_rows(captured, feedback)[["request_id", "label"]].values.tolist() == [["r1", 1]]
    config = EndpointConfig.model_validate(
        {
            "name": "checkout",
            "variants": [
                {"name": "a", "model": "models:/m@a"},
                {"name": "b", "model": "models:/m@b"},
            ],
            "policy": {"kind": "fixed", "variant": "a"},
        }
    )
    counts = counts_from_frames(config, captured, feedback)
    assert counts.feedback == {"a": 1, "b": 0}
