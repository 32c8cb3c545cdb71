"""Several processes registering versions of one model at the same moment."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.registry import Registry
from vigil.storage import ArtifactStore, Database

PROCESSES = 4
VERSIONS_EACH = 3

# Each worker waits for the "go" file so that all of them register at once.
_WORKER = """
import json, sys, time
from pathlib import Path
from vigil.registry import Registry
from vigil.storage import ArtifactStore, Database

db_url, store_root, go, worker, count = sys.argv[1:6]
work = Path(store_root).parent / f"worker-{worker}"
registry = Registry(Database(db_url), ArtifactStore(store_root), actor=f"worker-{worker}")
bundles = []
for i in range(int(count)):
    bundle = work / f"bundle-{i}"
    bundle.mkdir(parents=True)
    manifest = {"flavor": "sklearn", "model_file": "model.bin", "signature": {"inputs": []},
                "source": {"kind": "file", "name": "model.bin"}}
    (bundle / "vigil.json").write_text(json.dumps(manifest))
    (bundle / "model.bin").write_text(f"worker {worker} model {i}")
    bundles.append(bundle)
while not Path(go).exists():
    time.sleep(0.005)
versions = [registry.register_version("churn", b, alias="production").version for b in bundles]
print(json.dumps(versions))
"""


def _register_concurrently(db_url: str, tmp_path: Path) -> list[list[int]]:
    go = tmp_path / "go"
    store_root = tmp_path / "store"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                db_url,
                str(store_root),
                str(go),
                str(w),
                str(VERSIONS_EACH),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    go.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    return results


def _check(db_url: str, tmp_path: Path, results: list[list[int]]) -> None:
    total = PROCESSES * VERSIONS_EACH
    numbers = sorted(v for vs in results for v in vs)
    assert numbers == list(range(1, total + 1))
    assert all(vs == sorted(vs) for vs in results)  # each worker's own versions only grow
    db = Database(db_url)
    registry = Registry(db, ArtifactStore(str(tmp_path / "store")), actor="checker")
    versions = registry.list_versions("churn")
    assert [v.version for v in versions] == list(range(1, total + 1))
    assert len({v.sha256 for v in versions}) == total
    assert {v.created_by for v in versions} == {f"worker-{w}" for w in range(PROCESSES)}
    assert all(registry.store.has(v.sha256) for v in versions)
    assert [m.name for m in registry.list_models()] == ["churn"]
    audit = registry.audit("churn", limit=1000)
    assert sum(e.action == "create_model" for e in audit) == 1
    assert sum(e.action == "register_version" for e in audit) == total
    history = registry.alias_history("churn", "production")
    assert len(history) == total
    # The alias history is one unbroken chain of moves.
    chain = list(reversed(history))
    assert chain[0].from_version is None
    assert all(b.from_version == a.to_version for a, b in itertools.pairwise(chain))
    assert registry.resolve("churn@production").version == chain[-1].to_version
    db.dispose()


@pytest.mark.slow
def test_concurrent_registration_on_sqlite(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    _check(db_url, tmp_path, _register_concurrently(db_url, tmp_path))


@pytest.mark.slow
def test_concurrent_registration_on_postgres(fresh_postgres_url: str, tmp_path: Path) -> None:
    # A fresh, unmigrated database: the workers also race to create the schema.
    _check(fresh_postgres_url, tmp_path, _register_concurrently(fresh_postgres_url, tmp_path))
