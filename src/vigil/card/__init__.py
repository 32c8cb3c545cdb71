"""Model cards: one document about a model version built from what vigil knows of it.

:func:`gather` collects the facts (registry, baseline profile, importance, fairness and
monitoring series, alerts, endpoints, alias moves, audit trail; bounded), and
:func:`render_html` / :func:`render_markdown` draw them (``vigil card``).
"""

from __future__ import annotations

from vigil.card.facts import ModelCard, gather
from vigil.card.html import card_data, render_html
from vigil.card.markdown import render_markdown

__all__ = ["ModelCard", "card_data", "gather", "render_html", "render_markdown"]
