"""``/readyz`` follows the database, the artifact store and Redis, with a grace period, and
``/livez`` follows none of them: real servers stopped under a running vigil app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests._waiting import wait_for
from tests.servers import free_port, postgres_server, redis_server
from tests.serving.conftest import ServerThread, SklearnAdapter, clf_signature

from vigil.app import Vigil
from vigil.bundle.model import LoadedBundle
from vigil.errors import ConfigurationError
from vigil.serving.app import create_app
from vigil.serving.config import ServingSettings, load_serving_settings
from vigil.serving.provider import StaticProvider
from vigil.serving.readiness import Readiness, redis_check
from vigil.settings import load_settings
from vigil.storage.artifacts import ArtifactStore
from vigil.storage.sql import Database

FAST = {"readiness_interval": 0.1, "readiness_timeout": 0.5, "readiness_grace": 1.0}


def _provider(models: Any, **settings: Any) -> StaticProvider:
    bundle = LoadedBundle(SklearnAdapter(models.clf), clf_signature(), name="clf", version=1)
    return StaticProvider([bundle], settings=ServingSettings(**settings))


def _probe(url: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{url}/readyz", timeout=5)
    return r.status_code, r.json()


@pytest.fixture
def dedicated_postgres() -> Iterator[Any]:
    """A PostgreSQL of this test's own, which it may stop and start again."""
    with postgres_server() as server:
        yield server


def _wait_probe(url: str, until: Any, what: str) -> tuple[int, dict[str, Any]]:
    found: list[tuple[int, dict[str, Any]]] = []

    def check() -> bool:
        found[:] = [_probe(url)]
        return bool(until(*found[0]))

    wait_for(check, 20, what=what, interval=0.02)
    return found[0]


@pytest.mark.postgres
@pytest.mark.redis
def test_readyz_follows_its_dependencies_with_a_grace_period(
    models: Any, tmp_path: Path, dedicated_postgres: Any
) -> None:
    url = dedicated_postgres.create_database("ready")
    redis_running = redis_server(tmp_path)
    redis = redis_running.__enter__()
    try:
        settings = load_settings(home=tmp_path / "home", database_url=url, redis_url=redis.url())
        app = Vigil(settings).serving_app(_provider(models, **FAST), endpoints=None)
        assert sorted(app.readiness.checks) == ["database", "redis", "store"]
        with ServerThread(app) as server:
            assert _probe(server.url) == (200, {"status": "ready", "models": 1})

            # From the moment the stop begins: the server refuses connections while pg_ctl
            # waits for it to finish, so checks may fail before pause() returns.
            stopped = time.monotonic()
            dedicated_postgres.pause()
            # Within the grace period: still ready, the failure shown as it goes.
            status, body = _wait_probe(server.url, lambda s, b: "degraded" in b, "degraded")
            assert status == 200
            assert list(body["degraded"]) == ["database"]
            status, body = _wait_probe(server.url, lambda s, b: s == 503, "readyz 503")
            assert time.monotonic() - stopped >= FAST["readiness_grace"]
            assert body["status"] == "unavailable"
            assert list(body["failing"]) == ["database"]
            assert "cannot use the database" in body["failing"]["database"]
            assert httpx.get(f"{server.url}/livez", timeout=5).status_code == 200
            # Predictions do not need the database: they still answer.
            row = {f"f{i}": 0.0 for i in range(20)}
            predicted = httpx.post(
                f"{server.url}/v1/models/clf/predict", json={"instances": [row]}, timeout=10
            )
            assert predicted.status_code == 200

            dedicated_postgres.resume()
            _wait_probe(server.url, lambda s, b: s == 200, "readyz 200 again")
            assert _probe(server.url) == (200, {"status": "ready", "models": 1})

            redis_running.__exit__(None, None, None)  # Redis stops for good
            status, body = _wait_probe(server.url, lambda s, b: s == 503, "readyz 503")
            assert list(body["failing"]) == ["redis"]
            assert httpx.get(f"{server.url}/livez", timeout=5).status_code == 200
    finally:
        redis_running.__exit__(None, None, None)


def test_a_closed_port_is_named_and_a_hung_check_does_not_slow_the_probe(
    models: Any, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there

    def hangs() -> None:
        time.sleep(30)

    readiness = Readiness(
        {
            "database": Database(f"postgresql+psycopg://vigil@127.0.0.1:{port}/x").ping,
            "redis": redis_check(f"redis://127.0.0.1:{port}/0", 0.5),
            "store": hangs,
        },
        interval=0.1,
        timeout=0.3,
        grace=0,
    )
    with ServerThread(create_app(_provider(models), readiness=readiness)) as server:
        status, body = _probe(server.url)
        assert status == 503
        assert body["status"] == "unavailable"
        assert sorted(body["failing"]) == ["database", "redis", "store"]
        assert "refused" in body["failing"]["database"].lower()
        assert body["failing"]["store"] == "no answer within 0.3 s"
        # The probe only reads the last results: fast while a check hangs.
        with httpx.Client(base_url=server.url, timeout=5) as http:
            http.get("/readyz")
            started = time.perf_counter()
            for _ in range(20):
                assert http.get("/readyz").status_code == 503
            assert (time.perf_counter() - started) / 20 < 0.05
        assert httpx.get(f"{server.url}/livez", timeout=5).status_code == 200


def test_checks_are_chosen_by_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Vigil(load_settings(home=tmp_path))
    assert sorted(root.readiness(ServingSettings()).checks) == ["database", "store"]
    assert root.readiness(ServingSettings(readiness_checks=())).checks == {}
    monkeypatch.setenv("VIGIL_SERVE_READINESS_CHECKS", "store")
    assert list(root.readiness(load_serving_settings()).checks) == ["store"]
    monkeypatch.setenv("VIGIL_SERVE_READINESS_CHECKS", "")
    assert load_serving_settings().readiness_checks == ()
    monkeypatch.setenv("VIGIL_SERVE_READINESS_CHECKS", "database,kafka")
    with pytest.raises(ConfigurationError, match=r"VIGIL_SERVE_READINESS_CHECKS.*'kafka'"):
        load_serving_settings()


def test_a_local_store_that_disappears_fails_its_check(tmp_path: Path) -> None:
    root = Vigil(load_settings(home=tmp_path, artifact_url=str(tmp_path / "store")))
    root.artifacts.ping()
    (tmp_path / "store").rmdir()
    with pytest.raises(OSError, match="missing or not writable"):
        root.artifacts.ping()


def test_an_s3_store_answers_when_empty_and_fails_when_unreachable(s3: Any, s3_url: str) -> None:
    ArtifactStore(s3_url, s3_endpoint_url=s3.endpoint_url).ping()  # nothing stored yet
    gone = ArtifactStore(s3_url, s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    readiness = Readiness({"store": gone.ping}, timeout=5, grace=0)
    asyncio.run(readiness.check_all())
    down, _ = readiness.failing()
    assert list(down) == ["store"]
