"""Replicas that agree: three ``vigil serve`` processes (two workers each) behind HAProxy,
on one PostgreSQL, one Redis and one S3 server (the cluster of ``conftest.py``).

* an alias move reaches every replica within :data:`ALIAS_BOUND_S`, with no failed request;
* a rolling restart (SIGTERM one replica, start it again, wait until HAProxy sends it
  traffic; then the next) under load fails no request and loses no prediction;
* the inference logs of all replicas are compacted into the one store, every request id
  answered exactly once, none lost.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from tests._waiting import wait_for
from tests.cluster._load import Load
from tests.cluster.conftest import Cluster
from tests.experiments._endpoints import row

from vigil.capture.reader import read_capture_table

pytestmark = pytest.mark.slow

PREDICT = "/v1/models/churn/predict"
ALIAS_BOUND_S = 5.0
"""How long after an alias move every replica serves the new version, at most: the poll
interval (1 s, the default) plus loading and warming the version in each worker (the
bundle fetched from S3), with room for a loaded two-core machine."""


def compacted(cluster: Cluster, model: str, since: datetime) -> Counter[str]:
    """How many rows of each request id of ``model`` the shared store's Parquet holds."""
    table = read_capture_table(model, since=since, store=cluster.vigil.artifacts)
    return Counter() if table is None else Counter(table.column("request_id").to_pylist())


def served_versions(url: str, tries: int = 20) -> set[int]:
    """The versions of ``churn`` one replica answers with, over fresh connections (the
    kernel spreads them over its workers)."""
    seen = set()
    for _ in range(tries):
        r = httpx.post(f"{url}{PREDICT}", json={"inputs": row()}, timeout=30)
        assert r.status_code == 200, r.text
        seen.add(r.json()["version"])
    return seen


def test_an_alias_move_reaches_every_replica_within_the_bound(cluster: Cluster) -> None:
    registry = cluster.vigil.registry
    before = registry.resolve("models:/churn@production").version
    after = 2 if before == 1 else 1
    with Load(cluster.url, PREDICT, {"inputs": row()}) as load:
        load.wait(100)
        moved_at = time.monotonic()
        registry.set_alias("churn", "production", after)

        def settled() -> bool:
            late = [a for a in load.snapshot() if a.sent > moved_at]
            return len(late) >= 300 and all(a.body["version"] == after for a in late[-200:])

        wait_for(settled, 60, what="every replica to answer with the new version")
    answers = load.snapshot()
    assert {a.status for a in answers} == {200}, load.failed()[:5]
    old = [a.sent for a in answers if a.body["version"] == before]
    lag = max(old) - moved_at
    print(f"last answer of the old version sent {lag:.2f} s after the alias move")
    assert lag < ALIAS_BOUND_S
    assert all(a.body["version"] == after for a in answers if a.sent > moved_at + ALIAS_BOUND_S)
    for replica in cluster.servers.replicas:  # each replica directly, not through HAProxy
        assert served_versions(replica.url) == {after}


def test_a_rolling_restart_under_load_fails_no_request(cluster: Cluster) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    servers = cluster.servers
    with Load(cluster.url, PREDICT, {"inputs": row()}, prefix="roll") as load:
        load.wait(100)
        for replica in servers.replicas:
            starts = replica.starts
            assert servers.restart(replica) == 0, replica.output()[-3000:]
            assert replica.starts == starts + 1
            load.wait(100)
    failed = load.failed()
    assert not failed, f"{len(failed)} of {len(load.snapshot())} failed: {failed[:5]}"
    answered = load.answered()
    assert len(answered) > 300
    # Every prediction answered, through all three restarts, is in the store exactly once.
    wait_for(
        lambda: set(answered) <= set(compacted(cluster, "churn", since)),
        60,
        what="every answered prediction to be compacted",
    )
    counts = compacted(cluster, "churn", since)
    assert {rid: n for rid, n in counts.items() if rid.startswith("roll") and n != 1} == {}
    assert {rid for rid in counts if rid.startswith("roll")} == set(answered)
