"""The Dockerfile, parsed: what the image's tests and the manifests' tests check against."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    name: str
    """Upper-case directive: ``FROM``, ``RUN``, ``ENV``, ..."""
    args: str
    stage: int
    """0 for the first ``FROM``'s stage, 1 for the next, ..."""

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (fails on shell form)."""
        parsed = json.loads(self.args)
        assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), self
        return parsed


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, continuation lines joined.

    >>> [(i.name, i.args, i.stage) for i in parse("FROM a AS b\\nRUN x \\\\\\n  && y\\nFROM b\\n")]
    [('FROM', 'a AS b', 0), ('RUN', 'x && y', 0), ('FROM', 'b', 1)]
    """
    found: list[Instruction] = []
    stage = -1
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # also inside a continued instruction, as Docker reads it
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        if pending:
            name, _, args = pending.partition(" ")
            if name.upper() == "FROM":
                stage += 1
            found.append(Instruction(name.upper(), args.strip(), max(stage, 0)))
        pending = ""
    return found


INSTRUCTIONS = parse(DOCKERFILE.read_text(encoding="utf-8"))
FINAL = max(i.stage for i in INSTRUCTIONS)


def final(name: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.name == name and i.stage == FINAL]


def arg_default(name: str) -> str:
    for i in INSTRUCTIONS:
        if i.name == "ARG" and i.args.partition("=")[0] == name:
            return i.args.partition("=")[2]
    raise AssertionError(f"no ARG {name} in the Dockerfile")


def image_env() -> dict[str, str]:
    """The ENV of the final stage (``KEY=VALUE`` pairs, as Docker splits them)."""
    env: dict[str, str] = {}
    for i in final("ENV"):
        for pair in shlex.split(i.args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def entrypoint() -> list[str]:
    (last,) = final("ENTRYPOINT")[-1:]
    return last.exec_form()


def command() -> list[str]:
    (last,) = final("CMD")[-1:]
    return last.exec_form()
