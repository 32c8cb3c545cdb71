"""Runs of update policies: their state in SQL, changed only by compare-and-set.

A run moves through these states (:mod:`vigil.policy.engine` decides when)::

    triggered → exporting → training → gating → shadow → canary → promoted
                    ↘           ↘          ↘         ↘        ↘
                  failed      failed    rejected  rolled_back rolled_back

``exporting`` and ``gating`` do long work: the replica that moves a run into one holds a
lease on it (``lease_holder``, ``lease_until``) and no other replica repeats the work while
the lease lives; a replica that died mid-step leaves a lease that expires, and the step is
done again. Every transition is one ``UPDATE ... WHERE revision = ?`` with its audit row
(``policy.<state>``) in the same transaction: of several replicas trying it, exactly one
applies it. A run in flight holds its model's name in ``active_model``, unique: a second
start while it runs is refused (409), whichever replica tries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from vigil.audit import record_audit
from vigil.errors import ConflictError, NotFoundError
from vigil.names import check_model_name
from vigil.policy.tables import PolicyRunRow
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from vigil.storage.sql import Database

__all__ = ["ACTIVE", "FINAL", "Run", "RunStore"]

ACTIVE = ("triggered", "exporting", "training", "gating", "shadow", "canary")
FINAL = ("promoted", "rejected", "failed", "rolled_back")


@dataclass(frozen=True)
class Run:
    """One run as stored."""

    run_id: str
    model: str
    state: str
    revision: int
    trigger: dict[str, Any]
    served_version: int | None
    candidate_version: int | None
    data: dict[str, Any]
    error: str | None
    lease_holder: str | None
    lease_until: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def leased(self, now: datetime, holder: str | None = None) -> bool:
        """Whether another holder (not ``holder``) leases the run now."""
        return (
            self.lease_until is not None
            and self.lease_until > now
            and (holder is None or self.lease_holder != holder)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "state": self.state,
            "revision": self.revision,
            "trigger": self.trigger,
            "served_version": self.served_version,
            "candidate_version": self.candidate_version,
            "data": self.data,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def _run(row: PolicyRunRow) -> Run:
    return Run(
        run_id=row.run_id,
        model=row.model,
        state=row.state,
        revision=row.revision,
        trigger=dict(row.trigger or {}),
        served_version=row.served_version,
        candidate_version=row.candidate_version,
        data=dict(row.data or {}),
        error=row.error,
        lease_holder=row.lease_holder,
        lease_until=row.lease_until,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


class RunStore:
    """Start, read and advance runs (see the module documentation)."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def __repr__(self) -> str:
        return f"RunStore({self.db!r})"

    def start(self, model: str, trigger: dict[str, Any], *, actor: str) -> Run:
        """A new run of ``model``'s policy in state ``triggered``; :class:`ConflictError`
        (409) while another run of the model is in flight."""
        check_model_name(model)
        now = utcnow()
        run_id = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        try:
            with self.db.session(write=True) as session:
                row = PolicyRunRow(
                    run_id=run_id,
                    model=model,
                    active_model=model,
                    state="triggered",
                    revision=1,
                    trigger=trigger,
                    data={},
                    created_at=now,
                    created_by=actor,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                record_audit(
                    session,
                    actor=actor,
                    action="policy.triggered",
                    entity_type="policy_run",
                    entity_name=run_id,
                    model_name=model,
                    after={"trigger": trigger},
                )
                return _run(row)
        except IntegrityError:
            active = self.active(model)
            what = f" ({active.run_id}, {active.state})" if active is not None else ""
            raise ConflictError(
                f"a run of {model!r}'s policy is in flight{what}; wait for it to end "
                f"(vigil policy status {model})",
                detail={"model": model, "run": active.run_id if active else None},
            ) from None

    def get(self, run_id: str) -> Run:
        with self.db.session() as session:
            row = session.scalars(select(PolicyRunRow).where(PolicyRunRow.run_id == run_id)).first()
            if row is None:
                raise NotFoundError(
                    f"no policy run {run_id[:80]!r} (vigil policy status lists runs)",
                    detail={"run": run_id[:80]},
                )
            return _run(row)

    def active(self, model: str) -> Run | None:
        """The run of ``model`` in flight, if any."""
        with self.db.session() as session:
            row = session.scalars(
                select(PolicyRunRow).where(PolicyRunRow.active_model == model)
            ).first()
            return None if row is None else _run(row)

    def all_active(self) -> list[Run]:
        with self.db.session() as session:
            rows = session.scalars(
                select(PolicyRunRow)
                .where(PolicyRunRow.active_model.is_not(None))
                .order_by(PolicyRunRow.id)
            ).all()
            return [_run(r) for r in rows]

    def list(self, model: str | None = None, *, limit: int = 20) -> list[Run]:
        """The newest runs first (of ``model`` when given)."""
        query = select(PolicyRunRow).order_by(PolicyRunRow.id.desc()).limit(limit)
        if model is not None:
            query = query.where(PolicyRunRow.model == model)
        with self.db.session() as session:
            return [_run(r) for r in session.scalars(query).all()]

    def transition(
        self,
        run: Run,
        state: str,
        *,
        actor: str,
        data: dict[str, Any] | None = None,
        error: str | None = None,
        lease: tuple[str, timedelta] | None = None,
        audit: dict[str, Any] | None = None,
        **columns: Any,
    ) -> Run | None:
        """Move ``run`` to ``state`` if nobody changed it since it was read (its
        ``revision``): the run as changed, or ``None`` when another process won.

        ``data`` is merged into the run's data; ``lease`` (holder, length) takes the lease
        for the step's work, otherwise it is released; ``columns`` sets
        ``candidate_version``/``served_version``; ``audit`` is the audit row's ``after``
        (default: ``data``). A final state frees the model for its next run.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "state": state,
            "revision": run.revision + 1,
            "data": {**run.data, **(data or {})},
            "updated_at": now,
            "lease_holder": lease[0] if lease else None,
            "lease_until": now + lease[1] if lease else None,
            **columns,
        }
        if error is not None:
            values["error"] = error
        if state in FINAL:
            values["active_model"] = None
            values["finished_at"] = now
        with self.db.session(write=True) as session:
            done = session.execute(
                update(PolicyRunRow)
                .where(PolicyRunRow.run_id == run.run_id, PolicyRunRow.revision == run.revision)
                .values(**values)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            if state != run.state:
                after = dict(audit if audit is not None else (data or {}))
                if error is not None:
                    after["error"] = error
                for key, value in columns.items():
                    after.setdefault(key, value)
                record_audit(
                    session,
                    actor=actor,
                    action=f"policy.{state}",
                    entity_type="policy_run",
                    entity_name=run.run_id,
                    model_name=run.model,
                    before={"state": run.state},
                    after=after,
                )
            row = session.scalars(
                select(PolicyRunRow).where(PolicyRunRow.run_id == run.run_id)
            ).one()
            return _run(row)

    def attach_candidate(
        self, model: str, version: int, *, actor: str, run_id: str | None = None
    ) -> Run:
        """Hand the run of ``model`` waiting for its retraining job the candidate
        ``version``: the run resumes (its gate comes next). :class:`ConflictError` when no
        run of the model waits for one (or ``run_id`` names another)."""
        for _ in range(5):
            run = self.active(model)
            if run is None or run.state != "training":
                state = f"its run {run.run_id} is {run.state}" if run else "no run is in flight"
                raise ConflictError(
                    f"no run of {model!r}'s policy waits for a candidate ({state}); register "
                    "without --candidate-for, or start a run with `vigil policy run "
                    f"{model}`",
                    detail={"model": model, "run": run.run_id if run else None},
                )
            if run_id is not None and run.run_id != run_id:
                raise ConflictError(
                    f"run {run_id[:80]!r} is not the run of {model!r} in flight "
                    f"({run.run_id}); it ended or never existed",
                    detail={"model": model, "run": run.run_id},
                )
            moved = self.transition(
                run,
                "gating",
                actor=actor,
                data={"candidate_registered_at": utcnow().isoformat()},
                candidate_version=version,
            )
            if moved is not None:
                return moved
        raise ConflictError(f"the run of {model!r} kept changing; try again")
