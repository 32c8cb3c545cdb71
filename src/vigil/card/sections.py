"""A model card's content as sections of plain blocks (:mod:`vigil.card.blocks`), in
reading order, for both renderers: what the version is (:mod:`vigil.card.about`), then how
it has behaved (:mod:`vigil.card.history`)."""

from __future__ import annotations

from vigil.card.about import (
    baseline_section,
    importance_section,
    lineage_section,
    metrics_section,
    overview_section,
    signature_section,
)
from vigil.card.blocks import Section
from vigil.card.facts import ModelCard
from vigil.card.history import (
    alerts_section,
    fairness_section,
    monitoring_section,
    promotions_section,
)


def sections(card: ModelCard) -> list[Section]:
    """The card's sections, in reading order."""
    return [
        overview_section(card),
        lineage_section(card),
        signature_section(card),
        metrics_section(card),
        baseline_section(card),
        importance_section(card),
        fairness_section(card),
        monitoring_section(card),
        alerts_section(card),
        promotions_section(card),
    ]
