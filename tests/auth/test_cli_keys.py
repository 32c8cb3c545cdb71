"""``vigil key create | list | revoke`` as a user types them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.auth.keys import KeyStore
from vigil.cli import app
from vigil.errors import ApiKeyNotFoundError
from vigil.settings import load_settings


@pytest.fixture(autouse=True)
def _forget_the_cli_vigil() -> Iterator[None]:
    yield
    reset_default()  # the CLI's Vigil points at this test's home


def invoke(*args: str) -> tuple[int, str, str]:
    reset_default()  # the CLI's Vigil must read this test's VIGIL_HOME
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_create_list_revoke(vigil_home: Path):
    code, out, err = invoke("key", "create", "--role", "predict", "--name", "frontend")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("vk_") and "\n" not in token  # the token alone on stdout
    assert "shown only once" in err and token not in err
    store = KeyStore.from_vigil(Vigil(load_settings(home=vigil_home)))
    principal = store.authenticate(token)
    assert (principal.role, principal.name) == ("predict", "frontend")

    code, out, _ = invoke("key", "list")
    assert code == 0 and principal.key_id in out and "frontend" in out
    assert token not in out and token[20:] not in out

    code, out, _ = invoke("key", "revoke", principal.key_id)
    assert code == 0 and f"revoked API key {principal.key_id}" in out
    code, out, _ = invoke("key", "list")
    assert principal.key_id not in out and "no API keys yet" in out
    code, out, _ = invoke("key", "list", "--all", "--json")
    [listed] = json.loads(out)
    assert listed["id"] == principal.key_id and listed["revoked_at"] is not None
    assert "token" not in listed and "secret_hash" not in listed


def test_create_json_carries_the_token():
    code, out, _ = invoke("key", "create", "--role", "admin", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["role"] == "admin" and created["token"].startswith(f"vk_{created['id']}_")


def test_bad_input_is_one_clear_error():
    code, _, err = invoke("key", "create", "--role", "root")
    assert code == 2 and "'root' is not one of" in err
    reset_default()
    result = CliRunner().invoke(app, ["key", "revoke", "nope"])
    assert result.exit_code == 1 and isinstance(result.exception, ApiKeyNotFoundError)
    assert "vigil key list" in str(result.exception)
