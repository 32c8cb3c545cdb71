"""vigil.client.Client against a real registry-backed server with authentication on:
predictions (native and endpoints), feedback, the admin API, and typed errors."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import ROW, make_tokens, register_churn

from vigil.app import Vigil
from vigil.client import Client, ServerUnreachableError, _rows, problem_error
from vigil.errors import (
    AliasNotFoundError,
    AuthenticationError,
    ConflictError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    VersionNotFoundError,
)
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider
from vigil.serving.server import free_port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vigil, ServerThread]]:
    vigil = register_churn(tmp_path_factory.mktemp("client-home"))
    provider = RegistryProvider(vigil, poll_interval=0.2, settings=ServingSettings(auth="on"))
    with ServerThread(vigil.serving_app(provider)) as server:
        yield vigil, server


@pytest.fixture(scope="module")
def tokens(served: tuple[Vigil, ServerThread]) -> dict[str, str]:
    return make_tokens(served[0])


@pytest.fixture
def admin(served: tuple[Vigil, ServerThread], tokens: dict[str, str]) -> Iterator[Client]:
    with Client(served[1].url, tokens["admin"]) as client:
        yield client


def test_predict_by_default_alias_and_version(admin: Client, served: tuple[Vigil, ServerThread]):
    vigil = served[0]
    one = admin.predict("churn", ROW, proba=True)
    assert (one.model, one.version) == ("churn", 1)
    assert len(one.predictions) == 1 and one.classes == [0, 1]
    assert one.probabilities is not None and abs(sum(one.probabilities[0]) - 1) < 1e-9
    expected = vigil.load("models:/churn/1").predict(pd.DataFrame([ROW]))
    by_version = admin.predict("churn", [ROW, ROW], version=1)
    assert by_version.version == 1 and by_version.predictions == list(expected) * 2
    assert admin.predict("churn", ROW, alias="production").version == 1
    assert one.request_id != by_version.request_id


def test_predict_a_data_frame(admin: Client):
    frame = pd.DataFrame([ROW, {**ROW, "tenure": 2.0}])
    answer = admin.predict("churn", frame)
    assert answer.predictions == admin.predict("churn", frame.to_dict("records")).predictions
    # A missing value goes out as null (JSON has no NaN), for the server to judge.
    frame.loc[1, "tenure"] = float("nan")
    assert _rows(frame) == {
        "columns": ["tenure", "spend", "calls", "age"],
        "data": [list(ROW.values()), [None, -1.0, 0.2, 1.5]],
    }


def test_feedback_joins_a_prediction(admin: Client):
    answer = admin.predict("churn", ROW)
    result = admin.feedback(answer.request_id, label=1)
    assert (result.accepted, result.duplicates, result.unknown) == (1, 0, 0)
    again = admin.feedback_many(
        [{"request_id": answer.request_id, "label": 0}, {"request_id": "x1", "label": 1}]
    )
    assert (again.accepted, again.duplicates, again.unknown) == (1, 1, 1)
    assert again.unknown_request_ids == ["x1"]


def test_admin_api_moves_aliases_audited_as_the_key(admin: Client):
    names = [m["name"] for m in admin.models()]
    assert names == ["churn"]
    shown = admin.model("churn")
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert admin.set_alias("churn", "staging", 2, reason="try it") == {
        "model": "churn",
        "alias": "staging",
        "version": 2,
    }
    assert admin.set_alias("churn", "staging", 1)["version"] == 1
    assert admin.rollback("churn", "staging") == {
        "model": "churn",
        "alias": "staging",
        "from_version": 1,
        "to_version": 2,
    }
    assert admin.delete_alias("churn", "staging")["version"] == 2
    [newest] = admin.audit("churn")[:1]
    assert (newest["action"], newest["entity_name"]) == ("delete_alias", "churn@staging")
    assert newest["actor"].startswith("key:")


def test_endpoints_through_the_admin_api_and_predict(admin: Client):
    config = {
        "variants": [
            {"name": "a", "model": "models:/churn/1"},
            {"name": "b", "model": "models:/churn/2"},
        ],
        "policy": {"kind": "split", "weights": {"a": 50, "b": 50}},
    }
    created = admin.put_endpoint("checkout", config)
    assert created["name"] == "checkout"
    assert [e["name"] for e in admin.endpoints()] == ["checkout"]
    answers = [admin.predict_endpoint("checkout", ROW, unit_id="user-42") for _ in range(3)]
    assert {(a.endpoint, a.variant) for a in answers} in ({("checkout", "a")}, {("checkout", "b")})
    assert answers[0].version == {"a": 1, "b": 2}[answers[0].variant or ""]
    assert admin.experiment("checkout")["endpoint"] == "checkout"
    assert admin.delete_endpoint("checkout") == {"endpoint": "checkout", "deleted": True}
    with pytest.raises(NotFoundError):
        admin.endpoint("checkout")


def test_errors_are_the_vigil_error_classes(
    admin: Client, served: tuple[Vigil, ServerThread], tokens: dict[str, str]
):
    with pytest.raises(ModelNotFoundError) as missing:
        admin.predict("nope", ROW)
    assert missing.value.status == 404 and "nope" in missing.value.message
    assert missing.value.request_id  # type: ignore[attr-defined]
    with pytest.raises(LookupError):  # the builtin base works too
        admin.model("nope")
    with pytest.raises(VersionNotFoundError):
        admin.set_alias("churn", "x", 9)
    with pytest.raises(AliasNotFoundError):
        admin.delete_alias("churn", "nothing")
    with pytest.raises(ValidationError) as invalid:
        admin.predict("churn", {"tenure": "many"})
    assert invalid.value.detail.get("field") in ("tenure", "spend", "calls", "age")
    with pytest.raises(ConflictError):
        admin.rollback("churn", "production")
    with Client(served[1].url) as anonymous, pytest.raises(AuthenticationError):
        anonymous.predict("churn", ROW)
    with Client(served[1].url, tokens["read"]) as reader, pytest.raises(PermissionDeniedError):
        reader.set_alias("churn", "production", 2)


def test_an_unreachable_server_and_an_unknown_code():
    with Client(f"http://127.0.0.1:{free_port()}", timeout=5) as nowhere:
        assert repr(nowhere).startswith("Client('http://127.0.0.1:")
        with pytest.raises(ServerUnreachableError, match="vigil serve"):
            nowhere.models()
        assert nowhere.ready() is False
    html = problem_error(502, None)
    assert html.status == 502 and "without a vigil problem body" in html.message


def test_the_token_never_shows(tokens: dict[str, str], served: tuple[Vigil, ServerThread]):
    client = Client(served[1].url, tokens["admin"])
    assert tokens["admin"] not in repr(client)
    client.close()


def test_housekeeping_through_the_admin_api(admin: Client, served: tuple[Vigil, ServerThread]):
    vigil = served[0]
    bundle = vigil.registry.fetch_bundle(vigil.registry.get_version("churn", 1), vigil.cache_dir)
    for _ in range(2):
        vigil.registry.register_version("spare", bundle)
    admin.set_alias("spare", "production", 1)
    assert [(a["model"], a["alias"], a["version"]) for a in admin.aliases("spare")] == [
        ("spare", "production", 1)
    ]
    assert {a["model"] for a in admin.aliases()} == {"churn", "spare"}
    with pytest.raises(ConflictError) as aliased:
        admin.archive_version("spare", 1)
    assert aliased.value.detail["aliases"] == {"production": 1}
    pinned = {
        "variants": [
            {"name": "a", "model": "models:/churn/1"},
            {"name": "b", "model": "models:/spare/2"},
        ],
        "policy": {"kind": "split", "weights": {"a": 50, "b": 50}},
    }
    admin.put_endpoint("pinned", pinned)
    with pytest.raises(ConflictError, match=r"endpoint pinned \(models:/spare/2\)"):
        admin.delete_version("spare", 2)
    with pytest.raises(ConflictError, match="endpoint pinned"):
        admin.delete_model("spare", force=True)
    admin.delete_endpoint("pinned")
    assert admin.archive_version("spare", 2, reason="stale")["archived_at"]
    assert admin.unarchive_version("spare", 2)["archived_at"] is None
    assert admin.delete_version("spare", 2)["deleted"] is True
    with pytest.raises(ConflictError, match="--force"):
        admin.delete_model("spare")
    gone = admin.delete_model("spare", force=True, reason="done")
    assert (gone["versions"], gone["aliases"]) == ([1], {"production": 1})
    with pytest.raises(ModelNotFoundError):
        admin.model("spare")
    # churn/1 shares the deleted versions' artifact: it is still whole.
    assert vigil.registry.store.has_complete(vigil.registry.get_version("churn", 1).sha256)
    assert admin.audit("spare")[0]["actor"].startswith("key:")


def test_alerts_silences_and_acks_through_the_admin_api(
    admin: Client, served: tuple[Vigil, ServerThread], tokens: dict[str, str]
):
    from vigil.monitor.notify import fire_event
    from vigil.monitor.settings import MonitorSettings

    vigil = served[0]
    silence = admin.silence({"alertname": "drift", "model": "churn"}, "2h", comment="retraining")
    assert silence["matchers"] == {"alertname": "drift", "model": "churn"}
    assert [s["id"] for s in admin.silences()] == [silence["id"]]
    event = fire_event(
        vigil,
        name="drift",
        severity="warning",
        summary="churn drifted",
        labels={"model": "churn"},
        settings=MonitorSettings(webhooks=[]),
    )
    assert event is not None
    [alert] = [a for a in admin.alerts() if a["id"] == event.id]
    assert alert["silenced_until"] == silence["ends_at"]
    acked = admin.ack(event.id, comment="on it")
    assert acked["acknowledged_by"] == admin.audit()[0]["actor"]
    assert admin.audit()[0]["action"] == "acknowledge_alert"
    assert admin.unsilence(silence["id"])["ends_at"] <= silence["ends_at"]
    assert admin.silences() == []
    with pytest.raises(ValidationError, match="matches on alertname"):
        admin.silence({"team": "risk"}, "1h")
    with pytest.raises(NotFoundError):
        admin.ack(event.id + 1000)
    with Client(served[1].url, tokens["read"]) as reader:
        assert [a["id"] for a in reader.alerts()] == [event.id]
        with pytest.raises(PermissionDeniedError):
            reader.silence({"model": "churn"}, "1h")
