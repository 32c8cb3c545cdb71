"""``vigil key``: create, list and revoke the API keys the server checks.

The token of a new key is printed once, on stdout, and never again: only its SHA-256 is
stored. ``list`` shows ids and prefixes, never tokens.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from vigil.cli._options import JSON, services
from vigil.console import as_dict, console, err_console, print_json, shown, table, when

if TYPE_CHECKING:
    from vigil.auth.keys import KeyStore

key_app = typer.Typer(
    help="Create, list and revoke API keys (Authorization: Bearer vk_...).",
    no_args_is_help=True,
)


class RoleChoice(StrEnum):
    """The roles, weakest first: each may do what the ones before it may."""

    read = "read"
    predict = "predict"
    admin = "admin"


def _store() -> KeyStore:
    from vigil.auth.keys import KeyStore

    return KeyStore.from_vigil(services())


@key_app.command("create")
def create(
    role: RoleChoice = typer.Option(
        ...,
        "--role",
        help="read (model metadata), predict (also predictions) or admin (also registry changes).",
    ),
    name: str = typer.Option(None, "--name", help="What the key is for, e.g. churn-frontend."),
    json_out: bool = JSON,
) -> None:
    """Create a key and print its token once (it cannot be shown again)."""
    created = _store().create(role.value, name=name)
    if json_out:
        print_json({**as_dict(created.key), "token": created.token})
        return
    key = created.key
    err_console.print(
        f"[green]created[/] API key [bold]{key.id}[/] (role {key.role}"
        + (f", {shown(key.name)}" if key.name else "")
        + ")",
        highlight=False,
    )
    # The token alone on stdout, so `TOKEN=$(vigil key create ...)` captures just it.
    typer.echo(created.token)
    err_console.print(
        "[yellow]warning:[/] copy this token now: it is shown only once and cannot be "
        "recovered (vigil stores only its SHA-256). Send it as 'Authorization: Bearer <token>'.",
        highlight=False,
    )


@key_app.command("list")
def list_keys(
    all_keys: bool = typer.Option(False, "--all", help="Include revoked keys."),
    json_out: bool = JSON,
) -> None:
    """List API keys (ids, roles, last use; never tokens)."""
    keys = _store().list(include_revoked=all_keys)
    if json_out:
        print_json([as_dict(k) for k in keys])
        return
    if not keys:
        console.print("no API keys yet; create one with: vigil key create --role predict")
        return
    table(
        "API keys",
        ["id", "prefix", "role", "name", "created", "by", "last used", "revoked"],
        [
            (
                k.id,
                k.prefix + "…",
                k.role,
                k.name,
                when(k.created_at),
                k.created_by,
                when(k.last_used_at) or "never",
                when(k.revoked_at),
            )
            for k in keys
        ],
    )


@key_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="Id of the key (see vigil key list)."),
    json_out: bool = JSON,
) -> None:
    """Revoke a key for good; servers refuse it within their auth cache time (5 s)."""
    key = _store().revoke(key_id)
    if json_out:
        print_json(as_dict(key))
        return
    console.print(f"[green]revoked[/] API key [bold]{key.id}[/] (role {key.role})")


def install(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key")
    app.add_typer(key_app, name="keys", hidden=True)  # the plural, as it was first named
