"""The metadata database goes away under load, then comes back.

* SQLite, its write lock held by another process: predictions keep flowing (readers never
  wait for a writer in WAL mode, and models are in memory); an alias move waits for the lock
  and lands once it is released.
* PostgreSQL stopped and started again (a real server, its data kept): predictions keep
  flowing while API keys are cached; a key that must be looked up fails fast with 503
  ``database_unavailable``, never 500, never a hang; once the server is back the next
  request succeeds, and an alias moved after the restart is followed.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.reliability._traffic import Traffic
from tests.servers import PostgresServer, postgres_server
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import FEATURES, ROW, bearer

from vigil.app import Vigil
from vigil.auth.keys import KeyStore
from vigil.capture.reader import read_capture
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider
from vigil.settings import load_settings

PREDICT = "/v1/models/churn/predict"

# Holds SQLite's write lock (BEGIN IMMEDIATE plus a write) until its stdin closes.
_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE registered_models SET description = 'locked' WHERE name = 'churn'")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def register_churn(home: Path, **settings: str) -> Vigil:
    """``churn`` versions 1 and 2, production on 1, in a home with ``settings``."""
    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    vigil = Vigil(load_settings(home=home, **settings))
    for c in (1.0, 0.01):
        model = LogisticRegression(C=c).fit(frame, y)
        vigil.register(model, name="churn", reference=frame.assign(y=y), target="y")
    vigil.registry.set_alias("churn", "production", 1)
    return vigil


def _served(vigil: Vigil, **settings: object) -> ServerThread:
    serving = ServingSettings(**settings)  # type: ignore[arg-type]
    return ServerThread(
        vigil.serving_app(RegistryProvider(vigil, poll_interval=0.2, settings=serving))
    )


def _version(url: str, token: str | None = None) -> int:
    headers = bearer(token) if token else {}
    r = httpx.post(f"{url}{PREDICT}", json={"inputs": ROW}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    version: int = r.json()["version"]
    return version


def test_sqlite_write_lock_held_elsewhere_stalls_no_prediction(tmp_path: Path) -> None:
    vigil = register_churn(tmp_path / "home")
    database = tmp_path / "home" / "vigil.db"
    assert sqlite3.connect(database).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with _served(vigil) as server:
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(database)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            with Traffic(server.url, PREDICT, {"inputs": ROW}) as traffic:
                traffic.wait(100, status=200)
                moved: dict[str, int] = {}

                def move() -> None:
                    r = httpx.put(
                        f"{server.url}/v1/admin/models/churn/aliases/production",
                        json={"version": 2},
                        timeout=120,
                    )
                    moved["status"] = r.status_code

                mover = threading.Thread(target=move)
                mover.start()
                traffic.wait(100, status=200)  # still flowing while the move waits
                assert "status" not in moved  # the move waits for the lock...
                holder.communicate(timeout=30)  # closes its stdin: it rolls back and exits
                mover.join(timeout=90)
                assert moved == {"status": 200}  # ...and lands once it is free
                wait_for(lambda: _version(server.url) == 2, what="the server to follow the move")
                traffic.wait(20, status=200)
        finally:
            holder.kill()
            holder.communicate()  # reaps it and closes its pipes
    assert set(traffic.statuses()) == {200}


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module alone: stopping it must not disturb other tests."""
    with postgres_server() as server:
        yield server


@pytest.mark.postgres
def test_postgres_stopped_and_restarted_under_load(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = own_postgres.create_database("faults")
    home = tmp_path / "home"
    vigil = register_churn(home, database_url=url)
    token = KeyStore.from_vigil(vigil).create("predict", name="load").token
    with _served(vigil, auth="on", auth_cache_seconds=0.5) as server:
        headers = bearer(token)
        with Traffic(server.url, PREDICT, {"inputs": ROW}, headers=headers) as traffic:
            traffic.wait(100, status=200)
            own_postgres.pause()
            try:
                # Past the key cache's half second every request needs the database.
                traffic.wait(30, status=503, timeout=120)
                started = time.monotonic()
                r = httpx.post(f"{server.url}{PREDICT}", json={"inputs": ROW}, headers=headers)
                assert time.monotonic() - started < 10  # fails fast, does not hang
            finally:
                own_postgres.resume()
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "database_unavailable"
            assert "retry" in r.json()["message"]
            traffic.wait(50, status=200, timeout=120)  # back without a restart
        statuses = traffic.statuses()
        assert set(statuses) == {200, 503}, statuses
        # The alias poller survived the outage: a move made now is followed.
        vigil.registry.set_alias("churn", "production", 2)
        wait_for(lambda: _version(server.url, token) == 2, what="the server to follow the move")
    logged = set(read_capture(log_dir=home / "capture")["request_id"])
    assert traffic.answered() <= logged
