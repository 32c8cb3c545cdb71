"""``vigil db upgrade`` / ``vigil db current`` and ``VIGIL_DATABASE_MIGRATE=refuse``, as a
user runs them (real processes), on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.servers import needs
from tests.test_cli import assert_one_line_error

from vigil.storage.sql import Database, head_revision

VIGIL = [sys.executable, "-m", "vigil.cli"]
OLDER = "0006_registry_housekeeping"


@pytest.fixture(params=["sqlite", needs("postgres", "postgres")])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta' / 'vigil.db'}"
    else:
        yield request.getfixturevalue("fresh_postgres_url")


def vigil(
    *args: str, url: str, home: Path, migrate: str = "auto", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VIGIL_HOME": str(home),
        "VIGIL_DATABASE_URL": url,
        "VIGIL_DATABASE_MIGRATE": migrate,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [*VIGIL, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _revision(url: str) -> str | None:
    db = Database(url, auto_migrate=False)
    try:
        return db.current_revision()
    finally:
        db.dispose()


def _set_revision(url: str, revision: str) -> None:
    """Move the schema to ``revision``: an older one by Alembic's downgrade, or a
    revision no vigil ships by hand (a newer vigil's)."""
    from alembic import command

    from vigil.storage.sql import alembic_config, known_revisions

    db = Database(url, auto_migrate=False)
    try:
        with db.engine.connect() as conn:
            if revision in known_revisions():
                config = alembic_config()
                config.attributes["connection"] = conn
                command.downgrade(config, revision)
            else:
                conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
            conn.commit()
    finally:
        db.dispose()


def test_upgrade_as_a_one_off_job(database_url: str, vigil_home: Path) -> None:
    before = vigil("db", "current", "--check", "--json", url=database_url, home=vigil_home)
    assert before.returncode == 1
    assert json.loads(before.stdout)["state"] == "empty"
    assert json.loads(before.stdout)["head"] == head_revision()

    upgraded = vigil("db", "upgrade", "--json", url=database_url, home=vigil_home)
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout) == {
        "database": json.loads(before.stdout)["database"],
        "from": None,
        "to": head_revision(),
        "upgraded": True,
    }
    assert _revision(database_url) == head_revision()

    again = vigil("db", "upgrade", url=database_url, home=vigil_home)
    assert again.returncode == 0
    assert f"already at revision {head_revision()}" in again.stdout
    after = vigil("db", "current", "--check", url=database_url, home=vigil_home)
    assert after.returncode == 0
    assert "at the newest migration" in after.stdout


def test_refuse_stops_on_an_outdated_schema_until_upgraded(
    database_url: str, vigil_home: Path
) -> None:
    empty = vigil("model", "list", url=database_url, home=vigil_home, migrate="refuse")
    assert_one_line_error(empty, "has no vigil schema yet", "vigil db upgrade")
    assert _revision(database_url) is None  # refused: nothing was created

    assert vigil("db", "upgrade", url=database_url, home=vigil_home).returncode == 0
    _set_revision(database_url, OLDER)
    behind = vigil("model", "list", url=database_url, home=vigil_home, migrate="refuse")
    assert_one_line_error(behind, f"schema revision {OLDER}", head_revision(), "vigil db upgrade")
    assert _revision(database_url) == OLDER
    status = vigil("db", "current", "--json", url=database_url, home=vigil_home)
    assert json.loads(status.stdout)["state"] == "behind"

    upgraded = vigil("db", "upgrade", "--json", url=database_url, home=vigil_home)
    assert json.loads(upgraded.stdout)["from"] == OLDER
    listed = vigil("model", "list", url=database_url, home=vigil_home, migrate="refuse")
    assert listed.returncode == 0, listed.stderr


def test_auto_migrates_on_first_use(database_url: str, vigil_home: Path) -> None:
    listed = vigil("model", "list", url=database_url, home=vigil_home)
    assert listed.returncode == 0, listed.stderr
    assert _revision(database_url) == head_revision()


def test_a_newer_schema_is_named_not_migrated(database_url: str, vigil_home: Path) -> None:
    assert vigil("db", "upgrade", url=database_url, home=vigil_home).returncode == 0
    _set_revision(database_url, "0099_from_the_future")
    refused = vigil("model", "list", url=database_url, home=vigil_home, migrate="refuse")
    assert_one_line_error(refused, "0099_from_the_future", "newer vigil")
    upgrade = vigil("db", "upgrade", url=database_url, home=vigil_home)
    assert_one_line_error(upgrade, "0099_from_the_future", "upgrade vigil")
    status = vigil("db", "current", "--check", "--json", url=database_url, home=vigil_home)
    assert status.returncode == 1
    assert json.loads(status.stdout)["state"] == "unknown_revision"


def test_serve_refuses_before_starting_any_worker(tmp_path: Path, vigil_home: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    served = vigil("serve", "--port", "0", url=url, home=vigil_home, migrate="refuse", timeout=60)
    assert_one_line_error(served, "vigil db upgrade")
    assert _revision(url) is None


def test_a_bad_migrate_setting_is_named(tmp_path: Path, vigil_home: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    bad = vigil("db", "current", url=url, home=vigil_home, migrate="sometimes")
    assert_one_line_error(bad, "VIGIL_DATABASE_MIGRATE")
