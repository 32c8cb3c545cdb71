"""The SQL tables of shared experiment policy state: additive counters and canary control.

Counters are one row per ``(endpoint, variant, counter)`` holding a double: every update is
``INSERT ... ON CONFLICT DO UPDATE SET value = value + excluded.value``, atomic on SQLite
and PostgreSQL, so any number of workers and replicas add without locks or lost updates.
Counts stay exact as doubles up to 2**53. Control is one row per endpoint with a revision
for compare-and-set. The schema is created by migration ``0005_policy_state``; a test
compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Double, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vigil.names import NAME_LENGTH
from vigil.storage.sql import Base, utcnow


class PolicyCounterRow(Base):
    """One additive counter of one variant of one endpoint (requests, errors, a latency
    bucket, reward sums, label counts)."""

    __tablename__ = "policy_counters"

    endpoint: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    counter: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Double(), default=0.0)


class PolicyControlRow(Base):
    """Where an endpoint's policy stands (canary step, status...), changed by compare-and-set
    on ``revision``."""

    __tablename__ = "policy_control"

    endpoint: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
