"""Checking the tags and metrics attached to a version.

Keys follow the naming rules of :mod:`vigil.names`; tag values are strings and metric
values finite numbers, so both survive JSON on every database.

>>> check_metrics({"auc": 1})
{'auc': 1.0}
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
