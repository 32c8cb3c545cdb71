"""No secret leaks: every URL vigil prints, logs or shows in a ``repr`` is redacted.

The password is a real one for a real PostgreSQL server (the tests' cluster trusts local
connections, so any password connects): ``vigil demo`` and the CLI run against it as a
user would, and the password must appear nowhere in what they print or log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.servers import PostgresServer

from vigil._redact import redact_url
from vigil.settings import load_settings
from vigil.storage.artifacts import ArtifactStore
from vigil.storage.sql import Database

PASSWORD = "hunter2-Secret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql+psycopg://vigil:{PASSWORD}@db:5432/vigil",
            "postgresql+psycopg://vigil:***@db:5432/vigil",
        ),
        (f"redis://:{PASSWORD}@cache:6379/0", "redis://:***@cache:6379/0"),
        (f"redis://default:{PASSWORD}@[::1]:6379/0", "redis://default:***@[::1]:6379/0"),
        (
            f"postgresql://db/vigil?sslmode=require&password={PASSWORD}",
            "postgresql://db/vigil?sslmode=require&password=***",
        ),
        (f"s3://bucket/prefix?access_token={PASSWORD}", "s3://bucket/prefix?access_token=***"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("sqlite:////home/ada/.vigil/vigil.db", "sqlite:////home/ada/.vigil/vigil.db"),
        ("/home/ada/.vigil/artifacts", "/home/ada/.vigil/artifacts"),
        (f"postgresql://u:{PASSWORD}@db:notaport/x", "postgresql://***@db:notaport/x"),
    ],
)
def test_credentials_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert PASSWORD not in redact_url(url)


def test_a_webhook_shows_its_host_only() -> None:
    url = f"https://bot:{PASSWORD}@hooks.slack.com:8443/services/T0/B0/{PASSWORD}?t={PASSWORD}"
    assert redact_url(url, path=False) == "https://hooks.slack.com:8443/…"


def test_reprs_of_settings_and_stores_hide_the_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://vigil:{PASSWORD}@127.0.0.1:1/vigil"
    settings = load_settings(
        home=tmp_path, database_url=url, redis_url=f"redis://:{PASSWORD}@127.0.0.1:1/0"
    )
    for text in (repr(settings), str(settings), repr(Database(url, auto_migrate=False))):
        assert PASSWORD not in text, text
        assert "vigil:***@127.0.0.1:1" in text
    assert "redis://:***@127.0.0.1:1/0" in repr(settings)
    store = ArtifactStore(f"memory://vigil:{PASSWORD}@bucket/prefix")
    assert PASSWORD not in repr(store)


def _vigil(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=timeout,
        check=False,
    )


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://vigil:{PASSWORD}@127.0.0.1:1/vigil"
    r = _vigil("models", "list", env={"VIGIL_HOME": str(tmp_path), "VIGIL_DATABASE_URL": url})
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: cannot use the database postgresql+psycopg://vigil:***@")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert PASSWORD not in r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.postgres
def test_demo_on_postgresql_prints_no_password(postgres: PostgresServer, tmp_path: Path) -> None:
    plain = postgres.create_database("demo")
    with_password = plain.replace(f"{postgres.user}@", f"{postgres.user}:{PASSWORD}@")
    try:
        r = _vigil("demo", "--home", str(tmp_path), env={"VIGIL_DEMO_DATABASE_URL": with_password})
        assert r.returncode == 0, r.stderr
        assert f"database: postgresql+psycopg://{postgres.user}:***@127.0.0.1" in r.stdout
        server_log = (tmp_path / "demo-server.log").read_text()
        for text in (r.stdout, r.stderr, server_log):
            assert PASSWORD not in text
    finally:
        postgres.drop_database(plain)
