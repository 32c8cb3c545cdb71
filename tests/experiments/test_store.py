"""The endpoint store: create/read/update/delete with revisions, audit rows, and bad input
that changes nothing and says why."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.experiments._registry import split_endpoint, vigil_with_models

from vigil.app import Vigil
from vigil.audit import AuditLogRow
from vigil.errors import (
    AliasNotFoundError,
    ConflictError,
    EndpointNotFoundError,
    InvalidNameError,
    InvalidParameterError,
    ModelNotFoundError,
    NotFoundError,
    VersionNotFoundError,
    VigilError,
)
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore


@pytest.fixture
def vigil(tmp_path: Path, make_bundle: Callable[..., Path]) -> Vigil:
    return vigil_with_models(tmp_path / "home", make_bundle)


def audit_count(vigil: Vigil) -> int:
    with vigil.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditLogRow)) or 0)


def endpoint_audit(vigil: Vigil) -> list[Any]:
    return [e for e in reversed(vigil.registry.audit(limit=500)) if e.entity_type == "endpoint"]


def test_create_get_list_update_delete_with_revisions_and_audit(vigil: Vigil) -> None:
    store = EndpointStore(vigil)
    cfg = parse_endpoint(split_endpoint())
    assert store.create(cfg, actor="ada") == cfg
    assert store.get("checkout") == cfg
    assert store.revision("checkout") == 1
    stored = store.describe("checkout")
    assert (stored.created_by, stored.updated_by, stored.revision) == ("ada", "ada", 1)

    changed = parse_endpoint(split_endpoint(policy={"kind": "split", "weights": {"a": 1, "b": 1}}))
    store.update("checkout", changed, actor="bob")
    assert store.get("checkout").policy.model_dump() == {
        "kind": "split",
        "weights": {"a": 1.0, "b": 1.0},
    }
    assert store.revision("checkout") == 2
    assert store.describe("checkout").updated_by == "bob"
    # The same configuration again changes nothing.
    store.update("checkout", changed, actor="bob")
    assert store.revision("checkout") == 2

    store.create(parse_endpoint(split_endpoint("search")), actor="ada")
    assert [c.name for c in store.list()] == ["checkout", "search"]
    assert store.list_revisions() == {"checkout": 2, "search": 1}

    store.delete("checkout", actor="carol")
    assert store.list_revisions() == {"search": 1}
    with pytest.raises(
        EndpointNotFoundError, match="no endpoint named 'checkout'; endpoints: search"
    ):
        store.get("checkout")
    # Created again, its revision keeps counting: a worker that cached 2 sees a change.
    store.create(cfg, actor="ada")
    assert store.revision("checkout") == 4

    events = endpoint_audit(vigil)
    assert [(e.action, e.entity_name, e.actor) for e in events] == [
        ("endpoint.create", "checkout", "ada"),
        ("endpoint.update", "checkout", "bob"),
        ("endpoint.create", "search", "ada"),
        ("endpoint.delete", "checkout", "carol"),
        ("endpoint.create", "checkout", "ada"),
    ]
    create, update, _, delete, _ = events
    assert create.before is None and create.after["revision"] == 1
    assert create.after["policy"] == {"kind": "split", "weights": {"a": 90.0, "b": 10.0}}
    assert update.before["policy"]["weights"] == {"a": 90.0, "b": 10.0}
    assert update.after["policy"]["weights"] == {"a": 1.0, "b": 1.0}
    assert (update.before["revision"], update.after["revision"]) == (1, 2)
    assert delete.before["revision"] == 2 and delete.after is None


def test_an_update_without_a_salt_keeps_the_stored_one(vigil: Vigil) -> None:
    store = EndpointStore(vigil)
    store.create(parse_endpoint(split_endpoint()), actor="ada")
    data = split_endpoint(policy={"kind": "split", "weights": {"a": 50, "b": 50}})
    del data["salt"]
    store.update("checkout", parse_endpoint(data), actor="ada")
    assert store.get("checkout").salt == "pepper"
    store.update("checkout", parse_endpoint({**data, "salt": "new"}), actor="ada")
    assert store.get("checkout").salt == "new"


def test_put_creates_then_updates(vigil: Vigil) -> None:
    store = EndpointStore(vigil)
    _, created = store.put(parse_endpoint(split_endpoint()), actor="ada")
    _, again = store.put(
        parse_endpoint(split_endpoint(alert_webhooks=["https://hooks.example/x"])), actor="ada"
    )
    assert (created, again) == (True, False)
    assert store.revision("checkout") == 2


def bad_model(model: str) -> dict[str, Any]:
    data = split_endpoint()
    data["variants"][1]["model"] = model
    return data


BAD: list[tuple[dict[str, Any], type[VigilError], str]] = [
    (
        bad_model("models:/nosuch/1"),
        ModelNotFoundError,
        "variant 'b' (models:/nosuch/1): no model named 'nosuch'; registered models: churn, fraud",
    ),
    (
        bad_model("models:/churn/9"),
        VersionNotFoundError,
        "variant 'b' (models:/churn/9): model 'churn' has no version 9; it has versions 1..3",
    ),
    (
        bad_model("models:/fraud@production"),
        AliasNotFoundError,
        "variant 'b' (models:/fraud@production): model 'fraud' has no alias 'production'",
    ),
    (
        split_endpoint(policy={"kind": "split", "weights": {"a": 90, "zz": 10}}),
        InvalidParameterError,
        "policy names unknown variant 'zz'; the variants are: a, b",
    ),
    (
        split_endpoint(policy={"kind": "split", "weights": {"a": -1, "b": 10}}),
        InvalidParameterError,
        "weight of 'a' must be a finite number >= 0, got -1",
    ),
    (
        split_endpoint(policy={"kind": "split", "weights": {"a": 0, "b": 0}}),
        InvalidParameterError,
        "at least one weight must be positive",
    ),
    (
        split_endpoint(
            policy={"kind": "canary", "stable": "a", "canary": "b", "steps": [{"percent": 5}]}
        ),
        InvalidParameterError,
        "the ramp must end at 100 percent, got 5",
    ),
    (
        split_endpoint(policy={"kind": "epsilon_greedy", "epsilon": 1.5}),
        InvalidParameterError,
        "policy.epsilon_greedy.epsilon: Input should be less than or equal to 1",
    ),
    (
        split_endpoint(
            policy={"kind": "shadow", "primary": "a", "shadows": ["b"], "sample_rate": 0}
        ),
        InvalidParameterError,
        "sample_rate: Input should be greater than 0",
    ),
    (
        split_endpoint(name="../etc"),
        InvalidParameterError,
        "invalid endpoint name '../etc'",
    ),
]


@pytest.mark.parametrize(("data", "error", "message"), BAD, ids=[b[2][:40] for b in BAD])
def test_bad_input_changes_nothing_and_says_why(
    vigil: Vigil, data: dict[str, Any], error: type[VigilError], message: str
) -> None:
    store = EndpointStore(vigil)
    store.create(parse_endpoint(split_endpoint("existing")), actor="ada")
    before = (audit_count(vigil), store.list_revisions())
    with pytest.raises(error) as caught:
        store.create(parse_endpoint(data), actor="ada")
    assert message in caught.value.message
    if isinstance(caught.value, NotFoundError):
        assert caught.value.status == 404 and caught.value.detail["variant"] == "b"
    else:
        assert caught.value.status == 422
    if data["name"] == "checkout":  # the same bad variants or policy in an update
        with pytest.raises(error):
            store.update("existing", parse_endpoint({**data, "name": "existing"}), actor="ada")
    assert (audit_count(vigil), store.list_revisions()) == before


def test_conflicts_and_missing_endpoints(vigil: Vigil) -> None:
    store = EndpointStore(vigil)
    cfg = parse_endpoint(split_endpoint())
    store.create(cfg, actor="ada")
    with pytest.raises(ConflictError, match="endpoint 'checkout' already exists"):
        store.create(cfg, actor="ada")
    with pytest.raises(EndpointNotFoundError) as missing:
        store.update("search", cfg.model_copy(update={"name": "search"}), actor="ada")
    assert missing.value.status == 404 and "endpoints: checkout" in missing.value.message
    with pytest.raises(EndpointNotFoundError):
        store.delete("search", actor="ada")
    with pytest.raises(InvalidParameterError, match="cannot be renamed"):
        store.update("checkout", cfg.model_copy(update={"name": "other"}), actor="ada")
    with pytest.raises(InvalidNameError):
        store.get("../etc")
    assert store.revision("checkout") == 1


def test_the_store_on_postgres(
    tmp_path: Path, make_bundle: Callable[..., Path], migrated_postgres_url: str
) -> None:
    vigil = vigil_with_models(tmp_path / "home", make_bundle, database_url=migrated_postgres_url)
    store = EndpointStore(vigil)
    cfg = parse_endpoint(split_endpoint())
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        try:
            store.create(cfg, actor="ada")
        except ConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(errors) == 3  # exactly one creation won
    assert store.get("checkout") == cfg
    store.update(
        "checkout",
        parse_endpoint(split_endpoint(policy={"kind": "fixed", "variant": "b"})),
        actor="bob",
    )
    store.delete("checkout", actor="bob")
    assert store.list_revisions() == {}
    assert [e.action for e in endpoint_audit(vigil)] == [
        "endpoint.create",
        "endpoint.update",
        "endpoint.delete",
    ]
    vigil.database.dispose()
