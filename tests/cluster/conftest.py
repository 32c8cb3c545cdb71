"""One cluster for the tests of this directory: three ``vigil serve`` replicas (two workers
each) on one PostgreSQL database, one Redis database and one S3 prefix, behind HAProxy
checking ``/readyz`` (see :func:`tests.servers.vigil_cluster`).

Starting it costs about as much as all the tests together, so it is started once for the
whole directory; a test that restarts replicas leaves every one of them up again.

Every replica compacts its capture log every second (segments closed after a second), and
monitors every second with 5-second windows and a grace of 4 seconds, so cross-replica
results show up in seconds rather than the production defaults' minutes. A webhook
receiver in the test process gets the monitoring alerts and the canaries' alerts.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.experiments._endpoints import ConstantClassifier, make_vigil, register
from tests.servers import PostgresServer, RedisServer, S3Server, VigilCluster, vigil_cluster

from vigil.app import Vigil

REDIS_DB = 7
"""The Redis database of the cluster (the session's other tests use database 0)."""

WINDOW_S = 5
GRACE_S = 4


@dataclass
class Deliveries:
    """Every JSON body posted to the receiver, with the path it was posted to."""

    received: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """The alerts posted to ``path`` (a body may hold one or a list under ``alerts``)."""
        with self.lock:
            bodies = [body for where, body in self.received if where == path]
        found: list[dict[str, Any]] = []
        for body in bodies:
            if isinstance(body, list):
                found.extend(body)
            elif isinstance(body, dict) and "alerts" in body:
                found.extend(body["alerts"])
            else:
                found.append(body)
        return found


class Receiver:
    """A webhook receiver on a loopback port: ``url(path)`` for each kind of alert."""

    def __init__(self) -> None:
        self.deliveries = Deliveries()
        deliveries = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                with deliveries.lock:
                    deliveries.received.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Cluster:
    """The running cluster, a :class:`Vigil` of the test process on the same backends (to
    register, move aliases and read what the replicas wrote), and the webhook receiver."""

    servers: VigilCluster
    vigil: Vigil
    receiver: Receiver
    _parts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.servers.url

    def compacted(self, model: str) -> dict[str, list[str]]:
        """The request ids of every Parquet part of ``model``'s compacted capture, by the
        id of the segment it came from (``capture-<host>-<pid>-...``). A part never changes
        once written (its name is its segment's), so each is read once, however often a
        test polls: a second of segments from six workers makes many small parts."""
        import pyarrow.parquet as pq

        from vigil.capture.compact import CAPTURE_ROOT, model_dir, partition_dirs

        store = self.vigil.artifacts
        found: dict[str, list[str]] = {}
        for path, _day in partition_dirs(store, root=CAPTURE_ROOT):
            if path.rsplit("/", 2)[-2] != model_dir(model):
                continue
            for part in store.fs.glob(f"{path}/part-*.parquet"):
                segment = str(part).rsplit("/", 1)[-1][len("part-") : -len(".parquet")]
                key = f"{model}/{segment}"
                if key not in self._parts:
                    with store.fs.open(part, "rb") as fh:
                        table = pq.read_table(fh, columns=["request_id"])
                    self._parts[key] = table.column("request_id").to_pylist()
                found[segment] = self._parts[key]
        return found

    def compacted_ids(self, model: str, prefix: str) -> Counter[str]:
        """How many compacted rows of ``model`` each request id starting ``prefix`` has."""
        return Counter(
            rid for ids in self.compacted(model).values() for rid in ids if rid.startswith(prefix)
        )


MONITOR_HOOK = "/monitor"


@pytest.fixture(autouse=True)
def _loopback_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver is on loopback: the test process checks endpoint webhooks too. Set per
    test (never for the whole session: a directory without ``__init__`` makes the cluster's
    "package" scope the session's, and the permission would leak into every later test)."""
    monkeypatch.setenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS", "true")


@pytest.fixture(scope="package")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    _postgres_template: str,
    redis: RedisServer,
    s3: S3Server,
) -> Iterator[Cluster]:
    import redis as redis_client

    base = tmp_path_factory.mktemp("cluster")
    settings: dict[str, Any] = {
        "database_url": postgres.create_database_from(_postgres_template, "cluster"),
        "artifact_url": s3.url(f"cluster-{uuid.uuid4().hex[:8]}"),
        "s3_endpoint_url": s3.endpoint_url,
        "redis_url": redis.url(REDIS_DB),
    }
    vigil = make_vigil(base / "control", **settings)
    # Models served by every replica from the start (their production alias).
    register(vigil, "churn", ConstantClassifier(0), alias="production")
    register(vigil, "churn", ConstantClassifier(1))
    register(vigil, "watched", ConstantClassifier(0), alias="production")
    rule = {
        "name": "cluster_traffic",
        "metric": "traffic.requests",
        "comparison": ">",
        "threshold": 0,
        "labels": {"model": "watched"},
    }
    with Receiver() as receiver:
        env = {
            "VIGIL_CAPTURE_SEGMENT_SECONDS": "1",
            "VIGIL_CAPTURE_COMPACT_INTERVAL_S": "1",
            "VIGIL_MONITOR_INTERVAL_S": "1",
            "VIGIL_MONITOR_WINDOW": f"{WINDOW_S}s",
            "VIGIL_MONITOR_GRACE_S": str(GRACE_S),
            "VIGIL_MONITOR_RULES": json.dumps([rule]),
            "VIGIL_MONITOR_WEBHOOKS": json.dumps([receiver.url(MONITOR_HOOK)]),
            "VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS": "true",
            "VIGIL_MONITOR_RETRIES": "0",
        }
        try:
            with vigil_cluster(base, settings, env=env) as servers:
                yield Cluster(servers, vigil, receiver)
        finally:
            vigil.database.dispose()
            with redis_client.Redis.from_url(settings["redis_url"]) as client:
                client.flushdb()
            postgres.drop_database(settings["database_url"])
