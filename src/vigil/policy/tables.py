"""Update policies' tables: the policies and their runs.

The schema is created by the Alembic migration
``vigil/storage/migrations/versions/0008_update_policies.py``; keep the two in step (a test
compares them).

* ``update_policies`` — one row per model with a policy: its configuration as JSON, a
  ``revision`` bumped on every change, and ``trigger_state`` (the cursors the triggers
  keep: the last alert event seen, the last scheduled firing, the last window judged).
* ``policy_runs`` — one row per run. ``active_model`` holds the model's name while the run
  is in flight and ``NULL`` once it ended: its unique constraint is what keeps at most one
  run in flight per model, whichever replica starts it. ``revision`` goes up on every
  change of state, each a compare-and-set, so of several replicas advancing the same run
  exactly one applies a transition; ``lease_holder``/``lease_until`` mark the replica doing
  a step's long work (the export, the gate) so no other redoes it while it lives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vigil.names import NAME_LENGTH
from vigil.storage.sql import Base, utcnow


class UpdatePolicyRow(Base):
    """One model's update policy."""

    __tablename__ = "update_policies"

    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    config: Mapped[dict[str, Any]]
    """:class:`~vigil.policy.config.PolicyConfig` as JSON (secrets included)."""
    revision: Mapped[int] = mapped_column(Integer)
    trigger_state: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(256))


class PolicyRunRow(Base):
    """One run of a policy: its state, what started it and everything it found."""

    __tablename__ = "policy_runs"
    __table_args__ = (Index("ix_policy_runs_model_id", "model", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    active_model: Mapped[str | None] = mapped_column(String(NAME_LENGTH), unique=True)
    """The model while the run is in flight, ``NULL`` after: one run in flight per model."""
    state: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[dict[str, Any]]
    """``{"kind": "manual" | "alert" | "schedule" | "threshold", ...}``."""
    served_version: Mapped[int | None] = mapped_column(Integer)
    candidate_version: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]
    """What each step found: the export's manifest, the job, the gate's verdict, the
    shadow's and canary's numbers, the stage's start."""
    error: Mapped[str | None] = mapped_column(Text)
    lease_holder: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
