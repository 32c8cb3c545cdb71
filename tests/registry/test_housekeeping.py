"""Registry housekeeping on every backend: alias listing, archiving, deleting versions and
models; nothing an alias or endpoint points at goes, numbers are never reused, artifacts
are reclaimed unless shared, and every step is audited."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from vigil.errors import ConflictError, ModelNotFoundError, VersionNotFoundError
from vigil.registry import Registry

MakeBundle = Callable[..., Path]


def _three(registry: Registry, make_bundle: MakeBundle) -> list[str]:
    """churn versions 1..3 (distinct content), production on 2; their digests."""
    shas = [registry.register_version("churn", make_bundle(f"c{i}")).sha256 for i in range(3)]
    registry.set_alias("churn", "production", 2)
    return shas


def test_alias_list(registry: Registry, make_bundle: MakeBundle) -> None:
    _three(registry, make_bundle)
    registry.register_version("fraud", make_bundle("f"), alias="staging")
    registry.set_alias("churn", "canary", 3)
    listed = [(a.name, a.alias, a.version) for a in registry.list_aliases()]
    assert listed == [
        ("churn", "canary", 3),
        ("churn", "production", 2),
        ("fraud", "staging", 1),
    ]
    assert [a.alias for a in registry.list_aliases("fraud")] == ["staging"]
    with pytest.raises(ModelNotFoundError):
        registry.list_aliases("nope")


def test_archive_refuses_an_aliased_version_and_keeps_it_out_of_service(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    _three(registry, make_bundle)
    with pytest.raises(ConflictError, match=r"alias churn@production \(version 2\)") as refused:
        registry.archive_version("churn", 2)
    assert refused.value.detail["aliases"] == {"production": 2}
    archived = registry.archive_version("churn", 3, reason="worse recall")
    assert archived.archived_at is not None
    assert registry.archive_version("churn", 3).archived_at == archived.archived_at  # no-op
    # latest skips it; asking by number still finds it (the record stays).
    assert registry.resolve("models:/churn/latest").version == 2
    assert registry.resolve("models:/churn/3").archived_at is not None
    with pytest.raises(ConflictError, match=r"archived.*vigil model unarchive churn 3"):
        registry.set_alias("churn", "production", 3)
    assert registry.unarchive_version("churn", 3).archived_at is None
    assert registry.set_alias("churn", "production", 3).version == 3
    actions = [(e.action, e.entity_name) for e in registry.audit("churn", limit=3)]
    assert actions == [
        ("set_alias", "churn@production"),
        ("unarchive_version", "churn/3"),
        ("archive_version", "churn/3"),
    ]
    assert registry.audit("churn", limit=3)[2].after == {"version": 3, "reason": "worse recall"}


def test_rollback_never_lands_on_an_archived_or_deleted_version(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    _three(registry, make_bundle)
    registry.set_alias("churn", "production", 3)
    registry.set_alias("churn", "production", 1)  # history 2 -> 3 -> 1: a rollback goes to 3
    registry.archive_version("churn", 3)  # nothing points at 3 now
    with pytest.raises(ConflictError, match="version 3 of 'churn' is archived"):
        registry.rollback("churn", "production")
    registry.unarchive_version("churn", 3)
    registry.delete_version("churn", 3)
    with pytest.raises(ConflictError, match="back to version 3: that version was deleted"):
        registry.rollback("churn", "production")
    assert registry.resolve("models:/churn@production").version == 1


def test_delete_version_reclaims_its_artifact_and_never_reuses_its_number(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    shas = _three(registry, make_bundle)
    with pytest.raises(ConflictError, match="churn@production"):
        registry.delete_version("churn", 2)
    assert registry.store.has_complete(shas[2])
    gone = registry.delete_version("churn", 3, reason="never served")
    assert gone.version == 3 and gone.sha256 == shas[2]
    assert not registry.store.has(shas[2])
    with pytest.raises(VersionNotFoundError):
        registry.get_version("churn", 3)
    assert [v.version for v in registry.list_versions("churn")] == [1, 2]
    # The next registration is 4: models:/churn/3 keeps meaning the deleted artifact.
    assert registry.register_version("churn", make_bundle("c-new")).version == 4
    event = registry.audit("churn", limit=2)[1]
    assert (event.action, event.entity_name, event.before) == (
        "delete_version",
        "churn/3",
        {"version": 3, "sha256": shas[2], "flavor": "sklearn"},
    )


def test_a_shared_artifact_stays_while_another_version_uses_it(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    bundle = make_bundle("same")
    first = registry.register_version("churn", bundle)
    registry.register_version("churn", bundle)
    registry.delete_version("churn", 1)
    assert registry.store.has_complete(first.sha256)
    assert registry.resolve("models:/churn/2").sha256 == first.sha256


def test_delete_model_refuses_aliases_unless_forced(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    shas = _three(registry, make_bundle)
    other = registry.register_version("fraud", make_bundle("c0"))  # same content as churn/1
    with pytest.raises(ConflictError, match=r"churn@production.*--force"):
        registry.delete_model("churn")
    gone = registry.delete_model("churn", force=True, reason="retired")
    assert (gone.versions, gone.aliases) == ([1, 2, 3], {"production": 2})
    with pytest.raises(ModelNotFoundError):
        registry.get_model("churn")
    assert [m.name for m in registry.list_models()] == ["fraud"]
    assert registry.list_aliases() == []
    assert other.sha256 == shas[0] and registry.store.has_complete(shas[0])  # shared: kept
    assert not registry.store.has(shas[1]) and not registry.store.has(shas[2])
    events = [(e.action, e.entity_name) for e in registry.audit("churn", limit=2)]
    assert events == [("delete_model", "churn"), ("delete_alias", "churn@production")]
    assert registry.audit("churn", limit=1)[0].before == {
        "versions": [1, 2, 3],
        "aliases": {"production": 2},
    }


def test_endpoints_hold_versions_and_models(registry: Registry, make_bundle: MakeBundle) -> None:
    _three(registry, make_bundle)

    def references(session: Session, model: str) -> list[tuple[str, str]]:
        return [("checkout", "models:/churn/3"), ("newest", "models:/churn/latest")]

    held = Registry(registry.db, registry.store, actor="t", endpoint_references=references)
    with pytest.raises(ConflictError, match=r"endpoint checkout \(models:/churn/3\)"):
        held.archive_version("churn", 3)
    with pytest.raises(ConflictError, match=r"endpoint newest \(models:/churn/latest\)"):
        held.delete_version("churn", 3)  # the newest in service
    assert held.acting_as("x").endpoint_references is references
    assert held.delete_version("churn", 1).version == 1  # nothing points at 1
    with pytest.raises(ConflictError, match=r"endpoint checkout.*update or delete the endpoint"):
        held.delete_model("churn", force=True)
    assert held.get_model("churn").version_count == 2
