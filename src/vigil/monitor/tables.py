"""Monitoring's tables: computed windows, their metric points, alert events and leases.

The schema is created by the Alembic migration
``vigil/storage/migrations/versions/0003_monitoring.py``; keep the two in step (a test
compares them). Every timestamp is UTC.

* ``monitor_windows`` — one row per computed window of one model version and route; the
  unique key ``(model, version, route, window, window_start)`` is what makes runs idempotent.
* ``monitor_points`` — the time series: one value of one metric (optionally of one
  feature) in one window. Model, version, route, the window setting and bounds are repeated on
  each point so a series is read with one indexed query.
* ``alert_events`` — every firing and resolution, unique on ``(fingerprint, status,
  occurrence)``: the row *is* the claim that makes a transition notify exactly once, even
  when several workers evaluate the same rules at the same moment.
* ``monitor_leases`` — who runs the scheduled monitoring right now (one worker at a time).
* ``alert_silences`` — label matchers and a period during which matching alerts are
  recorded but not delivered (migration ``0007_alert_silences``, which also adds the
  acknowledgement and silence columns of ``alert_events``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.names import NAME_LENGTH
from vigil.storage.sql import Base, utcnow

FEATURE_LENGTH = 256


class MonitorWindowRow(Base):
    """One computed window: its bounds, sizes and a summary for tables and the dashboard."""

    __tablename__ = "monitor_windows"
    __table_args__ = (
        UniqueConstraint("model", "version", "route", "window", "window_start"),
        Index("ix_monitor_windows_model_window_end", "model", "window_end"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int] = mapped_column(Integer)
    route: Mapped[str] = mapped_column(String(NAME_LENGTH))
    window: Mapped[str] = mapped_column(String(32))
    """The window setting it was cut with (``1h``, ``500``)."""
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    start_request_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    end_request_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    partial: Mapped[bool] = mapped_column(Boolean)
    n_rows: Mapped[int] = mapped_column(Integer)
    n_requests: Mapped[int] = mapped_column(Integer)
    n_labelled: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    summary: Mapped[dict[str, Any]]


class MonitorPointRow(Base):
    """One value of one metric (of one feature, or of the whole window) in one window."""

    __tablename__ = "monitor_points"
    __table_args__ = (
        Index("ix_monitor_points_series", "model", "metric", "window", "window_end"),
        Index("ix_monitor_points_window_id", "window_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("monitor_windows.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int] = mapped_column(Integer)
    route: Mapped[str] = mapped_column(String(NAME_LENGTH))
    window: Mapped[str] = mapped_column(String(32))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    partial: Mapped[bool] = mapped_column(Boolean)
    metric: Mapped[str] = mapped_column(String(64))
    feature: Mapped[str | None] = mapped_column(String(FEATURE_LENGTH))
    value: Mapped[float] = mapped_column(Float)


class AlertEventRow(Base):
    """One transition of one alert (``firing`` or ``resolved``) and its delivery."""

    __tablename__ = "alert_events"
    __table_args__ = (
        UniqueConstraint("fingerprint", "status", "occurrence"),
        Index("ix_alert_events_fingerprint_id", "fingerprint", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    """Digest of the rule name and the series' labels: the alert's identity."""
    rule: Mapped[str] = mapped_column(String(NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    occurrence: Mapped[str] = mapped_column(String(64))
    """What caused it (the window's end for rule alerts); the de-duplication key."""
    severity: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int | None] = mapped_column(Integer)
    route: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    feature: Mapped[str | None] = mapped_column(String(FEATURE_LENGTH))
    metric: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, Any]]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claim: Mapped[str | None] = mapped_column(String(64))
    """Token of the process delivering it now (taken with a conditional UPDATE)."""
    claimed_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[dict[str, Any]]
    """Per webhook (redacted URL): ``{"ok": bool, "attempts": n, "status": code, "error": ...}``."""
    last_error: Mapped[str | None] = mapped_column(Text)
    silenced_by: Mapped[int | None] = mapped_column(Integer)
    """The silence that kept this event from the webhooks (it is never delivered)."""
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(256))


class AlertSilenceRow(Base):
    """While ``starts_at <= now < ends_at``, alert events whose labels hold every
    ``matchers`` pair are recorded but not delivered."""

    __tablename__ = "alert_silences"
    __table_args__ = (Index("ix_alert_silences_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    matchers: Mapped[dict[str, Any]]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str | None] = mapped_column(Text)


class MonitorLeaseRow(Base):
    """A named lease: the scheduled monitoring runs only in the worker holding it."""

    __tablename__ = "monitor_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(NAME_LENGTH))
    expires_at: Mapped[datetime]
