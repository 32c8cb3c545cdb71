"""The audit log's hash chain: appends chain under a lock, verify finds tampering."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from vigil.audit import (
    AuditHead,
    AuditVerification,
    audit_head,
    read_audit,
    record_audit,
    verify_audit,
)
from vigil.hashchain import GENESIS
from vigil.storage.sql import Database, alembic_config


def _record(db: Database, n: int, *, actor: str = "ana") -> None:
    for i in range(n):
        with db.session(write=True) as session:
            record_audit(
                session,
                actor=actor,
                action="set_alias",
                entity_type="alias",
                entity_name=f"churn@production#{i}",
                model_name="churn",
                before={"version": i, "score": 0.1 * i},
                after={"version": i + 1, "tags": ["a", "é"]},
            )


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'vigil.db'}")


def _verify(db: Database, head: AuditHead | str | None = None) -> AuditVerification:
    with db.session() as session:
        return verify_audit(session, head=head)


def _head(db: Database) -> AuditHead:
    with db.session() as session:
        head = audit_head(session)
    assert head is not None
    return head


def test_entries_chain_and_an_untampered_log_verifies(db: Database) -> None:
    assert _verify(db).ok and _verify(db).entries == 0
    _record(db, 4)
    with db.session() as session:
        events = read_audit(session)[::-1]
    assert events[0].prev_digest == GENESIS
    assert [e.prev_digest for e in events[1:]] == [e.digest for e in events[:-1]]
    result = _verify(db, _head(db))
    assert result.ok and result.entries == 4 and result.head == _head(db)
    # ids are not part of an entry: renumbering keeps the chain (and order) intact
    with db.session(write=True) as session:
        session.execute(text("UPDATE audit_log SET id = id * 10"))
    assert _verify(db).ok


def test_an_edited_entry_is_found(db: Database) -> None:
    _record(db, 5)
    with db.session(write=True) as session:
        session.execute(text("""UPDATE audit_log SET actor = 'mallory' WHERE id = 3"""))
    result = _verify(db)
    assert (result.ok, result.broken_id, result.problem) == (False, 3, "edited")
    assert result.reason == "entry 3 was edited: its content does not match its digest"


def test_an_edit_of_the_json_state_is_found(db: Database) -> None:
    _record(db, 3)
    with db.session(write=True) as session:
        session.execute(text("""UPDATE audit_log SET "after" = '{"version": 9}' WHERE id = 2"""))
    assert (_verify(db).broken_id, _verify(db).problem) == (2, "edited")


def test_a_deleted_entry_is_found_where_it_was(db: Database) -> None:
    _record(db, 5)
    with db.session(write=True) as session:
        session.execute(text("DELETE FROM audit_log WHERE id = 2"))
    result = _verify(db)
    assert (result.broken_id, result.problem) == (3, "deleted")
    assert "entry 3 does not chain onto entry 1" in str(result.reason)
    with db.session(write=True) as session:
        session.execute(text("DELETE FROM audit_log WHERE id = 1"))
    assert (_verify(db).broken_id, _verify(db).problem) == (3, "deleted")


def test_an_inserted_entry_is_found_even_with_a_well_forged_digest(db: Database) -> None:
    _record(db, 3)
    with db.session(write=True) as session:
        session.execute(text("UPDATE audit_log SET id = id * 10"))
        # A forger who knows the rule chains a fake entry onto entry 10, between 10 and 20.
        row = session.execute(text("SELECT * FROM audit_log WHERE id = 10")).mappings().one()
    from vigil.audit import entry_digest
    from vigil.storage.sql import utcnow

    at = utcnow()
    fake = entry_digest(
        row["digest"],
        at=at,
        actor="mallory",
        action="delete_key",
        entity_type="key",
        entity_name="k",
        model_name=None,
        before=None,
        after=None,
    )
    with db.session(write=True) as session:
        session.execute(
            text(
                "INSERT INTO audit_log (id, at, actor, action, entity_type, entity_name, "
                "prev_digest, digest) VALUES (15, :at, 'mallory', 'delete_key', 'key', 'k', "
                ":prev, :digest)"
            ),
            {"at": at.replace(tzinfo=None), "prev": row["digest"], "digest": fake},
        )
    result = _verify(db)
    assert (result.ok, result.broken_id, result.problem) == (False, 15, "inserted")
    assert result.reason == "entry 15 was inserted: entry 20 chains onto the entry before it"


def test_truncating_the_tail_is_found_against_an_exported_head(db: Database) -> None:
    _record(db, 4)
    head = _head(db)
    _record(db, 1)  # the log goes on after the export: still fine
    assert _verify(db, head).ok
    assert _verify(db, head.digest).ok
    with db.session(write=True) as session:
        session.execute(text("DELETE FROM audit_log WHERE id >= 4"))
    assert _verify(db).ok  # a cut tail alone is invisible without a head...
    for exported in (head, head.digest):
        result = _verify(db, exported)  # ...and found with one
        assert (result.ok, result.problem) == (False, "truncated")
        assert "ends at entry 3" in str(result.reason)
    # cut and re-grown past the head: entry 4 exists again, but it is not the head
    _record(db, 2, actor="mallory")
    result = _verify(db, head)
    assert (result.broken_id, result.problem) == (4, "rewritten")


def test_the_migration_chains_the_rows_already_there(tmp_path: Path) -> None:
    from alembic import command

    db = Database(f"sqlite:///{tmp_path / 'old.db'}", auto_migrate=False)
    config = alembic_config()
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007_alert_silences")
        for i in range(3):
            conn.execute(
                text(
                    "INSERT INTO audit_log (at, actor, action, entity_type, entity_name, "
                    "model_name, \"before\", \"after\") VALUES (:at, 'ana', 'create', "
                    "'model', 'churn', 'churn', NULL, :after)"
                ),
                {"at": f"2026-01-0{i + 1} 10:00:00.000001", "after": f'{{"v": {i}}}'},
            )
        conn.commit()
        command.upgrade(config, "head")
        conn.commit()
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    result = _verify(db)
    assert result.ok and result.entries == 3
    _record(db, 1)
    assert _verify(db).ok and _verify(db).entries == 4


def _concurrent_writers(dbs: list[Database], each: int) -> None:
    """Each of ``dbs`` appends ``each`` entries from its own thread, all starting together."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(dbs))

    def write(d: Database, n: int) -> None:
        try:
            start.wait()
            _record(d, each, actor=f"replica-{n}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(d, n)) for n, d in enumerate(dbs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_concurrent_writers_never_fork_the_chain_on_sqlite(tmp_path: Path) -> None:
    # separate Database objects: separate connection pools, as separate processes have
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    Database(url).migrate()
    dbs = [Database(url) for _ in range(4)]
    _concurrent_writers(dbs, each=10)
    result = _verify(dbs[0])
    assert result.ok and result.entries == 40


def test_concurrent_writers_never_fork_the_chain_on_postgres(migrated_postgres_url: str) -> None:
    dbs = [Database(migrated_postgres_url) for _ in range(6)]
    _concurrent_writers(dbs, each=10)
    db = dbs[0]
    result = _verify(db)
    assert result.ok and result.entries == 60
    with db.session() as session:
        forks = session.execute(
            text("SELECT count(*) FROM audit_log GROUP BY prev_digest HAVING count(*) > 1")
        ).all()
    assert forks == []
    # and tampering is found on PostgreSQL's JSONB too
    with db.session(write=True) as session:
        session.execute(
            text("""UPDATE audit_log SET "before" = '{"version": 0, "score": 0.5}' WHERE id = 7""")
        )
    assert (_verify(db).broken_id, _verify(db).problem) == (7, "edited")


def test_the_cli_shows_exports_and_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from vigil.app import reset_default
    from vigil.cli import app as cli

    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    reset_default()
    try:
        runner = CliRunner()
        db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
        empty = runner.invoke(cli, ["audit", "head"])
        assert empty.exit_code == 1 and "the audit log is empty" in empty.stderr
        _record(db, 3)
        shown = runner.invoke(cli, ["audit", "churn", "--json", "-n", "2"])
        assert [e["id"] for e in json.loads(shown.stdout)] == [3, 2]
        assert json.loads(runner.invoke(cli, ["audit", "show", "--json"]).stdout)[0]["id"] == 3
        head_file = tmp_path / "head.json"
        exported = runner.invoke(cli, ["audit", "head", "--output", str(head_file)])
        assert (
            json.loads(exported.stdout)
            == json.loads(head_file.read_text())
            == {
                "id": 3,
                "digest": _head(db).digest,
            }
        )
        ok = runner.invoke(cli, ["audit", "verify", "--head", str(head_file)])
        assert ok.exit_code == 0, ok.output
        assert "audit log intact: 3 entries, head 3" in ok.stdout
        with db.session(write=True) as session:
            session.execute(text("DELETE FROM audit_log WHERE id = 3"))
        plain = runner.invoke(cli, ["audit", "verify"])
        assert plain.exit_code == 0
        cut = runner.invoke(cli, ["audit", "verify", "--head", str(head_file)])
        assert cut.exit_code == 1
        assert "audit log broken" in cut.stderr and "truncated" in cut.stderr
        with db.session(write=True) as session:
            session.execute(text("UPDATE audit_log SET action = 'x' WHERE id = 1"))
        broken = runner.invoke(cli, ["audit", "verify", "--json"])
        assert broken.exit_code == 1
        assert json.loads(broken.stdout) | {"reason": None} == {
            "ok": False,
            "entries": 1,
            "head": None,
            "broken_id": 1,
            "problem": "edited",
            "reason": None,
        }
        bad = runner.invoke(cli, ["audit", "verify", "--head", "nope"])
        assert bad.exit_code == 1 and "--head takes a file" in bad.stderr
    finally:
        reset_default()


def test_a_rolled_back_change_leaves_no_entry_and_the_chain_goes_on(db: Database) -> None:
    _record(db, 1)
    with pytest.raises(RuntimeError, match="boom"), db.session(write=True) as session:
        record_audit(session, actor="ana", action="x", entity_type="t", entity_name="n")
        raise RuntimeError("boom")
    _record(db, 1)
    result = _verify(db)
    assert result.ok and result.entries == 2


def test_entries_of_one_transaction_chain_in_the_order_recorded(db: Database) -> None:
    with db.session(write=True) as session:
        for action in ("first", "second", "third"):
            record_audit(session, actor="ana", action=action, entity_type="t", entity_name="n")
    with db.session() as session:
        assert [e.action for e in read_audit(session)] == ["third", "second", "first"]
    assert _verify(db).ok


def test_auditing_then_changing_more_rows_does_not_deadlock_on_postgres(
    migrated_postgres_url: str,
) -> None:
    # T1 changes row 1, audits, then changes row 2; T2 changed row 2 and audits meanwhile.
    # Had T1 taken the chain's lock when it audited, T2 would wait for it while holding
    # row 2, and T1 for row 2: PostgreSQL would abort one of them.
    db = Database(migrated_postgres_url)
    with db.session(write=True) as session:
        session.execute(text("CREATE TABLE scratch (id int PRIMARY KEY, v int)"))
        session.execute(text("INSERT INTO scratch VALUES (1, 0), (2, 0)"))
    t1_audited, t2_audited = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def audit(session: Session, who: str) -> None:
        record_audit(session, actor=who, action="x", entity_type="t", entity_name="n")

    def t1() -> None:
        try:
            with db.session(write=True) as session:
                session.execute(text("UPDATE scratch SET v = 1 WHERE id = 1"))
                audit(session, "t1")
                t1_audited.set()
                t2_audited.wait(timeout=5)
                session.execute(text("UPDATE scratch SET v = 1 WHERE id = 2"))
        except BaseException as exc:
            errors.append(exc)

    def t2() -> None:
        try:
            t1_audited.wait(timeout=5)
            with db.session(write=True) as session:
                session.execute(text("UPDATE scratch SET v = 2 WHERE id = 2"))
                audit(session, "t2")
                t2_audited.set()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=t1), threading.Thread(target=t2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = _verify(db)
    assert result.ok and result.entries == 2
