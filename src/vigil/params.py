"""Parameter checks shared by the statistics, the drift detectors and the bandit policies.

One message template for every bad parameter, so a user always reads the same shape:
``"<owner>: <name> must be <rule>; got <value>."``. The errors are
:class:`vigil.errors.InvalidParameterError` (a ``ValueError``, HTTP 422).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import numpy as np

from vigil.errors import InvalidParameterError

__all__ = [
    "Rule",
    "check_choice",
    "check_count",
    "check_finite",
    "check_in_range",
    "check_positive",
    "check_probability",
    "check_rules",
    "fail",
]


def fail(owner: str, name: str, rule: str, value: object) -> NoReturn:
    """Raise the one :class:`InvalidParameterError` template.

    >>> fail("EpsilonGreedy", "epsilon", "in [0, 1]", 2.0)
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: EpsilonGreedy: epsilon must be in [0, 1]; got 2.0.
    """
    raise InvalidParameterError(
        f"{owner}: {name} must be {rule}; got {value!r}.",
        detail={"owner": owner, "parameter": name, "rule": rule, "value": repr(value)},
    )


def _as_real(value: object) -> float | None:
    """The value as a float if it is a real number (bools and numpy bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    return float(value)


def check_finite(owner: str, name: str, value: object) -> float:
    """A finite real number."""
    x = _as_real(value)
    if x is None or not math.isfinite(x):
        fail(owner, name, "a finite number", value)
    return x


def check_positive(owner: str, name: str, value: object) -> float:
    """A finite number > 0 (prior parameters, variances, tau)."""
    x = _as_real(value)
    if x is None or not math.isfinite(x) or x <= 0:
        fail(owner, name, "a finite number > 0", value)
    return x


def check_in_range(
    owner: str, name: str, value: object, low: float, high: float, *, closed: str = "both"
) -> float:
    """A number within ``[low, high]``; ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``."""
    left = "[" if closed in ("both", "left") else "("
    right = "]" if closed in ("both", "right") else ")"
    rule = f"in {left}{low:g}, {high:g}{right}"
    x = _as_real(value)
    if x is None:
        fail(owner, name, rule, value)
    above = x >= low if left == "[" else x > low
    below = x <= high if right == "]" else x < high
    if not (above and below):
        fail(owner, name, rule, value)
    return x


def check_probability(owner: str, name: str, value: object) -> float:
    """A probability strictly between 0 and 1 (alpha, power, confidence level)."""
    return check_in_range(owner, name, value, 0.0, 1.0, closed="neither")


def check_count(owner: str, name: str, value: object, minimum: int = 0) -> int:
    """A whole number >= ``minimum`` (integral floats such as ``10.0`` are accepted)."""
    x = _as_real(value)
    if x is None or not math.isfinite(x) or not x.is_integer() or x < minimum:
        fail(owner, name, f"a whole number >= {minimum}", value)
    return int(x)


def check_choice(owner: str, name: str, value: object, choices: Iterable[str]) -> str:
    """One of a fixed set of strings."""
    options = tuple(choices)
    if value not in options:
        fail(owner, name, "one of " + ", ".join(repr(c) for c in options), value)
    return str(value)


Rule = tuple[Any, ...]
"""A declared parameter rule: ``("range", low, high[, closed])``, ``("positive",)``,
``("non-negative",)``, ``("count", minimum)`` or ``("choice", option, ...)``."""


def check_rules(owner: str, values: Mapping[str, object], rules: Mapping[str, Rule]) -> None:
    """Check each named value against its declared rule (classes declare ``_rules``).

    >>> check_rules("PageHinkley", {"threshold": 0.0}, {"threshold": ("positive",)})
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: PageHinkley: threshold must be a finite number > 0; got 0.0.
    """
    for name, rule in rules.items():
        value, kind = values[name], rule[0]
        if kind == "range":
            closed = rule[3] if len(rule) > 3 else "both"
            check_in_range(owner, name, value, rule[1], rule[2], closed=closed)
        elif kind == "positive":
            check_positive(owner, name, value)
        elif kind == "non-negative":
            check_in_range(owner, name, value, 0.0, float("inf"), closed="left")
        elif kind == "count":
            check_count(owner, name, value, minimum=rule[1])
        elif kind == "choice":
            check_choice(owner, name, value, rule[1:])
        else:  # pragma: no cover - a rule table typo
            raise AssertionError(f"unknown rule {rule!r} for {owner}.{name}")
