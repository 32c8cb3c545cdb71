"""A model card as ONE self-contained HTML page: inline CSS, inline SVG, no external
resource (no CDN, font, image or link to fetch), so it opens offline and can be attached
to a review.

The page reuses the drift report's stylesheet (:mod:`vigil.report.assets`) and charts;
every piece of user text is escaped (:func:`html.escape`); the card's numbers are embedded
once more as JSON (``<script type="application/json" id="vigil-card">``, made safe by
:func:`vigil.report.html.script_json`). A small script marks ``<body>`` with
``data-ready="1"`` and the number of charts drawn (or ``data-error``), so a browser test
can tell that the page ran.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from vigil.card.blocks import Block, Chart, Command, Facts, Para, Section
from vigil.card.facts import ModelCard
from vigil.card.sections import sections
from vigil.report.assets import CSS
from vigil.report.html import script_json

CARD_CSS = """
nav.toc { margin: 8px 0 18px; font-size: 13px; }
nav.toc a { margin-right: 12px; color: #2c5d8f; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
               padding: 4px 20px 16px; margin: 16px 0; }
section.card.empty { background: #fbfcfd; }
section.card h2 { margin-top: 14px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
p.muted { color: var(--muted); }
pre.command { background: #eef2f6; padding: 8px 12px; border-radius: 6px;
              white-space: pre-wrap; overflow-wrap: anywhere; }
section.card table { margin: 8px 0; }
section.card th { cursor: default; }
section.card .charts { grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); }
section.card svg.bars { max-width: 720px; }
td { overflow-wrap: anywhere; }
"""

JS = """
(function () {
  "use strict";
  var body = document.body;
  window.addEventListener("error", function (e) { body.dataset.error = String(e.message); });
  try {
    var data = JSON.parse(document.getElementById("vigil-card").textContent);
    var drawn = document.querySelectorAll("svg.chart");
    var empty = 0;
    Array.prototype.forEach.call(drawn, function (svg) {
      var box = svg.getBoundingClientRect();
      if (!(box.width > 0 && box.height > 0) || svg.querySelectorAll("rect.bar").length === 0) {
        empty += 1;
      }
    });
    body.dataset.charts = String(drawn.length);
    body.dataset.emptyCharts = String(empty);
    body.dataset.sections = String(data.sections.length);
    body.dataset.ready = "1";
  } catch (err) {
    body.dataset.error = String(err && err.message ? err.message : err);
  }
})();
"""


def _block(block: Block) -> str:
    if isinstance(block, Para):
        muted = ' class="muted"' if block.muted else ""
        return f"<p{muted}>{escape(block.text)}</p>"
    if isinstance(block, Facts):
        items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in block.items)
        return f'<dl class="facts">{items}</dl>'
    if isinstance(block, Command):
        return f'<pre class="command"><code>{escape(block.text)}</code></pre>'
    if isinstance(block, Chart):
        return f"<figure>{block.svg}<figcaption>{escape(block.caption)}</figcaption></figure>"
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in block.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in block.rows
    )
    caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(section: Section) -> str:
    charts = [b for b in section.blocks if isinstance(b, Chart)]
    others = "".join(_block(b) for b in section.blocks if not isinstance(b, Chart))
    grid = f'<div class="charts">{"".join(_block(c) for c in charts)}</div>' if charts else ""
    state = "filled" if section.filled else "empty"
    return (
        f'<section class="card {state}" id="{section.id}" data-filled="{str(section.filled).lower()}">'
        f"<h2>{escape(section.title)}</h2>{others}{grid}</section>"
    )


def card_data(card: ModelCard, parts: list[Section]) -> dict[str, Any]:
    """The card's facts and sections as JSON-ready data (what ``--json`` prints)."""
    mv = card.version
    return {
        "model": mv.name,
        "version": mv.version,
        "uri": mv.uri,
        "card": dict(mv.card),
        "metrics": dict(mv.metrics),
        "importance": card.importance,
        "windows": len(card.windows),
        "fairness_points": len(card.fairness),
        "alerts": len(card.alerts),
        "sections": [{"id": s.id, "title": s.title, "filled": s.filled} for s in parts],
    }


def render_html(card: ModelCard) -> str:
    """The whole card page as one string."""
    mv = card.version
    parts = sections(card)
    title = f"Model card: {mv.name} version {mv.version}"
    toc = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in parts)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    aliases = f" · aliases: {', '.join(mv.aliases)}" if mv.aliases else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}{CARD_CSS}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>"
        f'<p class="subtitle">{escape(mv.uri + aliases)}</p>'
        f'<nav class="toc">{toc}</nav>'
        f"{''.join(_section(s) for s in parts)}"
        f"<footer>Generated by vigil on {generated} from its registry, monitoring store and "
        "audit trail.</footer>"
        f'</main><script type="application/json" id="vigil-card">'
        f"{script_json(card_data(card, parts))}</script>"
        f"<script>{JS}</script></body></html>\n"
    )
