"""``vigil audit``: show the audit trail, export its head, and verify its hash chain.

``vigil audit [NAME]`` shows the trail as before (it is ``vigil audit show``; a model
named like a subcommand is shown with ``vigil audit show NAME``). ``vigil audit head``
prints the last entry's id and digest as JSON, to keep somewhere the database's writers
cannot reach; ``vigil audit verify [--head FILE|DIGEST]`` walks the chain, says where it
breaks and why, and exits 1 when it does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from vigil.cli import models as _models
from vigil.cli._options import JSON, services
from vigil.console import console, err_console, fail, print_json

_DIGEST = re.compile(r"[0-9a-f]{64}")


class _ShowByDefault(TyperGroup):
    """``vigil audit ...`` runs ``show`` unless its first word is another subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["show", *args]
        return super().parse_args(ctx, args)


audit_app = typer.Typer(
    cls=_ShowByDefault,
    help="The audit trail: show it (the default), export its head, verify its hash chain.",
)
audit_app.command("show")(_models.audit)


@audit_app.command("head")
def head(
    output: Path = typer.Option(
        None, "--output", help="Write the head to this file as well as printing it."
    ),
) -> None:
    """Print the last entry's id and digest (JSON): check the log against it later with
    `vigil audit verify --head`."""
    from vigil.audit import audit_head

    with services().database.session() as session:
        found = audit_head(session)
    if found is None:
        fail("the audit log is empty: there is no head to export yet")
        return
    payload = {"id": found.id, "digest": found.digest}
    if output is not None:
        output.write_text(json.dumps(payload, sort_keys=True) + "\n", encoding="utf-8")
    print_json(payload)


def _exported_head(value: str) -> Any:
    from vigil.audit import AuditHead

    if _DIGEST.fullmatch(value):
        return value
    path = Path(value)
    if not path.is_file():
        fail(f"--head takes a file written by `vigil audit head` or a 64-hex digest, got {value!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = AuditHead(id=int(data["id"]), digest=str(data["digest"]))
    except (ValueError, KeyError, TypeError):
        fail(f"{value} is not a head written by `vigil audit head` (JSON with id and digest)")
        raise
    if not _DIGEST.fullmatch(found.digest):
        fail(f"{value}: the digest is not 64 hex digits")
    return found


@audit_app.command("verify")
def verify(
    head_: str = typer.Option(
        None,
        "--head",
        help="A head exported by `vigil audit head` (its file, or its digest): also prove "
        "nothing up to it changed and the log was not cut short of it.",
    ),
    json_out: bool = JSON,
) -> None:
    """Check the audit log's hash chain: name the first edited, inserted or deleted entry
    (exit status 1), or say it is intact."""
    from vigil.audit import verify_audit

    exported = _exported_head(head_) if head_ is not None else None
    with services().database.session() as session:
        result = verify_audit(session, head=exported)
    if json_out:
        print_json(
            {
                "ok": result.ok,
                "entries": result.entries,
                "head": None
                if result.head is None
                else {"id": result.head.id, "digest": result.head.digest},
                "broken_id": result.broken_id,
                "problem": result.problem,
                "reason": result.reason,
            }
        )
    elif result.ok:
        last = "" if result.head is None else f", head {result.head.id} {result.head.digest}"
        against = " (the exported head is in it)" if exported is not None else ""
        console.print(f"[green]audit log intact[/]: {result.entries} entries{last}{against}")
    else:
        err_console.print(
            f"[bold red]audit log broken[/] at entry {result.broken_id} ({result.problem}): "
            f"{result.reason}",
            highlight=False,
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
