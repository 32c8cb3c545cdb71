"""Shared fixtures: a private VIGIL_HOME per test, real PostgreSQL, Redis and S3 servers,
and a registry parametrised over every storage backend so the same tests run on each.

A test that starts a server carries its marker (``postgres``, ``redis``, ``s3``; see
:func:`pytest_collection_modifyitems` and :func:`tests.servers.needs`), so
``pytest -m "not postgres and not redis and not browser"`` is a fast run without them;
CI runs everything."""

from __future__ import annotations

import itertools
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # so `tests.servers` imports however pytest is started
    sys.path.insert(0, str(_ROOT))

from tests.servers import (  # noqa: E402
    AlertmanagerServer,
    PostgresServer,
    RedisServer,
    S3Server,
    alertmanager_server,
    needs,
    postgres_server,
    redis_server,
    s3_server,
)

if TYPE_CHECKING:
    from vigil.registry import Registry


# Fixtures that start a server, and the marker of the tests using them.
SERVER_FIXTURES = {
    "postgres": "postgres",
    "postgres_url": "postgres",
    "fresh_postgres_url": "postgres",
    "migrated_postgres_url": "postgres",
    "redis": "redis",
    "redis_url": "redis",
    "s3": "s3",
    "s3_url": "s3",
    "alertmanager": "alertmanager",
    "cluster": "haproxy",  # tests/cluster: vigil serve replicas behind HAProxy
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the servers its fixtures start."""
    for item in items:
        for name in SERVER_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(SERVER_FIXTURES[name])


@pytest.fixture(autouse=True)
def vigil_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own VIGIL_HOME, so none touches ~/.vigil."""
    home = tmp_path / "vigil-home"
    monkeypatch.setenv("VIGIL_HOME", str(home))
    return home


SIGNATURE = {
    "inputs": [{"name": "tenure", "dtype": "float64"}, {"name": "plan", "dtype": "string"}],
    "outputs": {"task": "classification", "classes": [0, 1]},
}


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    """A factory of small fake bundle directories (a ``vigil.json`` and a model file).

    ``make_bundle("a")`` and ``make_bundle("b")`` differ in content, so in digest.
    """
    counter = itertools.count()

    def make(content: str = "model", *, flavor: str = "sklearn") -> Path:
        bundle = tmp_path / f"bundle-{next(counter)}"
        (bundle / "data").mkdir(parents=True)
        manifest = {
            "flavor": flavor,
            "model_file": "model.bin",
            "signature": SIGNATURE,
            "source": {"kind": "file", "name": "model.bin"},
        }
        (bundle / "vigil.json").write_text(json.dumps(manifest))
        (bundle / "model.bin").write_bytes(f"weights of {content}".encode())
        (bundle / "data" / "reference.csv").write_text("tenure,plan\n1.5,basic\n")
        return bundle

    return make


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """A database on the session's PostgreSQL server (shared by the session)."""
    return postgres.create_database("session")


@pytest.fixture(scope="session")
def _postgres_template(postgres: PostgresServer) -> str:
    """A database migrated once, copied for every test that wants a fresh one."""
    from vigil.storage.sql import Database

    url = postgres.create_database("template")
    db = Database(url)
    db.migrate()
    db.dispose()  # CREATE DATABASE ... TEMPLATE needs the template to have no connections
    return url.rsplit("/", 1)[1]


@pytest.fixture
def fresh_postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    url = postgres.create_database("test")
    yield url
    postgres.drop_database(url)


@pytest.fixture
def migrated_postgres_url(postgres: PostgresServer, _postgres_template: str) -> Iterator[str]:
    """A new PostgreSQL database with vigil's schema already in it, for one test."""
    url = postgres.create_database_from(_postgres_template)
    yield url
    postgres.drop_database(url)


# -- Redis -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis: RedisServer) -> Iterator[str]:
    """The session's Redis, emptied after the test."""
    import redis as redis_client

    url = redis.url()
    yield url
    with redis_client.Redis.from_url(url) as client:
        client.flushdb()


# -- S3 ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (moto) with a bucket, for the whole session."""
    with s3_server(tmp_path_factory.mktemp("aws")) as server:
        yield server


@pytest.fixture
def s3_url(s3: S3Server) -> str:
    """``s3://bucket/<unique prefix>`` for one test."""
    return s3.url(f"t-{uuid.uuid4().hex[:12]}")


# -- Alertmanager ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    """A real Alertmanager for the whole session, routing as the deployment's example
    configuration does (deploy/monitoring/alertmanager/alertmanager.yml)."""
    config = _ROOT / "deploy" / "monitoring" / "alertmanager" / "alertmanager.yml"
    with alertmanager_server(tmp_path_factory.mktemp("alertmanager"), config) as server:
        yield server


# -- the registry on every backend -------------------------------------------------------

# postgres+s3 adds nothing the two mixed pairs do not already cover (the database and the
# artifact store never talk to each other) and would double the slowest half of the matrix.
BACKENDS = ["sqlite-local", needs("postgres-local", "postgres"), needs("sqlite-s3", "s3")]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str | None]:
    """``(database_url, artifact_url, s3_endpoint_url)`` for one storage backend."""
    database, artifacts = str(request.param).split("-")
    if database == "sqlite":
        db_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    else:
        db_url = request.getfixturevalue("migrated_postgres_url")
    if artifacts == "local":
        return db_url, str(tmp_path / "artifacts"), None
    s3: S3Server = request.getfixturevalue("s3")
    return db_url, request.getfixturevalue("s3_url"), s3.endpoint_url


def _open_registry(db_url: str, artifact_url: str, endpoint: str | None) -> Registry:
    from vigil.registry import Registry
    from vigil.storage import ArtifactStore, Database

    store = ArtifactStore(artifact_url, s3_endpoint_url=endpoint)
    return Registry(Database(db_url), store, actor="tester")


@pytest.fixture
def registry(backend: tuple[str, str, str | None]) -> Iterator[Registry]:
    """A :class:`vigil.registry.Registry` on each backend in turn (actor ``tester``)."""
    registry = _open_registry(*backend)
    yield registry
    registry.db.dispose()


@pytest.fixture
def local_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry on the embedded default only (SQLite + local files), for checks that do
    not depend on the backend, such as input validation."""
    registry = _open_registry(f"sqlite:///{tmp_path / 'vigil.db'}", str(tmp_path / "store"), None)
    yield registry
    registry.db.dispose()
