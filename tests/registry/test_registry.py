"""The registry's behaviour, run on every storage backend (SQLite/PostgreSQL x local/S3)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import vigil
from vigil.bundle.manifest import read_manifest
from vigil.errors import (
    AliasNotFoundError,
    ArtifactCorruptError,
    BundleError,
    ConflictError,
    ImmutableVersionError,
    InvalidNameError,
    InvalidURIError,
    ModelNotFoundError,
    ValidationError,
    VersionNotFoundError,
)
from vigil.registry import Registry
from vigil.registry.tables import ModelVersionRow
from vigil.storage.tree import list_tree, tree_digest
from vigil.uri import ModelRef

MakeBundle = Callable[..., Path]


def _register(registry: Registry, make_bundle: MakeBundle, name: str, n: int) -> None:
    for i in range(n):
        registry.register_version(name, make_bundle(f"{name}-{i}"))


def test_register_numbers_versions_consecutively(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    before = datetime.now(UTC)
    bundles = [make_bundle(f"v{i}") for i in range(3)]
    versions = [
        registry.register_version(
            "churn",
            bundle,
            description=f"try {i}",
            tags={"team": "growth"},
            metrics={"auc": 0.8 + i / 100},
            lineage={"source_file": "model.skops", "reference_sha256": "ab" * 32},
        )
        for i, bundle in enumerate(bundles)
    ]
    assert [v.version for v in versions] == [1, 2, 3]
    first = versions[0]
    assert first.name == "churn"
    assert first.uri == "models:/churn/1"
    assert first.sha256 == tree_digest(list_tree(bundles[0]))
    assert first.size_bytes == sum(p.stat().st_size for p in bundles[0].rglob("*") if p.is_file())
    assert first.flavor == "sklearn"
    assert first.signature == read_manifest(bundles[0]).signature.model_dump(mode="json")
    assert first.manifest["format_version"] == 1
    assert first.metrics == {"auc": 0.8}
    assert first.tags == {"team": "growth"}
    assert first.description == "try 0"
    assert first.created_by == "tester"
    assert before <= first.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert first.created_at.tzinfo is not None
    assert first.lineage["source_file"] == "model.skops"
    assert first.lineage["reference_sha256"] == "ab" * 32
    assert first.lineage["host"] == socket.gethostname()
    assert first.lineage["vigil_version"] == vigil.__version__
    assert first.artifact_uri.endswith(f"bundles/{first.sha256[:2]}/{first.sha256}")
    assert first.aliases == []
    assert len({v.sha256 for v in versions}) == 3
    assert registry.list_versions("churn") == versions
    assert registry.get_version("churn", 2) == versions[1]


def test_each_model_counts_its_own_versions(registry: Registry, make_bundle: MakeBundle) -> None:
    _register(registry, make_bundle, "a", 2)
    _register(registry, make_bundle, "b", 1)
    registry.register_version("a", make_bundle("a-again"), alias="production")
    models = registry.list_models()
    assert [(m.name, m.latest_version, m.version_count, m.aliases) for m in models] == [
        ("a", 3, 3, {"production": 3}),
        ("b", 1, 1, {}),
    ]
    assert registry.get_model("a") == models[0]
    assert registry.alias_table() == {("a", "production"): 3}


def test_same_content_twice_is_two_versions_of_one_artifact(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    one = registry.register_version("churn", make_bundle("same"))
    two = registry.register_version("churn", make_bundle("same"))
    assert (one.version, two.version) == (1, 2)
    assert one.sha256 == two.sha256
    assert registry.store.has(one.sha256)


def test_resolve_by_number_alias_and_latest(registry: Registry, make_bundle: MakeBundle) -> None:
    _register(registry, make_bundle, "churn", 3)
    registry.set_alias("churn", "production", 2)
    assert registry.resolve("models:/churn/1").version == 1
    assert registry.resolve("models:/churn@production").version == 2
    assert registry.resolve("models:/churn@production").aliases == ["production"]
    assert registry.resolve("models:/churn/latest").version == 3
    assert registry.resolve("churn").version == 3
    assert registry.resolve("churn/v1").version == 1
    assert registry.resolve(ModelRef("churn", alias="production")).version == 2
    assert registry.resolve(ModelRef("churn", version=3)).version == 3


def test_not_found_errors_say_what_exists(registry: Registry, make_bundle: MakeBundle) -> None:
    _register(registry, make_bundle, "churn", 2)
    _register(registry, make_bundle, "fraud", 1)
    with pytest.raises(
        ModelNotFoundError, match="no model named 'chrn'; registered models: churn, fraud"
    ):
        registry.resolve("models:/chrn@production")
    with pytest.raises(
        AliasNotFoundError, match="model 'churn' has no alias 'prod'; it has no aliases yet"
    ):
        registry.resolve("models:/churn@prod")
    registry.set_alias("churn", "staging", 2)
    registry.set_alias("churn", "production", 1)
    with pytest.raises(
        AliasNotFoundError, match="model 'churn' has no alias 'prod'; aliases: production, staging"
    ) as info:
        registry.resolve("models:/churn@prod")
    assert info.value.status == 404
    with pytest.raises(
        VersionNotFoundError, match=r"model 'churn' has no version 7; it has versions 1\.\.2"
    ):
        registry.resolve("models:/churn/7")
    with pytest.raises(VersionNotFoundError, match="has no version 9"):
        registry.set_alias("churn", "production", 9)
    with pytest.raises(InvalidURIError):
        registry.resolve("models:/churn/x")


def test_empty_registry(registry: Registry) -> None:
    assert registry.list_models() == []
    assert registry.alias_table() == {}
    assert registry.audit() == []
    with pytest.raises(ModelNotFoundError, match="no models are registered yet"):
        registry.get_model("churn")


def test_alias_moves_and_rollbacks_walk_back_the_history(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    _register(registry, make_bundle, "churn", 4)
    for version in (1, 2, 3):
        registry.set_alias("churn", "production", version, reason=f"promote {version}")
    assert registry.resolve("churn@production").version == 3
    assert registry.rollback("churn") == (3, 2)
    assert registry.rollback("churn", "production", reason="still bad") == (2, 1)
    with pytest.raises(
        ConflictError, match="churn@production \\(version 1\\) has no earlier version"
    ) as info:
        registry.rollback("churn")
    assert info.value.status == 409
    # It says what happened and what to run, in the user's words, not vigil's internals.
    message = info.value.message
    assert "set_alias" not in message
    assert "already rolled back 2 moves" in message and "the first version it pointed to" in message
    assert "vigil alias set churn production VERSION" in message
    assert "vigil audit churn" in message
    assert registry.resolve("churn@production").version == 1
    history = registry.alias_history("churn", "production")
    assert [(e.action, e.from_version, e.to_version) for e in history] == [
        ("rollback", 2, 1),
        ("rollback", 3, 2),
        ("set", 2, 3),
        ("set", 1, 2),
        ("set", None, 1),
    ]
    assert history[0].reason == "still bad"
    assert history[-1].reason == "promote 1"
    assert {e.actor for e in history} == {"tester"}
    assert all(a.at >= b.at for a, b in itertools.pairwise(history))
    # A new move after rollbacks starts from where the alias is now.
    registry.set_alias("churn", "production", 4)
    assert registry.rollback("churn") == (4, 1)


def test_setting_an_alias_to_where_it_points_records_nothing(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    _register(registry, make_bundle, "churn", 1)
    registry.set_alias("churn", "production", 1)
    mv = registry.set_alias("churn", "production", 1)
    assert mv.version == 1 and mv.aliases == ["production"]
    assert len(registry.alias_history("churn", "production")) == 1
    assert [e.action for e in registry.audit("churn")] == [
        "set_alias",
        "register_version",
        "create_model",
    ]


def test_delete_alias(registry: Registry, make_bundle: MakeBundle) -> None:
    _register(registry, make_bundle, "churn", 2)
    registry.set_alias("churn", "production", 1)
    registry.set_alias("churn", "production", 2)
    assert registry.delete_alias("churn", "production", reason="retired") == 2
    with pytest.raises(AliasNotFoundError):
        registry.resolve("churn@production")
    with pytest.raises(AliasNotFoundError, match="has no alias 'production'; it has no aliases"):
        registry.rollback("churn")
    with pytest.raises(AliasNotFoundError):
        registry.delete_alias("churn", "production")
    assert registry.alias_table() == {}
    # Deleting forgets the rollback history: a re-created alias has nothing to go back to.
    registry.set_alias("churn", "production", 1)
    with pytest.raises(ConflictError):
        registry.rollback("churn")
    actions = [e.action for e in registry.alias_history("churn", "production")]
    assert actions == ["set", "delete", "set", "set"]


def test_aliases_of_different_models_and_names_are_independent(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    _register(registry, make_bundle, "a", 2)
    _register(registry, make_bundle, "b", 2)
    registry.set_alias("a", "production", 1)
    registry.set_alias("a", "production", 2)
    registry.set_alias("b", "production", 2)
    registry.set_alias("a", "staging", 1)
    assert registry.rollback("a") == (2, 1)
    with pytest.raises(ConflictError):
        registry.rollback("b")
    assert registry.alias_table() == {
        ("a", "production"): 1,
        ("a", "staging"): 1,
        ("b", "production"): 2,
    }
    assert registry.get_version("a", 1).aliases == ["production", "staging"]


def test_every_change_is_audited_with_before_and_after(
    registry: Registry, make_bundle: MakeBundle
) -> None:
    mv = registry.register_version("churn", make_bundle("1"), alias="staging")
    registry.register_version("churn", make_bundle("2"))
    registry.register_version("other", make_bundle("3"))
    registry.set_alias("churn", "staging", 2, reason="better auc")
    registry.rollback("churn", "staging")
    registry.delete_alias("churn", "staging")
    registry.update_version("churn", 1, description="the first", tags={"team": "growth"})
    registry.update_model("churn", description="who will leave")
    events = registry.audit("churn")
    assert [(e.action, e.entity_type, e.entity_name, e.before, e.after) for e in events] == [
        (
            "update_model",
            "model",
            "churn",
            {"description": None},
            {"description": "who will leave"},
        ),
        (
            "update_version",
            "model_version",
            "churn/1",
            {"description": None, "tags": {}},
            {"description": "the first", "tags": {"team": "growth"}},
        ),
        ("delete_alias", "alias", "churn@staging", {"version": 1}, None),
        ("rollback", "alias", "churn@staging", {"version": 2}, {"version": 1}),
        (
            "set_alias",
            "alias",
            "churn@staging",
            {"version": 1},
            {"version": 2, "reason": "better auc"},
        ),
        (
            "register_version",
            "model_version",
            "churn/2",
            None,
            {"version": 2, "sha256": registry.get_version("churn", 2).sha256, "flavor": "sklearn"},
        ),
        ("set_alias", "alias", "churn@staging", None, {"version": 1}),
        (
            "register_version",
            "model_version",
            "churn/1",
            None,
            {"version": 1, "sha256": mv.sha256, "flavor": "sklearn"},
        ),
        ("create_model", "model", "churn", None, {"name": "churn"}),
    ]
    assert {e.actor for e in events} == {"tester"}
    assert all(e.model_name == "churn" for e in events)
    assert [e.action for e in registry.audit("other")] == ["register_version", "create_model"]
    assert len(registry.audit()) == 11
    assert [e.action for e in registry.audit(limit=2)] == ["update_model", "update_version"]
    assert registry.get_model("churn").description == "who will leave"


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "a\\b", "a\x00b", "tab\tname", "", ".hidden", "x" * 129, "a..b"]
)
def test_invalid_model_names_are_refused_before_anything_is_stored(
    local_registry: Registry, make_bundle: MakeBundle, name: str
) -> None:
    with pytest.raises(InvalidNameError, match="invalid model name") as info:
        local_registry.register_version(name, make_bundle())
    assert info.value.status == 422
    assert local_registry.list_models() == []
    assert not local_registry.store.exists("bundles")


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v3", "3", "../prod", "a/b", "a\\b", "a\nb"])
def test_invalid_aliases_are_refused(
    local_registry: Registry, make_bundle: MakeBundle, alias: str
) -> None:
    with pytest.raises(InvalidNameError):
        local_registry.register_version("churn", make_bundle(), alias=alias)
    assert local_registry.list_models() == []
    _register(local_registry, make_bundle, "churn", 1)
    with pytest.raises(InvalidNameError):
        local_registry.set_alias("churn", alias, 1)
    assert local_registry.alias_table() == {}


def test_invalid_tags_and_metrics_are_refused(registry: Registry, make_bundle: MakeBundle) -> None:
    with pytest.raises(InvalidNameError, match="invalid tag key 'a/b'"):
        registry.register_version("churn", make_bundle(), tags={"a/b": "x"})
    with pytest.raises(ValidationError, match="tag 'team' must be a string, got int"):
        registry.register_version("churn", make_bundle(), tags={"team": 3})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="metric 'auc' must be a finite number, got nan"):
        registry.register_version("churn", make_bundle(), metrics={"auc": float("nan")})
    with pytest.raises(ValidationError, match="metric 'auc' must be a finite number, got True"):
        registry.register_version("churn", make_bundle(), metrics={"auc": True})
    assert registry.list_models() == []


def test_bundles_without_a_valid_manifest_are_refused(
    registry: Registry, make_bundle: MakeBundle, tmp_path: Path
) -> None:
    bundle = make_bundle()
    (bundle / "vigil.json").unlink()
    with pytest.raises(BundleError, match=r"has no vigil.json: it is not a bundle"):
        registry.register_version("churn", bundle)
    (bundle / "vigil.json").write_text('{"signature": {"inputs": []}}')
    with pytest.raises(BundleError, match="is invalid: flavor: Field required; rebuild"):
        registry.register_version("churn", bundle)
    (bundle / "vigil.json").write_text('{"flavor": "sklearn", "signature": [1]')
    with pytest.raises(BundleError, match="is invalid: the document: Invalid JSON"):
        registry.register_version("churn", bundle)
    with pytest.raises(BundleError, match="is not a directory"):
        registry.register_version("churn", tmp_path / "nowhere")
    assert registry.list_models() == []


def test_versions_are_immutable(registry: Registry, make_bundle: MakeBundle) -> None:
    first = registry.register_version("churn", make_bundle("1"))
    with (
        pytest.raises(ImmutableVersionError, match="tried to change sha256, signature"),
        registry.db.session() as session,
    ):
        row = session.query(ModelVersionRow).filter_by(version=1).one()
        row.sha256 = "0" * 64
        row.signature = {"inputs": []}
    assert registry.get_version("churn", 1) == first
    edited = registry.update_version("churn", 1, description="edited", tags={"k": "v"})
    assert (edited.description, edited.tags) == ("edited", {"k": "v"})
    assert edited.sha256 == first.sha256 and edited.signature == first.signature
    assert not hasattr(registry, "update_artifact")


def test_a_failure_mid_registration_leaves_no_row_and_no_artifact(
    registry: Registry, make_bundle: MakeBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = make_bundle("doomed")
    sha = tree_digest(list_tree(bundle))

    def broken_move(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(Registry, "_move_alias", broken_move)
    with pytest.raises(RuntimeError, match="database went away"):
        registry.register_version("churn", bundle, alias="production")
    monkeypatch.undo()
    assert registry.list_models() == []
    assert registry.audit() == []
    assert not registry.store.has(sha)
    assert registry.register_version("churn", bundle).version == 1  # and it can be retried


def test_a_failure_keeps_an_artifact_another_version_uses(
    registry: Registry, make_bundle: MakeBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = registry.register_version("a", make_bundle("shared"))

    def broken_move(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Registry, "_move_alias", broken_move)
    with pytest.raises(RuntimeError, match="boom"):
        registry.register_version("b", make_bundle("shared"), alias="production")
    monkeypatch.undo()
    assert [m.name for m in registry.list_models()] == ["a"]
    assert registry.store.has(kept.sha256)


def test_a_failed_upload_leaves_no_row(
    registry: Registry, make_bundle: MakeBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vigil.storage.artifacts as artifacts

    def unreadable(*args: object, **kwargs: object) -> None:
        raise PermissionError("model.bin: permission denied")

    monkeypatch.setattr(artifacts, "_copy_verified", unreadable)
    with pytest.raises(PermissionError):
        registry.register_version("churn", make_bundle())
    monkeypatch.undo()
    assert registry.list_models() == []
    assert (
        not registry.store.exists("bundles")
        or registry.store.fs.find(registry.store.resolve_key("bundles")) == []
    )


def test_fetch_bundle_is_cached_and_verified(
    registry: Registry, make_bundle: MakeBundle, tmp_path: Path
) -> None:
    bundle = make_bundle("fetch me")
    mv = registry.register_version("churn", bundle)
    cache = tmp_path / "cache"
    local = registry.fetch_bundle(mv, cache)
    assert local == cache / mv.sha256
    assert (local / "model.bin").read_bytes() == b"weights of fetch me"
    assert tree_digest(list_tree(local)) == mv.sha256
    assert registry.fetch_bundle(mv, cache) == local
    # A damaged cache is replaced by a fresh, verified copy.
    (local / "model.bin").write_bytes(b"damaged")
    assert (registry.fetch_bundle(mv, cache) / "model.bin").read_bytes() == b"weights of fetch me"
    # A tampered stored copy fails loudly.
    key = f"bundles/{mv.sha256[:2]}/{mv.sha256}/model.bin"
    registry.store.write_bytes(key, b"weights of evil!!!!")
    with pytest.raises(
        ArtifactCorruptError, match=re.escape("'model.bin' does not match its digest")
    ):
        registry.fetch_bundle(mv, tmp_path / "other-cache")
    assert not (tmp_path / "other-cache" / mv.sha256).exists()


def test_the_composition_roots_registry_follows_the_settings(
    vigil_home: Path, make_bundle: MakeBundle
) -> None:
    from vigil.app import Vigil
    from vigil.settings import load_settings

    registry = Vigil(load_settings(actor="alice")).registry
    mv = registry.register_version("churn", make_bundle())
    assert mv.created_by == "alice"
    assert (vigil_home / "vigil.db").is_file()
    assert (
        vigil_home / "artifacts" / "bundles" / mv.sha256[:2] / mv.sha256 / "vigil.json"
    ).is_file()
    registry.db.dispose()


def test_two_workers_fetching_one_bundle_at_once_both_get_it(
    registry: Registry, make_bundle: MakeBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker processes start together and fetch the same bundle into one cache: the one
    that renames its copy into place second must use the first one's (verified), not fail
    start-up with "Directory not empty"."""
    from vigil.storage import artifacts

    mv = registry.register_version("churn", make_bundle("raced"))
    cache = tmp_path / "cache"
    real_rename = os.rename

    def sibling_wins(src: str | Path, dst: str | Path) -> None:
        if Path(dst).parent == cache and not Path(dst).exists():
            shutil.copytree(src, dst)  # the other worker's copy lands first
        real_rename(src, dst)

    monkeypatch.setattr(artifacts.os, "rename", sibling_wins)
    local = registry.fetch_bundle(mv, cache)
    assert local == cache / mv.sha256
    assert tree_digest(list_tree(local)) == mv.sha256
    assert [p.name for p in cache.iterdir()] == [mv.sha256]  # no staging left behind
