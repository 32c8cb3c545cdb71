"""Garbage collection of the content-addressed store under concurrency: a failed
registration removes its uploaded tree only when no version uses it, and never the tree of
a registration of the same content running at the same moment.

The interleavings are forced, not hoped for: registration A fails after storing the tree,
and at the moment A's clean-up has counted the versions using the tree and is about to
delete it, registration B of the same content is let run up to its own transaction. On
every backend (SQLite, PostgreSQL, S3), B's version must load afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from vigil.registry import Registry
from vigil.storage import ArtifactStore, Database

Backend = tuple[str, str, str | None]
WAIT_S = 60.0


def _open(backend: Backend) -> Registry:
    db_url, artifact_url, endpoint = backend
    store = ArtifactStore(artifact_url, s3_endpoint_url=endpoint)
    return Registry(Database(db_url), store, actor="tester")


@pytest.fixture
def pair(backend: Backend) -> Iterator[tuple[Registry, Registry]]:
    """Two registries on the same database and store, as two processes would hold them."""
    a, b = _open(backend), _open(backend)
    yield a, b
    a.db.dispose()
    b.db.dispose()


def _announce_write_transactions(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> threading.Event:
    """An event set when ``registry`` asks for a write transaction (before it has one)."""
    asked = threading.Event()
    real = registry.db.session

    @contextmanager
    def session(*, write: bool = False) -> Iterator[Any]:
        if write:
            asked.set()
        with real(write=write) as s:
            yield s

    monkeypatch.setattr(registry.db, "session", session)
    return asked


def _fail_after_storing(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def insert(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(registry, "_insert_version", insert)


def _before_delete(
    store: ArtifactStore, hook: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.delete

    def delete(sha: str) -> None:
        hook()
        real(sha)

    monkeypatch.setattr(store, "delete", delete)


def test_a_failed_registration_keeps_the_tree_a_concurrent_one_commits(
    pair: tuple[Registry, Registry],
    make_bundle: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    a, b = pair
    bundle = make_bundle("shared")
    b_asks = _announce_write_transactions(b, monkeypatch)
    _fail_after_storing(a, monkeypatch)
    outcome: dict[str, Any] = {}

    def register_b() -> None:
        try:
            outcome["version"] = b.register_version("fraud", bundle)
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    worker = threading.Thread(target=register_b)

    b_checks = threading.Event()
    real_has_complete = b.store.has_complete

    def has_complete(sha: str) -> bool:
        if b_asks.is_set():  # storing also looks: only the look inside the transaction counts
            b_checks.set()
        return real_has_complete(sha)

    monkeypatch.setattr(b.store, "has_complete", has_complete)

    def let_b_run() -> None:
        # A has decided nobody uses the tree. B stores the same content (already there, so
        # it uploads nothing) and asks for its transaction: from here on, B must end up
        # with a complete tree, whether A's delete comes before B's commit or not.
        worker.start()
        # (Recorded, not asserted: A's clean-up swallows errors raised in here.)
        outcome["b_asked"] = b_asks.wait(WAIT_S)
        # B may look at the store only once A's transaction is over: a look now would
        # see the tree that A is about to delete.
        outcome["b_checked_under_a_lock"] = b_checks.wait(0.5)

    _before_delete(a.store, let_b_run, monkeypatch)
    with pytest.raises(RuntimeError, match="database went away"):
        a.register_version("churn", bundle)
    worker.join(WAIT_S)
    assert not worker.is_alive()
    assert outcome["b_asked"], "B never reached its transaction"
    assert not outcome["b_checked_under_a_lock"], "B looked at the store while A held its lock"
    assert "error" not in outcome, outcome.get("error")
    mv = outcome["version"]
    assert b.resolve("models:/fraud/1").sha256 == mv.sha256
    copy = b.fetch_bundle(mv, tmp_path / "cache")
    assert (copy / "model.bin").read_bytes() == (bundle / "model.bin").read_bytes()


def test_a_failed_registration_removes_a_tree_nobody_uses(
    pair: tuple[Registry, Registry],
    make_bundle: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _b = pair
    _fail_after_storing(a, monkeypatch)
    bundle = make_bundle("alone")
    with pytest.raises(RuntimeError):
        a.register_version("churn", bundle)
    from vigil.storage.tree import list_tree, tree_digest

    assert not a.store.has(tree_digest(list_tree(bundle)))


def test_a_failed_registration_keeps_a_tree_a_committed_version_uses(
    pair: tuple[Registry, Registry],
    make_bundle: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = pair
    bundle = make_bundle("used")
    used = b.register_version("fraud", bundle)
    _fail_after_storing(a, monkeypatch)
    with pytest.raises(RuntimeError):
        a.register_version("churn", bundle)
    assert a.store.has_complete(used.sha256)
