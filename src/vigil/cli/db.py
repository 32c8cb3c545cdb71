"""``vigil db``: the metadata database's schema, migrated as a one-off job.

By default every vigil process brings the schema to its newest migration on first use.
A deployment that wants servers never to change the schema sets
``VIGIL_DATABASE_MIGRATE=refuse`` and runs ``vigil db upgrade`` once per release (a
Kubernetes Job, an init step) before the new servers start; ``vigil db current --check``
tells a script whether that is still needed.
"""

from __future__ import annotations

from typing import Any

import typer

from vigil.cli._options import JSON, services
from vigil.console import console, fail, print_json, shown

db_app = typer.Typer(
    help="The metadata database's schema: upgrade it (a one-off job) and show where it is.",
    no_args_is_help=True,
)


def _state() -> dict[str, Any]:
    """Where the schema is, against the newest migration of this vigil."""
    from vigil._redact import redact_url
    from vigil.storage.sql import head_revision, known_revisions

    database = services().database
    current = database.current_revision()
    head = head_revision()
    if current == head:
        state = "at_head"
    elif current is None:
        state = "empty"
    elif current in known_revisions():
        state = "behind"
    else:
        state = "unknown_revision"
    return {
        "database": redact_url(database.url),
        "current": current,
        "head": head,
        "state": state,
    }


_SAID = {
    "at_head": "at the newest migration",
    "empty": "has no vigil schema yet: run `vigil db upgrade`",
    "behind": "behind: run `vigil db upgrade`",
    "unknown_revision": "at a revision this vigil does not know: a newer vigil migrated it",
}


@db_app.command("upgrade")
def upgrade(json_out: bool = JSON) -> None:
    """Bring the schema to this vigil's newest migration (safe to run while servers run,
    and by several jobs at once: one migrates, the others find it done)."""
    before = _state()
    if before["state"] == "unknown_revision":
        fail(
            f"the database {before['database']} is at schema revision {before['current']}, "
            f"which this vigil does not know (its newest is {before['head']}): a newer vigil "
            "migrated it; upgrade vigil instead"
        )
    services().database.migrate()
    after = _state()
    if json_out:
        print_json(
            {
                "database": after["database"],
                "from": before["current"],
                "to": after["current"],
                "upgraded": before["current"] != after["current"],
            }
        )
        return
    if before["current"] == after["current"]:
        console.print(
            f"{shown(after['database'])} is already at revision {after['current']}",
            highlight=False,
        )
    else:
        console.print(
            f"[green]upgraded[/] {shown(after['database'])} from revision "
            f"{before['current'] or '(empty)'} to {after['current']}",
            highlight=False,
        )


@db_app.command("current")
def current(
    check: bool = typer.Option(
        False, "--check", help="Exit with status 1 unless the schema is at the newest migration."
    ),
    json_out: bool = JSON,
) -> None:
    """Show the schema's revision and the newest one this vigil ships (no change)."""
    found = _state()
    if json_out:
        print_json(found)
    else:
        console.print(
            f"{shown(found['database'])}: revision {found['current'] or '(none)'}; newest "
            f"{found['head']}; {_SAID[found['state']]}",
            highlight=False,
        )
    if check and found["state"] != "at_head":
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
