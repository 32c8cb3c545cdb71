"""Which variant answers a request: sticky hashing, weights, canary ramps and bandits.

A *unit* (user, session, device...) is mapped to a point of ``[0, 1)`` by hashing the
endpoint's salt with the unit id (BLAKE2b, 64 bits). Fixed weights cut ``[0, 1)`` into
consecutive intervals, one per variant, so the same unit always lands in the same variant
while the weights stay the same, and two endpoints with different salts split the same
users independently. Without a unit id a request draws its point at random.

A canary uses the same point: a unit is on the canary while ``point < percent / 100``.
Raising the percentage only widens that interval, so a unit that was on the canary at 5 %
is still on it at 25 %; only units that were on the stable side move, once.

Bandits have no fixed intervals: their policy picks an arm from a cached snapshot of the
shared reward counters (:class:`~vigil.bandits.BanditState`), refreshed every
``refresh_s`` seconds by the router.

>>> point = unit_point("salt-1", "user-42")
>>> 0.0 <= point < 1.0, point == unit_point("salt-1", "user-42")
(True, True)
>>> split = WeightedChoice({"a": 90, "b": 10})
>>> split.pick(0.5), split.pick(0.95)
('a', 'b')
>>> canary_side(point, 5.0) <= canary_side(point, 25.0)
True
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vigil.errors import InvalidParameterError

if TYPE_CHECKING:
    import numpy as np

    from vigil.bandits import BanditPolicy, BanditState
    from vigil.experiments.config import BanditTrafficPolicy as BanditConfig
    from vigil.experiments.config import UnitKey

_SCALE = 2.0**-64
_U64 = struct.Struct(">Q").unpack
"""A digest's 8 bytes as one big-endian integer: ``int.from_bytes(d, "big")``, cheaper."""


def unit_point(salt: str, unit: str) -> float:
    """The unit's fixed point in ``[0, 1)``: BLAKE2b-64 of the unit id keyed with the salt.

    The salt goes in as BLAKE2b's key, so ``("ab", "c")`` and ``("a", "bc")`` differ.

    >>> unit_point("s", "u") != unit_point("s", "v")
    True
    """
    return UnitHasher(salt)(unit)


_POINTS_KEPT = 4096
"""Unit points a :class:`UnitHasher` remembers (then it forgets them all and starts again)."""
_POINT_UNIT_CHARS = 128
"""Only unit ids up to this long are remembered: the memory stays bounded (under 2 MB)."""


class UnitHasher:
    """:func:`unit_point` for one salt, with the keyed hash state prepared once (the router
    keeps one per endpoint: a copy is cheaper than a keyed start on every request), and the
    points of the last few thousand units remembered: a unit is sticky because it comes
    back, and a look-up costs a tenth of the hash.

    >>> UnitHasher("s")("u") == unit_point("s", "u")
    True
    """

    __slots__ = ("_keyed", "points")

    def __init__(self, salt: str) -> None:
        # The keyed start's bound ``copy``: a copy costs less than keying a new state (and
        # than the one-shot ``blake2b(data, key=...)``, timed), the bound method one
        # attribute look-up less per hash.
        self._keyed = hashlib.blake2b(digest_size=8, key=salt.encode()[:64]).copy
        self.points: dict[str, float] = {}
        """The points remembered (one dict for the hasher's life: cleared, never replaced),
        for a caller that looks a unit up before calling."""

    def __call__(self, unit: str) -> float:
        point = self.points.get(unit)
        if point is None:
            state = self._keyed()
            state.update(unit.encode())
            point = _U64(state.digest())[0] * _SCALE
            if len(unit) <= _POINT_UNIT_CHARS:
                if len(self.points) >= _POINTS_KEPT:
                    self.points.clear()
                self.points[unit] = point
        return point


def canary_side(point: float, percent: float) -> bool:
    """Whether the unit at ``point`` is on the canary when it takes ``percent`` of traffic.

    >>> canary_side(0.04, 5), canary_side(0.06, 5), canary_side(0.06, 25)
    (True, False, True)
    """
    return point * 100.0 < percent


class WeightedChoice:
    """Consecutive intervals of ``[0, 1)`` in proportion to relative weights.

    Variants with zero weight get no interval. The last interval is closed at 1, so a
    rounding error in the cumulative sums can never leave a point unassigned.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        total = float(sum(weights.values()))
        if not weights or total <= 0 or any(w < 0 for w in weights.values()):
            raise InvalidParameterError(
                f"weights must be >= 0 with a positive sum, got {dict(weights)}"
            )
        self.names: list[str] = []
        self.bounds: list[float] = []
        running = 0.0
        for name, weight in weights.items():
            if weight > 0:
                running += weight
                self.names.append(name)
                self.bounds.append(running / total)
        self.bounds[-1] = 1.0
        self.inner = self.bounds[:-1]
        """The bounds without the last (1.0): ``names[bisect_right(inner, point)]`` is the
        variant of any point, with no clamp for a point at or past 1."""

    def __repr__(self) -> str:
        return f"WeightedChoice({dict(zip(self.names, self.bounds, strict=True))})"

    def share(self, name: str) -> float:
        """The share of ``[0, 1)`` that ``name``'s interval covers: the chance a unit lands
        in it (0 for a variant without weight).

        >>> round(WeightedChoice({"a": 90, "b": 10}).share("b"), 12)
        0.1
        """
        if name not in self.names:
            return 0.0
        i = self.names.index(name)
        return self.bounds[i] - (self.bounds[i - 1] if i else 0.0)

    def pick(self, point: float) -> str:
        """The variant whose interval holds ``point``."""
        return self.names[bisect_right(self.inner, point)]


def unit_id(key: UnitKey, headers: Mapping[bytes, bytes], payload: Any) -> str | None:
    """The request's unit id: the configured header first, then the body's top-level field.

    The field is removed from ``payload`` (a dict) so the protocol decoder never sees it.
    Numbers are accepted as ids; anything else (lists, objects, empty strings) is ignored.

    >>> from vigil.experiments.config import UnitKey
    >>> body = {"instances": [], "user": 7}
    >>> unit_id(UnitKey(header="x-user", field="user"), {}, body), body
    ('7', {'instances': []})
    """
    return UnitReader(key)(headers, payload)


class UnitReader:
    """:func:`unit_id` for one endpoint's :class:`~vigil.experiments.config.UnitKey`, its
    header name encoded once (the router keeps one per endpoint).

    >>> from vigil.experiments.config import UnitKey
    >>> UnitReader(UnitKey(header="x-user"))({b"x-user": b"u-1"}, None)
    'u-1'
    """

    __slots__ = ("field", "header")

    def __init__(self, key: UnitKey) -> None:
        self.header = key.header.encode("latin-1") if key.header else None
        self.field = key.field or None

    def __call__(self, headers: Mapping[bytes, bytes], payload: Any) -> str | None:
        found: str | None = None
        if self.header is not None:
            raw = headers.get(self.header)
            if raw:
                found = raw.decode("latin-1")
        field = self.field
        if field is not None and isinstance(payload, dict) and field in payload:
            value = payload.pop(field)
            if found is None and isinstance(value, str | int) and not isinstance(value, bool):
                found = str(value) or None
        return found


def bandit_policy(
    config: BanditConfig, arms: list[str], *, seed: int | None = None
) -> BanditPolicy:
    """The :mod:`vigil.bandits` policy an endpoint's bandit configuration describes."""
    # Only for a bandit endpoint: every server imports this module (unit ids).
    from vigil.bandits import UCB1, EpsilonGreedy, ThompsonSampling

    if config.kind == "epsilon_greedy":
        return EpsilonGreedy(arms, epsilon=config.epsilon, seed=seed)
    if config.kind == "ucb1":
        return UCB1(arms, seed=seed)
    return ThompsonSampling(arms, likelihood=config.reward, seed=seed)


def bandit_state(arms: list[str], stats: Mapping[str, Any]) -> BanditState:
    """A bandit snapshot from shared variant stats: pulls are *rewarded* requests.

    Feedback arrives late and not for every request, so an arm's mean is its reward sum
    over the rewards received, not over the requests routed to it.
    """
    # Only for a bandit endpoint: every server imports this module (unit ids).
    import numpy as np

    from vigil.bandits import BanditState

    def column(name: str, dtype: Any) -> np.ndarray[Any, Any]:
        return np.array([getattr(stats[a], name) if a in stats else 0 for a in arms], dtype)

    return BanditState(
        tuple(arms),
        column("reward_count", np.int64),
        column("reward_sum", np.float64),
        column("reward_sumsq", np.float64),
    )
