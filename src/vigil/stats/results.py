"""Result records shared by the tests and intervals: frozen, JSON-ready via ``to_dict()``.

``to_dict()`` turns NaN and infinities into ``None`` (JSON has no NaN), so a record
can go straight into an HTTP response or a SQL JSON column.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Estimate", "TestResult", "jsonable"]


def jsonable(value: Any) -> Any:
    """Convert dataclasses, enums, tuples and non-finite floats into plain JSON values.

    >>> jsonable({"p": float("nan"), "ci": (0.1, 0.2)})
    {'p': None, 'ci': [0.1, 0.2]}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


class _Record:
    """Mixin: ``to_dict()`` for frozen dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (NaN and inf become ``None``)."""
        out: dict[str, Any] = jsonable(self)
        return out


@dataclass(frozen=True)
class Estimate(_Record):
    """A point estimate with a two-sided confidence interval.

    ``method`` names how the interval was built (e.g. ``"newcombe"``, ``"katz-log"``).
    """

    value: float
    low: float
    high: float
    level: float
    method: str


@dataclass(frozen=True)
class TestResult(_Record):
    """A hypothesis test: the statistic, its p-value and, for t tests, the degrees of freedom."""

    __test__ = False  # not a pytest test class despite the name

    test: str
    statistic: float
    p_value: float
    alternative: str
    df: float | None = None
