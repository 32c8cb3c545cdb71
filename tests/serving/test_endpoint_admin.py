"""The endpoint admin REST API over a real socket with authentication on: roles, audited
changes with the key as actor, bad input that changes nothing, status and conclusion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import bearer, make_tokens, register_churn

from vigil.app import Vigil
from vigil.audit import AuditLogRow
from vigil.auth.tokens import parse_token
from vigil.experiments.state import SqlPolicyState
from vigil.experiments.store import EndpointStore
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider
from vigil.stats.experiment import summarize_experiment
from vigil.stats.sufficient import ProportionStats


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vigil, ServerThread]]:
    vigil = register_churn(tmp_path_factory.mktemp("endpoint-admin-home"))
    provider = RegistryProvider(vigil, poll_interval=0.2, settings=ServingSettings(auth="on"))
    with ServerThread(vigil.serving_app(provider)) as server:
        yield vigil, server


@pytest.fixture(scope="module")
def tokens(served: tuple[Vigil, ServerThread]) -> dict[str, str]:
    return make_tokens(served[0])


@pytest.fixture
def vigil(served: tuple[Vigil, ServerThread]) -> Vigil:
    return served[0]


@pytest.fixture
def http(served: tuple[Vigil, ServerThread]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1].url, timeout=30) as client:
        yield client


def key(token: str) -> str:
    parsed = parse_token(token)
    assert parsed is not None
    return f"key:{parsed[0]}"


def split(**extra: Any) -> dict[str, Any]:
    return {
        "variants": [
            {"name": "a", "model": "models:/churn@production"},
            {"name": "b", "model": "models:/churn/2"},
        ],
        "policy": {"kind": "split", "weights": {"a": 90, "b": 10}},
        **extra,
    }


def audit_count(vigil: Vigil) -> int:
    with vigil.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditLogRow)) or 0)


def test_reads_need_read_and_changes_need_admin(http: httpx.Client, tokens: dict[str, str]) -> None:
    admin = bearer(tokens["admin"])
    assert http.put("/v1/admin/endpoints/roles", json=split(), headers=admin).status_code == 201
    cases: list[tuple[str, str, object, dict[str, int]]] = [
        ("GET", "/v1/admin/endpoints", None, {"read": 200, "predict": 200}),
        ("GET", "/v1/admin/endpoints/roles", None, {"read": 200}),
        ("GET", "/v1/admin/endpoints/roles/experiment", None, {"read": 200}),
        ("PUT", "/v1/admin/endpoints/roles", split(), {"read": 403, "predict": 403}),
        ("DELETE", "/v1/admin/endpoints/roles", None, {"read": 403, "predict": 403}),
        ("POST", "/v1/admin/endpoints/roles/conclude", {"promote": "b"}, {"predict": 403}),
    ]
    for method, path, body, expected in cases:
        assert http.request(method, path, json=body).status_code == 401, path
        got = {
            role: http.request(method, path, json=body, headers=bearer(tokens[role])).status_code
            for role in expected
        }
        assert got == expected, path


def test_create_update_show_list_delete_audited_as_the_key(
    http: httpx.Client, tokens: dict[str, str], vigil: Vigil
) -> None:
    admin = bearer(tokens["admin"])
    created = http.put("/v1/admin/endpoints/checkout", json=split(salt="s1"), headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["revision"], body["created_by"]) == (
        "checkout",
        1,
        key(tokens["admin"]),
    )
    changed = split(policy={"kind": "split", "weights": {"a": 1, "b": 1}})
    updated = http.put("/v1/admin/endpoints/checkout", json=changed, headers=admin)
    assert updated.status_code == 200 and updated.json()["revision"] == 2
    assert "salt" not in updated.json()  # a secret, shown to nobody
    assert EndpointStore(vigil).get("checkout").salt == "s1"  # not in the body: kept

    shown = http.get("/v1/admin/endpoints/checkout", headers=bearer(tokens["read"])).json()
    assert shown["policy"] == {"kind": "split", "weights": {"a": 1.0, "b": 1.0}}
    assert shown["live"]["control"] is None and shown["live"]["canary"] is None
    names = [e["name"] for e in http.get("/v1/admin/endpoints", headers=admin).json()["endpoints"]]
    assert "checkout" in names

    json_type = {**admin, "content-type": "application/json"}  # a change, even without a body
    gone = http.delete("/v1/admin/endpoints/checkout", headers=json_type)
    assert gone.json() == {"endpoint": "checkout", "deleted": True}
    missing = http.get("/v1/admin/endpoints/checkout", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"] == "endpoint_not_found"
    assert http.delete("/v1/admin/endpoints/checkout", headers=json_type).status_code == 404

    events = [e for e in vigil.registry.audit(limit=50) if e.entity_name == "checkout"]
    assert [(e.action, e.actor) for e in reversed(events)] == [
        ("endpoint.create", key(tokens["admin"])),
        ("endpoint.update", key(tokens["admin"])),
        ("endpoint.delete", key(tokens["admin"])),
    ]


def with_variant_b(model: str) -> dict[str, Any]:
    body = split()
    body["variants"][1]["model"] = model
    return body


BAD: list[tuple[object, int, str, str]] = [
    (with_variant_b("models:/nope/1"), 404, "model_not_found", "variant 'b' (models:/nope/1)"),
    (with_variant_b("models:/churn/7"), 404, "version_not_found", "has no version 7"),
    (with_variant_b("models:/churn@gold"), 404, "alias_not_found", "has no alias 'gold'"),
    (with_variant_b("churn/2"), 422, "invalid_parameter", "model must be models:/NAME@ALIAS"),
    # Past the database's integer columns: a clear 422, not an overflow in SQLite (500).
    (
        with_variant_b("models:/churn/9223372036854775808"),
        422,
        "invalid_parameter",
        "version number from 1 to 2147483647",
    ),
    (with_variant_b("models:/churn/²"), 422, "invalid_parameter", "the part after '/'"),
    (
        split(policy={"kind": "split", "weights": {"a": 90, "zz": 10}}),
        422,
        "invalid_parameter",
        "policy names unknown variant 'zz'; the variants are: a, b",
    ),
    (
        split(policy={"kind": "split", "weights": {"a": -1, "b": 1}}),
        422,
        "invalid_parameter",
        "weight of 'a' must be a finite number >= 0",
    ),
    (
        split(policy={"kind": "split", "weights": {"a": 0, "b": 0}}),
        422,
        "invalid_parameter",
        "at least one weight must be positive",
    ),
    (
        split(policy={"kind": "canary", "stable": "a", "canary": "b", "steps": [{"percent": 50}]}),
        422,
        "invalid_parameter",
        "the ramp must end at 100 percent, got 50",
    ),
    (
        split(policy={"kind": "thompson", "refresh_s": 0}),
        422,
        "invalid_parameter",
        "refresh_s: Input should be greater than 0",
    ),
    ({**split(), "name": "other"}, 422, "validation_error", "cannot be renamed"),
    ([1, 2], 422, "validation_error", "send a JSON object"),
]


@pytest.mark.parametrize(("body", "status", "code", "message"), BAD, ids=[b[3][:40] for b in BAD])
def test_bad_input_changes_nothing_and_says_why(
    http: httpx.Client,
    tokens: dict[str, str],
    vigil: Vigil,
    body: object,
    status: int,
    code: str,
    message: str,
) -> None:
    before = (audit_count(vigil), EndpointStore(vigil).list_revisions())
    r = http.put("/v1/admin/endpoints/bad", json=body, headers=bearer(tokens["admin"]))
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert message in r.json()["message"]
    assert (audit_count(vigil), EndpointStore(vigil).list_revisions()) == before


def test_malformed_json_and_bad_names(http: httpx.Client, tokens: dict[str, str]) -> None:
    admin = {**bearer(tokens["admin"]), "content-type": "application/json"}
    r = http.put("/v1/admin/endpoints/bad", content=b"{not json", headers=admin)
    assert r.status_code == 400 and r.json()["error"] == "malformed_request"
    r = http.get("/v1/admin/endpoints/..bad", headers=admin)
    assert r.status_code == 422 and "invalid endpoint name" in r.json()["message"]


def test_experiment_status_and_conclusion(
    http: httpx.Client, tokens: dict[str, str], vigil: Vigil
) -> None:
    admin = bearer(tokens["admin"])
    assert http.put("/v1/admin/endpoints/ab", json=split(), headers=admin).status_code == 201
    state = SqlPolicyState(vigil.database)
    state.add("ab", "a", requests=900, rewards=[1.0] * 90 + [0.0] * 810)
    state.add("ab", "b", requests=100, rewards=[1.0] * 20 + [0.0] * 80)
    status = http.get("/v1/admin/endpoints/ab/experiment", headers=bearer(tokens["read"])).json()
    expected = summarize_experiment(
        {"a": ProportionStats(900, 90), "b": ProportionStats(100, 20)},
        "a",
        weights={"a": 900, "b": 100},
    )
    assert status["summary"] == expected.to_dict()
    assert [v["requests"] for v in status["variants"]] == [900, 100]
    assert status["variants"][1]["prob_best"] == expected.variant("b").prob_best
    assert status["decision"] == expected.decision

    for body, message in [
        ({"promote": 3}, "'promote' must name the winning variant"),
        ({"promote": "b", "extra": 1}, "unknown field(s) 'extra'"),
        ({"promote": "c"}, "endpoint 'ab' has no variant 'c'; its variants are: a, b"),
        ({"promote": "b", "alias": "latest"}, "alias 'latest' is reserved"),
    ]:
        r = http.post("/v1/admin/endpoints/ab/conclude", json=body, headers=admin)
        assert r.status_code == 422 and message in r.json()["message"], r.text
    assert EndpointStore(vigil).revision("ab") == 1

    done = http.post(
        "/v1/admin/endpoints/ab/conclude", json={"promote": "b", "alias": "staging"}, headers=admin
    )
    assert done.status_code == 200, done.text
    assert (done.json()["variant"], done.json()["version"]) == ("b", 2)
    assert vigil.registry.resolve("models:/churn@staging").version == 2
    assert EndpointStore(vigil).get("ab").policy.model_dump() == {"kind": "fixed", "variant": "b"}
    conclusion = next(
        e for e in vigil.registry.audit(limit=20) if e.action == "experiment.conclude"
    )
    assert conclusion.actor == key(tokens["admin"])
    moved = vigil.registry.alias_history("churn", "staging")[0]
    assert (moved.to_version, moved.actor) == (2, key(tokens["admin"]))


def test_a_server_without_a_registry_has_no_endpoint_admin(client: httpx.Client) -> None:
    r = client.get("/v1/admin/endpoints")
    assert r.status_code == 404 and "has no registry" in r.json()["message"]
