"""The fenced code blocks of vigil's documentation, as the tests of tests/docs run them.

A block is named by its file and its first line (``README.md: vigil register churn ...``),
which stays the same when text elsewhere in the file moves; test ids add the line number
for the reader.

>>> [(b.lang, b.line, b.text) for b in parse("x\\n```bash\\necho hi\\n```\\n", "X.md")]
[('bash', 3, 'echo hi\\n')]
>>> steps("$ vigil model list\\nchurn  3\\n$ vigil alias set churn \\\\\\n  production 3\\n")
[Step(command='vigil model list', output=('churn  3',)), Step(command='vigil alias set churn \\\\\\n  production 3', output=())]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md")))
"""Every documentation file whose examples must work: the README and docs/*.md."""

_FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    doc: str
    """The file, relative to the repository (``docs/serving.md``)."""
    line: int
    """The line of the block's first line of code (1-based)."""
    lang: str
    text: str

    @property
    def key(self) -> tuple[str, str]:
        """``(doc, first non-empty line)``: how the harness's tables name a block."""
        first = next((line for line in self.text.splitlines() if line.strip()), "")
        return self.doc, first.strip()

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}:{self.lang or 'plain'}"


@dataclass(frozen=True)
class Step:
    """One ``$ command`` of a console block and the output lines shown under it."""

    command: str
    output: tuple[str, ...]


def parse(text: str, doc: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    found: list[Block] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, lang = opening.groups()
        body: list[str] = []
        i += 1
        start = i + 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        found.append(Block(doc, start, lang.lower(), "".join(body)))
        i += 1
    return found


def blocks(doc: str) -> list[Block]:
    return parse((ROOT / doc).read_text(encoding="utf-8"), doc)


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in blocks(doc)]


def steps(text: str) -> list[Step]:
    """The commands of a console block (``$ `` lines, with ``\\`` continuations) and the
    output lines shown under each."""
    found: list[Step] = []
    command: list[str] = []
    output: list[str] = []
    continued = False
    for line in text.splitlines():
        if continued:
            command.append(line)
            continued = line.endswith("\\")
        elif line.startswith("$ "):
            if command:
                found.append(Step("\n".join(command), tuple(output)))
            command, output = [line[2:]], []
            continued = line.endswith("\\")
        elif line.strip():
            output.append(line)
    if command:
        found.append(Step("\n".join(command), tuple(output)))
    return found


def output_pattern(shown: str) -> re.Pattern[str]:
    """A shown output line as a pattern: ``…`` stands for anything, a number for any
    number (the docs' figures are examples), runs of spaces for any spacing.

    >>> bool(output_pattern("scored 1,000,000 rows in … s").search("scored 12 rows in 0.3 s"))
    True
    """
    parts = re.split(r"(…|\d[\d,.]*|\s+)", shown.strip())
    regex = ""
    for part in parts:
        if part == "…":
            regex += ".*?"
        elif re.fullmatch(r"\d[\d,.]*", part):
            regex += r"\d[\d,.]*"
        elif part.isspace():
            regex += r"\s+"
        else:
            regex += re.escape(part)
    return re.compile(regex)
