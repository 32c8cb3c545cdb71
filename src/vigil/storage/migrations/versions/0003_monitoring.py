"""Monitoring: computed windows, metric time series, alert events and leases.

Revision ID: 0003_monitoring
Revises: 0002_api_keys
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.storage.sql import JSONType, UtcDateTime

revision = "0003_monitoring"
down_revision = "0002_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(128), nullable=False),
        sa.Column("window", sa.String(32), nullable=False),
        sa.Column("window_start", UtcDateTime(), nullable=False),
        sa.Column("window_end", UtcDateTime(), nullable=False),
        sa.Column("start_request_id", sa.String(128), nullable=True),
        sa.Column("end_request_id", sa.String(128), nullable=True),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_requests", sa.Integer(), nullable=False),
        sa.Column("n_labelled", sa.Integer(), nullable=False),
        sa.Column("computed_at", UtcDateTime(), nullable=False),
        sa.Column("summary", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_windows")),
        sa.UniqueConstraint(
            "model",
            "version",
            "route",
            "window",
            "window_start",
            name=op.f("uq_monitor_windows_model_version_route_window_window_start"),
        ),
    )
    op.create_index(
        "ix_monitor_windows_model_window_end", "monitor_windows", ["model", "window_end"]
    )
    op.create_table(
        "monitor_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(128), nullable=False),
        sa.Column("window", sa.String(32), nullable=False),
        sa.Column("window_start", UtcDateTime(), nullable=False),
        sa.Column("window_end", UtcDateTime(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("feature", sa.String(256), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["monitor_windows.id"],
            name=op.f("fk_monitor_points_window_id_monitor_windows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_points")),
    )
    op.create_index(
        "ix_monitor_points_series",
        "monitor_points",
        ["model", "metric", "window", "window_end"],
    )
    op.create_index("ix_monitor_points_window_id", "monitor_points", ["window_id"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("occurrence", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("route", sa.String(128), nullable=True),
        sa.Column("feature", sa.String(256), nullable=True),
        sa.Column("metric", sa.String(64), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("claim", sa.String(64), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("deliveries", JSONType, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
        sa.UniqueConstraint(
            "fingerprint",
            "status",
            "occurrence",
            name=op.f("uq_alert_events_fingerprint_status_occurrence"),
        ),
    )
    op.create_index("ix_alert_events_fingerprint_id", "alert_events", ["fingerprint", "id"])
    op.create_table(
        "monitor_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_monitor_leases")),
    )


def downgrade() -> None:
    op.drop_table("monitor_leases")
    op.drop_index("ix_alert_events_fingerprint_id", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_monitor_points_window_id", table_name="monitor_points")
    op.drop_index("ix_monitor_points_series", table_name="monitor_points")
    op.drop_table("monitor_points")
    op.drop_index("ix_monitor_windows_model_window_end", table_name="monitor_windows")
    op.drop_table("monitor_windows")
