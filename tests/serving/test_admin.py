"""The admin REST API over a real socket: roles, audited alias moves with the key as
actor, and the server serving the version the alias was moved to."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests._waiting import wait_for
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import ROW, bearer, make_tokens, register_churn

from vigil.app import Vigil
from vigil.auth.tokens import parse_token
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider

POLL = 0.2
BOUND = 10.0  # seconds: poll interval + load and warm, with a wide margin for a busy CI


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vigil, ServerThread]]:
    vigil = register_churn(tmp_path_factory.mktemp("admin-home"))
    provider = RegistryProvider(vigil, poll_interval=POLL, settings=ServingSettings(auth="on"))
    with ServerThread(vigil.serving_app(provider)) as server:
        yield vigil, server


@pytest.fixture(scope="module")
def tokens(served: tuple[Vigil, ServerThread]) -> dict[str, str]:
    return make_tokens(served[0])


@pytest.fixture
def http(served: tuple[Vigil, ServerThread]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1].url, timeout=30) as client:
        yield client


def key_id(token: str) -> str:
    parsed = parse_token(token)
    assert parsed is not None
    return parsed[0]


def served_version(http: httpx.Client, token: str) -> int:
    r = http.post("/v1/models/churn/predict", json={"inputs": ROW}, headers=bearer(token))
    assert r.status_code == 200, r.text
    version: int = r.json()["version"]
    return version


def wait_until_served(http: httpx.Client, token: str, version: int) -> float:
    started = time.monotonic()
    wait_for(
        lambda: served_version(http, token) == version,
        BOUND,
        what=f"version {version} to be served",
    )
    return time.monotonic() - started


def test_reads_need_read_and_changes_need_admin(http: httpx.Client, tokens: dict[str, str]):
    cases: list[tuple[str, str, object, dict[str, int]]] = [
        ("GET", "/v1/admin/models", None, {"read": 200, "predict": 200, "admin": 200}),
        ("GET", "/v1/admin/models/churn", None, {"read": 200, "predict": 200, "admin": 200}),
        ("GET", "/v1/admin/audit", None, {"read": 403, "predict": 403, "admin": 200}),
        (
            "PUT",
            "/v1/admin/models/churn/aliases/staging",
            {"version": 2},
            {"read": 403, "predict": 403},
        ),
        ("DELETE", "/v1/admin/models/churn/aliases/staging", None, {"read": 403}),
        ("POST", "/v1/admin/models/churn/aliases/production/rollback", None, {"predict": 403}),
    ]
    for method, path, body, expected in cases:
        assert http.request(method, path, json=body).status_code == 401, path
        got = {
            role: http.request(method, path, json=body, headers=bearer(tokens[role])).status_code
            for role in expected
        }
        assert got == expected, path


def test_list_and_show(http: httpx.Client, tokens: dict[str, str]):
    listed = http.get("/v1/admin/models", headers=bearer(tokens["read"])).json()
    [churn] = [m for m in listed["models"] if m["name"] == "churn"]
    assert (churn["latest_version"], churn["version_count"]) == (2, 2)
    assert churn["aliases"]["production"] in (1, 2)
    shown = http.get("/v1/admin/models/churn", headers=bearer(tokens["read"])).json()
    assert shown["model"]["name"] == "churn"
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert all(len(v["sha256"]) == 64 and v["flavor"] == "sklearn" for v in shown["versions"])
    assert shown["versions"][0]["sha256"] != shown["versions"][1]["sha256"]


def test_moving_the_alias_is_audited_and_served(
    http: httpx.Client, tokens: dict[str, str], served: tuple[Vigil, ServerThread]
):
    admin = tokens["admin"]
    vigil = served[0]
    assert served_version(http, admin) == 1
    r = http.put(
        "/v1/admin/models/churn/aliases/production",
        json={"version": 2, "reason": "better recall"},
        headers=bearer(admin),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "churn", "alias": "production", "version": 2}
    assert vigil.registry.resolve("models:/churn@production").version == 2
    assert wait_until_served(http, admin, 2) < BOUND

    [event] = vigil.registry.audit("churn", limit=1)
    assert (event.actor, event.action, event.entity_name) == (
        f"key:{key_id(admin)}",
        "set_alias",
        "churn@production",
    )
    assert (event.before, event.after) == (
        {"version": 1},
        {"version": 2, "reason": "better recall"},
    )
    [history] = vigil.registry.alias_history("churn", "production")[:1]
    assert (history.actor, history.reason) == (f"key:{key_id(admin)}", "better recall")

    # A state change needs the JSON content type even without a body (no form can send it).
    r = http.post(
        "/v1/admin/models/churn/aliases/production/rollback", json={}, headers=bearer(admin)
    )
    assert r.json() == {"model": "churn", "alias": "production", "from_version": 2, "to_version": 1}
    assert wait_until_served(http, admin, 1) < BOUND

    trail = http.get("/v1/admin/models/churn/audit", headers=bearer(admin)).json()["events"]
    assert [(e["action"], e["actor"]) for e in trail[:2]] == [
        ("rollback", f"key:{key_id(admin)}"),
        ("set_alias", f"key:{key_id(admin)}"),
    ]
    everything = http.get("/v1/admin/audit", headers=bearer(admin)).json()["events"]
    assert {"create_api_key", "rollback", "register_version"} <= {e["action"] for e in everything}


def test_delete_alias(
    http: httpx.Client, tokens: dict[str, str], served: tuple[Vigil, ServerThread]
):
    admin = {**bearer(tokens["admin"]), "content-type": "application/json"}
    assert (
        http.put(
            "/v1/admin/models/churn/aliases/canary", json={"version": 2}, headers=admin
        ).status_code
        == 200
    )
    r = http.delete("/v1/admin/models/churn/aliases/canary", headers=admin)
    assert r.json() == {"model": "churn", "alias": "canary", "version": 2}
    assert served[0].registry.audit("churn", limit=1)[0].action == "delete_alias"
    again = http.delete("/v1/admin/models/churn/aliases/canary", headers=admin)
    assert again.status_code == 404 and again.json()["error"] == "alias_not_found"


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/v1/admin/models/churn/aliases/staging", {"version": "2"}, 422, "validation_error"),
        ("/v1/admin/models/churn/aliases/staging", {"version": True}, 422, "validation_error"),
        ("/v1/admin/models/churn/aliases/staging", {"version": 2**40}, 422, "validation_error"),
        ("/v1/admin/models/churn/aliases/staging", [2], 422, "validation_error"),
        ("/v1/admin/models/churn/aliases/staging", {"version": 2, "x": 1}, 422, "validation_error"),
        ("/v1/admin/models/churn/aliases/staging", {"version": 99}, 404, "version_not_found"),
        ("/v1/admin/models/churn/aliases/v2", {"version": 1}, 422, "invalid_name"),
        ("/v1/admin/models/nope/aliases/staging", {"version": 1}, 404, "model_not_found"),
        ("/v1/admin/models/..x/aliases/staging", {"version": 1}, 422, "invalid_name"),
    ],
)
def test_bad_changes_get_clear_4xx(
    http: httpx.Client, tokens: dict[str, str], path: str, body: object, status: int, error: str
):
    r = http.put(path, json=body, headers=bearer(tokens["admin"]))
    assert (r.status_code, r.json()["error"]) == (status, error), r.text


def test_rolling_back_without_history_is_a_conflict(http: httpx.Client, tokens: dict[str, str]):
    admin = bearer(tokens["admin"])
    http.put("/v1/admin/models/churn/aliases/fresh", json={"version": 1}, headers=admin)
    r = http.post("/v1/admin/models/churn/aliases/fresh/rollback", json={}, headers=admin)
    assert r.status_code == 409 and "no earlier version" in r.json()["message"]


def test_a_server_without_a_registry_has_no_admin_api(client: httpx.Client):
    # The shared test server serves fixed in-memory models with authentication off.
    r = client.get("/v1/admin/models")
    assert r.status_code == 404 and "has no registry" in r.json()["message"]


def test_with_auth_off_changes_are_audited_as_anonymous(vigil_home: Path):
    vigil = register_churn(vigil_home)
    provider = RegistryProvider(vigil, poll_interval=0, settings=ServingSettings(auth="off"))
    app = vigil.serving_app(provider)  # no lifespan: the admin API needs no loaded model

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return await http.put("/v1/admin/models/churn/aliases/production", json={"version": 2})

    assert asyncio.run(call()).json()["version"] == 2
    assert vigil.registry.audit("churn", limit=1)[0].actor == "http:anonymous"


def test_openapi_documents_the_admin_api(client: httpx.Client):
    doc = client.get("/openapi.json").json()
    put = doc["paths"]["/v1/admin/models/{name}/aliases/{alias}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AliasChange"
    }
    assert doc["components"]["schemas"]["AliasChange"]["required"] == ["version"]
    assert doc["paths"]["/v1/admin/models"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"] == {"$ref": "#/components/schemas/AdminModelList"}


def test_an_admin_body_of_megabytes_is_refused_before_it_is_read(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    # An alias change is two fields: a 100 KB body of 5,000 fields is refused (413) by the
    # route's own limit, not parsed and checked field by field.
    body = {"version": 1, **{f"field{i}": i for i in range(5_000)}}
    r = http.put(
        "/v1/admin/models/churn/aliases/production", json=body, headers=bearer(tokens["admin"])
    )
    assert r.status_code == 413, r.text
    assert r.json()["detail"]["limit"] == 64 * 1024
    assert "this operation takes a body of a few fields" in r.json()["message"]
