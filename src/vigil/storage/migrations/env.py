"""Alembic environment for vigil's schema.

vigil runs migrations programmatically (``Database.migrate``), handing Alembic an open
connection through ``config.attributes["connection"]``; there is no ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context

from vigil.storage.sql import Base


def run_migrations() -> None:
    """Run the pending migrations on the connection vigil handed to Alembic."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run vigil's migrations with vigil.storage.sql.Database(url).migrate()")
    context.configure(
        connection=connection,
        # Only autogenerate reads the metadata; the migrations themselves are explicit.
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# Alembic executes this file; anything else importing it (doctest collection) gets a no-op.
if hasattr(context, "config"):
    run_migrations()
