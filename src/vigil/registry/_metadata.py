"""Checking the tags, metrics and card facts attached to a version.

Keys follow the naming rules of :mod:`vigil.names`; tag values are strings and metric
values finite numbers, so both survive JSON on every database. Card facts are text under
the names of :data:`CARD_FIELDS`.

>>> check_metrics({"auc": 1})
{'auc': 1.0}
>>> check_card({"owner": " risk team ", "purpose": ""})
{'owner': 'risk team'}
>>> check_tags({"team": 7})
Traceback (most recent call last):
...
vigil.errors.ValidationError: tag 'team' must be a string, got int; quote it
"""

from __future__ import annotations

import math

from vigil.errors import ValidationError
from vigil.names import check_tag_key


def check_tags(tags: dict[str, str] | None) -> dict[str, str]:
    """A checked copy of ``tags``."""
    checked: dict[str, str] = {}
    for key, value in (tags or {}).items():
        check_tag_key(key)
        if not isinstance(value, str):
            raise ValidationError(
                f"tag {key!r} must be a string, got {type(value).__name__}; quote it",
                detail={"tag": key},
            )
        checked[key] = value
    return checked


def check_metrics(metrics: dict[str, float] | None) -> dict[str, float]:
    """A checked copy of ``metrics`` with every value as a float."""
    checked: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        check_tag_key(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValidationError(
                f"metric {key!r} must be a finite number, got {value!r}",
                detail={"metric": key},
            )
        checked[key] = float(value)
    return checked


CARD_FIELDS: tuple[str, ...] = ("purpose", "owner", "intended_use", "limitations")
"""What a person says about a version for its model card (``vigil card``)."""
CARD_TEXT_LIMIT = 20_000
"""Characters one card field may hold: a card is read by people, not a data store."""


def check_card(card: dict[str, str] | None) -> dict[str, str]:
    """A checked copy of ``card``: known fields only, text trimmed, empty text dropped."""
    checked: dict[str, str] = {}
    for key, value in (card or {}).items():
        if key not in CARD_FIELDS:
            raise ValidationError(
                f"unknown model card field {key!r}; the fields are {', '.join(CARD_FIELDS)}",
                detail={"field": key},
            )
        if not isinstance(value, str):
            raise ValidationError(
                f"model card field {key!r} must be text, got {type(value).__name__}",
                detail={"field": key},
            )
        text = value.strip()
        if len(text) > CARD_TEXT_LIMIT:
            raise ValidationError(
                f"model card field {key!r} holds {len(text):,} characters; at most "
                f"{CARD_TEXT_LIMIT:,} are kept: shorten it or link to a document",
                detail={"field": key},
            )
        if text:
            checked[key] = text
    return checked
