"""The SQL metadata store: one declarative ``Base`` for every vigil table, and ``Database``.

``Database(url)`` speaks to SQLite (the embedded default) or PostgreSQL (via psycopg 3).
A session that cannot reach the database (refused, dropped, or SQLite's write lock held past
the 60 s wait) raises :class:`~vigil.errors.DatabaseUnavailableError`, a 503-class error,
instead of the driver's exception; the pool checks a connection before use, so the first
session after the database is back succeeds.
The schema is owned by Alembic migrations in ``vigil/storage/migrations``; they run on
first use, under a lock so that several processes starting together migrate once:
a file lock next to the SQLite file, ``pg_advisory_lock`` on PostgreSQL. A database that
is already at the newest migration costs one query and no Alembic import (Alembic alone
takes longer to import than the rest of a server start): the newest revision is read
from the migration files themselves (:func:`head_revision`).

SQLite runs in WAL mode with a busy timeout and foreign keys on. Sessions opened with
``write=True`` start with ``BEGIN IMMEDIATE`` there, which takes the write lock up front:
two writers then queue instead of both reading and one failing at its first write.

>>> db = Database("sqlite://")
>>> from sqlalchemy import text
>>> with db.session() as s:
...     s.execute(text("SELECT count(*) FROM registered_models")).scalar_one()
0
"""

from __future__ import annotations

import re
import threading
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from sqlalchemy import JSON, DateTime, Dialect, MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.types import TypeDecorator

from vigil._redact import redact_url
from vigil.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    SchemaNotAtHeadError,
    require,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
_SQLITE_BUSY_TIMEOUT_MS = 60_000
# Any fixed 64-bit number works; it only has to be the same in every vigil process.
_PG_MIGRATION_LOCK = zlib.crc32(b"vigil-migrations")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every vigil timestamp holds)."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite has no time zones, so values are stored naive in UTC and tagged on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use vigil.storage.sql.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _JSONDocument(TypeDecorator[Any]):
    """``JSONB`` on PostgreSQL, ``JSON`` (text) elsewhere.

    Chosen per dialect when a statement is compiled, so that a process on SQLite never
    imports the PostgreSQL dialect (a twentieth of a second of every server start).
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            # the dialect in use only
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


JSONType = _JSONDocument()
"""JSON column type: ``JSONB`` on PostgreSQL, ``JSON`` (text) on SQLite."""


class Base(DeclarativeBase):
    """Declarative base of every vigil table (registry, capture, monitoring, experiments)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSONType,
    }


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # pysqlite opens transactions implicitly and not for every statement; switch that off
    # and issue BEGIN ourselves (see _on_sqlite_begin) so transactions mean what they say.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """A SQLAlchemy engine plus the session factory and migrations for one database.

    Parameters
    ----------
    url:
        ``sqlite:///path/to/vigil.db`` (created with its directory), ``sqlite://`` (in
        memory, one shared connection) or ``postgresql+psycopg://user@host:port/db``.
    auto_migrate:
        Look at the schema on first use (default); turn off to manage migrations
        yourself with :meth:`migrate`.
    migrate:
        What first use does with a schema that is not at the newest migration: ``auto``
        brings it there; ``refuse`` raises a :class:`~vigil.errors.SchemaNotAtHeadError`
        that says to run ``vigil db upgrade`` (where a one-off job migrates, as in
        Kubernetes, and the servers never do).
    """

    def __init__(
        self, url: str, *, auto_migrate: bool = True, migrate: Literal["auto", "refuse"] = "auto"
    ) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        self.url = url
        self.auto_migrate = auto_migrate
        self.migrate_mode = migrate
        backend = make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://"
            )
        self.dialect = backend
        self._sqlite_path = _sqlite_file(url) if backend == "sqlite" else None
        self.engine = self._create_engine()
        # A Database dropped without dispose() still closes its pooled connections, rather
        # than leaving them for the garbage collector (which warns, and may be late).
        weakref.finalize(self, self.engine.dispose)
        self._write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if backend == "sqlite"
            else self.engine
        )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)!r})"

    def _create_engine(self) -> Engine:
        if self.dialect == "postgresql":
            require_psycopg()
            return create_engine(self.url, pool_pre_ping=True)
        if self._sqlite_path is None:
            engine = create_engine(
                self.url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                self.url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine

    def insert(self, table: Any) -> Any:
        """An ``INSERT`` into ``table`` that takes ``on_conflict_do_nothing`` / ``_update``
        in this database's dialect (whose module is imported on first use only)."""
        if self.dialect == "postgresql":
            # the dialect in use only
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        # the dialect in use only
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def lock(self, session: Session, kind: str, name: str) -> None:
        """Hold a lock on ``(kind, name)`` until ``session``'s transaction ends, so that
        transactions about the same thing (say, one artifact digest) run one after another.

        PostgreSQL takes a transaction-level advisory lock on the pair's CRC-32s (two names
        that collide only wait for each other; nothing is wrong then). On SQLite a write
        session (``write=True``) already holds the database's only write lock, so there is
        nothing more to take; a read session cannot be serialised and is refused.
        """
        if self.dialect == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(:kind, :name)"),
                {
                    "kind": _int32(zlib.crc32(kind.encode())),
                    "name": _int32(zlib.crc32(name.encode())),
                },
            )
        elif session.get_bind().get_execution_options().get("sqlite_begin") != "IMMEDIATE":
            raise RuntimeError("Database.lock needs a session opened with write=True on SQLite")

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        ``write=True`` takes the database's write lock at the start on SQLite (``BEGIN
        IMMEDIATE``); use it for read-then-write transactions such as numbering versions.
        """
        try:
            if self.auto_migrate and not self._migrated:
                if self.migrate_mode == "refuse":
                    self.check_schema()
                else:
                    self.migrate()
            factory = self._write_sessions if write else self._sessions
            with factory() as session, session.begin():
                if write:
                    # SQLAlchemy begins the connection's transaction on first use; take the
                    # write lock now, so that what the caller checks before its first
                    # statement (an artifact on disk, say) is already under it.
                    session.connection()
                yield session
        except OperationalError as exc:
            raise self._unavailable(exc) from exc

    def ping(self) -> None:
        """Run one ``SELECT 1`` (no migration): raises
        :class:`~vigil.errors.DatabaseUnavailableError` when the database cannot answer.
        What ``/readyz`` checks."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: OperationalError) -> DatabaseUnavailableError:
        # The driver's first line says what happened (refused, locked, terminated) without
        # the statement or its parameters.
        reason = str(exc.orig).strip().splitlines()[0][:200] if exc.orig else type(exc).__name__
        return DatabaseUnavailableError(
            f"cannot use the database {redact_url(self.url)}: {reason}; check "
            "VIGIL_DATABASE_URL and that the server is running (or not locked), then retry",
            detail={"reason": "database_unavailable"},
        )

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration; safe when many processes call it.

        A database already at the newest migration is left alone after one query; only
        one that is behind (or new) takes the migration lock and runs Alembic.
        """
        with self._migrate_lock:
            if self.is_at_head():
                self._migrated = True
                return
            if self.dialect == "postgresql":
                self._migrate_postgres()
            elif self._sqlite_path is not None:
                # only for a SQLite migration
                from filelock import FileLock

                lock_path = self._sqlite_path.with_name(self._sqlite_path.name + ".migrate.lock")
                with FileLock(str(lock_path)), self.engine.connect() as conn:
                    _upgrade(conn)
            else:
                with self.engine.connect() as conn:
                    _upgrade(conn)
            self._migrated = True

    def check_schema(self) -> None:
        """Raise :class:`~vigil.errors.SchemaNotAtHeadError` unless the schema is at the
        newest migration this vigil ships (one query when it is)."""
        if self.is_at_head():
            self._migrated = True
            return
        current = self.current_revision()
        head = head_revision()
        where = redact_url(self.url)
        if current is None:
            state = "has no vigil schema yet"
        elif current not in known_revisions():
            raise SchemaNotAtHeadError(
                f"the database {where} is at schema revision {current}, which this vigil "
                f"does not know (its newest is {head}): a newer vigil migrated it; run that "
                "version, or upgrade vigil",
                detail={"current": current, "head": head},
            )
        else:
            state = f"is at schema revision {current}"
        raise SchemaNotAtHeadError(
            f"the database {where} {state}; this vigil needs revision {head}. Run "
            "`vigil db upgrade` once (e.g. as a Kubernetes Job) before starting it, or set "
            "VIGIL_DATABASE_MIGRATE=auto to migrate on start",
            detail={"current": current, "head": head},
        )

    def _migrate_postgres(self) -> None:
        with self.engine.connect() as conn:
            # A session-level advisory lock outlives the transactions Alembic opens.
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                _upgrade(conn)
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.commit()

    def is_at_head(self) -> bool:
        """Whether the schema is at the newest migration this vigil ships (one query, no
        Alembic). ``False`` whenever in doubt: a new database, several version rows, or
        migration files whose head cannot be read without Alembic."""
        head = _scanned_head(VERSIONS_DIR)
        if head is None:
            return False
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except (OperationalError, ProgrammingError):
            return False  # no version table: nothing migrated yet
        return [row[0] for row in rows] == [head]

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` before the first migration)."""
        # Alembic: only to migrate
        from alembic.migration import MigrationContext

        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            raise self._unavailable(exc) from exc

    def dispose(self) -> None:
        """Close every pooled connection (call before a process exits or forks)."""
        self.engine.dispose()


def _int32(value: int) -> int:
    """An unsigned 32-bit value as the signed ``int4`` PostgreSQL takes."""
    return value - (1 << 32) if value >= 1 << 31 else value


def require_psycopg() -> None:
    """Fail with the pip line when the PostgreSQL driver is missing."""
    require("psycopg", "postgres")


def alembic_config() -> Any:
    """An Alembic ``Config`` pointing at vigil's migrations (no ``alembic.ini`` needed)."""
    # Alembic: only to migrate
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this vigil.

    >>> head_revision() == _alembic_head()
    True
    """
    return _scanned_head(VERSIONS_DIR) or _alembic_head()


def _alembic_head() -> str:
    # Alembic: only to migrate
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package always ships at least one migration
    return head


# `revision = "x"` / `down_revision: str | None = "y"` at the start of a line; the value
# ends at a comment. Alembic writes both forms in its templates.
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=([^#\n]*)", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"'\s]+)["']""")


def _scanned_head(versions_dir: Path) -> str | None:
    """The one head revision of the migration files in ``versions_dir``, read as text.

    ``None`` when it cannot be told for sure (a file without a plain ``revision = "..."``
    line, or several heads); callers then ask Alembic. A ``down_revision`` this reading
    misses (say, a tuple spread over lines) can only add heads, never hide the real one,
    so a single head found here is the head Alembic finds.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions_dir.glob("*.py"):
        found: dict[str, list[str]] = {}
        for match in _REVISION_LINE.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match[1], []).extend(_QUOTED.findall(match[2]))
        ids = found.get("revision", [])
        if len(ids) != 1:
            return None
        revisions.add(ids[0])
        parents.update(found.get("down_revision", []))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def known_revisions() -> frozenset[str]:
    """Every migration revision shipped with this vigil (read from the files as text).

    >>> head_revision() in known_revisions()
    True
    """
    found: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        for match in _REVISION_LINE.finditer(path.read_text(encoding="utf-8")):
            if match[1] == "revision":
                found.update(_QUOTED.findall(match[2]))
    return frozenset(found)


def _upgrade(conn: Connection) -> None:
    # Alembic: only to migrate
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
    conn.commit()
