from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from tests.servers import PostgresServer

# Importing the table modules registers their tables on Base (compared with the migrations).
import vigil.auth.tables
import vigil.experiments.state_tables
import vigil.experiments.tables
import vigil.monitor.tables
import vigil.policy.tables
import vigil.registry.tables
import vigil.ui.tables  # noqa: F401
from vigil.audit import AuditLogRow
from vigil.errors import ConfigurationError
from vigil.hashchain import GENESIS
from vigil.storage.sql import (
    VERSIONS_DIR,
    Base,
    Database,
    _alembic_head,
    _scanned_head,
    alembic_config,
    head_revision,
)

REGISTRY_TABLES = {"registered_models", "model_versions", "aliases", "alias_events", "audit_log"}


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'deep' / 'vigil.db'}")
    with db.session() as session:
        pragmas = {
            name: session.execute(text(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 60000}
    assert (tmp_path / "deep" / "vigil.db").is_file()


def test_schema_is_migrated_on_first_use_and_matches_the_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    assert db.current_revision() is None
    with db.session() as session:
        assert session.scalar(select(AuditLogRow).limit(1)) is None
    assert db.current_revision() == head_revision() == "0011_console_sessions"
    assert set(inspect(db.engine).get_table_names()) >= REGISTRY_TABLES
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_postgres_schema_matches_the_tables(fresh_postgres_url: str) -> None:
    db = Database(fresh_postgres_url)
    db.migrate()
    db.migrate()  # a second run is a no-op
    assert db.current_revision() == head_revision()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        column = conn.execute(
            text(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'model_versions' AND column_name = 'signature'"
            )
        ).scalar_one()
    assert column == "jsonb"
    db.dispose()


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    assert _scanned_head(VERSIONS_DIR) == _alembic_head() == head_revision()


def _migration(revision: str, down: str, *, annotated: bool = False) -> str:
    if annotated:
        return f'revision: str = "{revision}"\ndown_revision: str | None = {down}  # "zz"\n'
    return f'"""Revision ID: {revision}"""\n\nrevision = "{revision}"\ndown_revision = {down}\n'


@pytest.mark.parametrize(
    ("files", "head"),
    [
        ({"a": _migration("a", "None"), "b": _migration("b", "'a'", annotated=True)}, "b"),
        # a merge revision naming both parents on one line
        (
            {
                "a": _migration("a", "None"),
                "b": _migration("b", '"a"'),
                "c": _migration("c", '"a"'),
                "m": _migration("m", '("b", "c")'),
            },
            "m",
        ),
        # two heads, and parents spread over lines: Alembic has to decide
        (
            {
                "a": _migration("a", "None"),
                "b": _migration("b", '"a"'),
                "c": _migration("c", '"a"'),
            },
            None,
        ),
        ({"a": _migration("a", "None"), "m": _migration("m", '(\n    "a",\n)')}, None),
        ({"a": _migration("a", "None"), "x": "def upgrade() -> None: ...\n"}, None),
    ],
)
def test_scanning_migration_files(tmp_path: Path, files: dict[str, str], head: str | None) -> None:
    for name, body in files.items():
        (tmp_path / f"{name}.py").write_text(body)
    assert _scanned_head(tmp_path) == head


_START = """
import sys
from sqlalchemy import text
from vigil.storage.sql import Database
db = Database(sys.argv[1])
with db.session() as s:
    s.execute(text("SELECT count(*) FROM registered_models")).scalar_one()
print("alembic" in sys.modules)
"""


def test_a_database_at_head_starts_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    run = [sys.executable, "-c", _START, url]
    first = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True)
    assert first.stdout.strip() == "True"  # a new database: Alembic creates the schema
    second = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True)
    assert second.stdout.strip() == "False"


def test_a_database_behind_head_is_upgraded(tmp_path: Path) -> None:
    from alembic import command

    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    assert not db.is_at_head()
    with db.engine.connect() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0001_registry")
        conn.commit()
    assert db.current_revision() == "0001_registry"
    assert not db.is_at_head()
    db.migrate()
    assert db.current_revision() == head_revision()
    assert db.is_at_head()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_times_are_stored_and_read_back_as_utc(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    paris = timezone(timedelta(hours=2))
    with db.session() as session:
        session.add(
            AuditLogRow(
                at=datetime(2024, 6, 1, 14, 0, tzinfo=paris),
                actor="a",
                action="x",
                entity_type="t",
                entity_name="n",
                prev_digest=GENESIS,
                digest=GENESIS,
            )
        )
    with db.session() as session:
        stored = session.scalars(select(AuditLogRow)).one().at
    assert stored == datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    assert stored.tzinfo is UTC
    with pytest.raises(Exception, match="naive datetime"), db.session() as session:
        session.add(
            AuditLogRow(
                at=datetime(2024, 6, 1),
                actor="a",
                action="x",
                entity_type="t",
                entity_name="n",
                prev_digest=GENESIS,
                digest=GENESIS,
            )
        )
        session.flush()


def test_a_failed_session_rolls_back(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    with pytest.raises(RuntimeError, match="boom"), db.session(write=True) as session:
        session.add(
            AuditLogRow(
                actor="a",
                action="x",
                entity_type="t",
                entity_name="n",
                prev_digest=GENESIS,
                digest=GENESIS,
            )
        )
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        assert session.scalars(select(AuditLogRow)).all() == []


def test_unsupported_database_url() -> None:
    with pytest.raises(ConfigurationError, match="unsupported database 'mysql'"):
        Database("mysql://x/y")


_MIGRATE = """
import sys, time
from pathlib import Path
from vigil.storage.sql import Database
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
db = Database(sys.argv[1])
db.migrate()
print(db.current_revision())
"""


def _migrate_concurrently(url: str, tmp_path: Path, processes: int = 4) -> list[str]:
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE, url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    go.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(out.strip())
    return results


@pytest.mark.slow
def test_concurrent_first_use_migrates_once_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    assert _migrate_concurrently(url, tmp_path) == ["0011_console_sessions"] * 4
    with Database(url).engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


@pytest.mark.slow
def test_concurrent_first_use_migrates_once_on_postgres(
    fresh_postgres_url: str, tmp_path: Path, postgres: PostgresServer
) -> None:
    assert _migrate_concurrently(fresh_postgres_url, tmp_path) == ["0011_console_sessions"] * 4
    db = Database(fresh_postgres_url, auto_migrate=False)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    db.dispose()
