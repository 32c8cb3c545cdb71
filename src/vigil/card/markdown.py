"""A model card as Markdown (CommonMark with GitHub tables), for a repository or a wiki.

Same sections as the HTML page (:mod:`vigil.card.sections`); charts become the tables of
their numbers. User text is escaped so that it reads as the text it is: Markdown's
punctuation gets a backslash, ``<``, ``>`` and ``&`` become entities (no raw HTML gets
through), and a table cell keeps to one line.

>>> print(md_text("**bold** <script> | [x](y)"))
\\*\\*bold\\*\\* &lt;script&gt; \\| \\[x\\](y)
>>> print(md_text("# not a heading\\n1. nor a list; 0.5 stays"))
\\# not a heading
1\\. nor a list; 0.5 stays
>>> print(md_text("3.11 in a cell", inline=True))
3.11 in a cell
"""

from __future__ import annotations

import re

from vigil.card.blocks import Block, Chart, Command, Facts, Para, Section, Table
from vigil.card.facts import ModelCard
from vigil.card.sections import sections

_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
# What starts a heading, a quote, a list item or a rule at the start of a line.
_LINE_START = re.compile(r"^(\s*)([#+=-])", re.MULTILINE)
_ORDERED = re.compile(r"^(\s*\d+)([.)])", re.MULTILINE)


def md_text(text: str, *, inline: bool = False) -> str:
    """``text`` escaped for Markdown prose (line breaks kept); ``inline`` when its first
    line follows other text (a cell, a list item's value), so it cannot start a block."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", text)
    first, sep, rest = text.partition("\n") if inline else ("", "", text)
    rest = _LINE_START.sub(lambda m: m[1] + "\\" + m[2], rest)
    return first + sep + _ORDERED.sub(lambda m: m[1] + "\\" + m[2], rest)


def _cell(text: str) -> str:
    return md_text(" ".join(text.split()), inline=True) or " "


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _block(block: Block) -> str:
    if isinstance(block, Para):
        text = md_text(block.text)
        return f"_{text}_" if block.muted else text
    if isinstance(block, Facts):
        # Multi-line values (limitations) keep their lines, each a hard break.
        return "\n".join(
            f"- **{md_text(k, inline=True)}:** " + md_text(v, inline=True).replace("\n", "  \n  ")
            for k, v in block.items
        )
    if isinstance(block, Command):
        fence = "````" if "```" in block.text else "```"
        return f"{fence}console\n{block.text}\n{fence}"
    if isinstance(block, Chart):
        return ""  # its numbers are in the section's tables
    assert isinstance(block, Table)
    caption = f"{md_text(block.caption)}:\n\n" if block.caption else ""
    return caption + _table(block.headers, block.rows)


def _section(section: Section) -> str:
    body = "\n\n".join(b for b in (_block(x) for x in section.blocks) if b)
    return f"## {md_text(section.title)}\n\n{body}\n"


def render_markdown(card: ModelCard) -> str:
    """The whole card as one Markdown document."""
    mv = card.version
    head = f"# Model card: {md_text(mv.name)} version {mv.version}\n\n`{mv.uri}`"
    if mv.aliases:
        head += " · aliases: " + md_text(", ".join(mv.aliases))
    return head + "\n\n" + "\n".join(_section(s) for s in sections(card))
