"""The conventions :mod:`vigil.cli` promises, checked on every command: one meaning per
short flag (the table in its docstring), ``--json`` wherever something changes, and
messages that only name commands that exist."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer

import vigil.cli
from vigil.cli import _options
from vigil.cli import app as cli_app

SRC = Path(vigil.cli.__file__).resolve().parents[1]


def _commands(command: Any = None, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every command by its path (``"alias set"``), hidden group names left out."""
    command = command or typer.main.get_command(cli_app)
    found: dict[str, Any] = {}
    for name, sub in getattr(command, "commands", {}).items():
        if getattr(sub, "hidden", False):
            continue
        if hasattr(sub, "commands"):
            found.update(_commands(sub, (*path, name)))
        else:
            found[" ".join((*path, name))] = sub
    return found


def _options_of(command: Any) -> list[Any]:
    return [p for p in command.params if type(p).__name__.endswith("Option")]


def test_short_flags_are_the_documented_ones() -> None:
    used: dict[str, set[str]] = defaultdict(set)
    for command in _commands().values():
        for option in _options_of(command):
            longs = [o for o in option.opts if o.startswith("--")]
            for short in (o for o in option.opts if not o.startswith("--")):
                used[short].update(longs)
    rows = re.findall(r"^\s+(-[a-z])\s+(--\S+(?: / --\S+)?)\s", vigil.cli.__doc__ or "", re.M)
    documented = {short: set(longs.split(" / ")) for short, longs in rows}
    assert dict(used) == documented


STATE_CHANGING = [
    "register",
    "rollback",
    "alias set",
    "alias delete",
    "key create",
    "key revoke",
    "endpoint create",
    "endpoint update",
    "endpoint delete",
    "experiment conclude",
    "feedback",
    "monitor run",
    "predict",
]


@pytest.mark.parametrize("name", STATE_CHANGING)
def test_every_change_can_be_printed_as_json(name: str) -> None:
    (json_option,) = [o for o in _options_of(_commands()[name]) if "--json" in o.opts]
    assert json_option.help == _options.JSON.help  # the one shared definition


def test_messages_name_only_commands_that_exist() -> None:
    commands = set(_commands())
    first_words = {c.split()[0] for c in commands}
    mention = re.compile(r"(?:`|with: |try: |see |run: |\[bold\])vigil ([a-z-]+)(?: ([a-z-]+))?")
    missing = []
    for path in SRC.rglob("*.py"):
        for found in mention.finditer(path.read_text(encoding="utf-8")):
            first, second = found.groups()
            ok = (
                first.startswith("-")  # vigil --version
                or first in commands
                or (first in first_words and (second is None or f"{first} {second}" in commands))
            )
            if not ok:
                missing.append(f"{path.relative_to(SRC)}: {found.group(0)}")
    assert not missing
