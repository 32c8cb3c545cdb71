"""Whose prediction a piece of feedback judges: feedback is bound to the API key that made
the prediction.

With authentication on, a captured request is known by its id *and* its caller (the key
that made it), so a client-chosen ``X-Request-ID`` never collides with another key's. For
feedback on ``(request_id, row)`` sent by a ``predict`` key ``K`` (:func:`attribute`):

* ``K`` made a request with that id: the feedback judges it;
* only requests made without a key (authentication was off) have that id: it judges those;
* only other keys made requests with that id: it is refused (HTTP 403), whole batch;
* no request has that id yet: it is stored as ``K``'s. It will judge ``K``'s request of
  that id if ``K`` makes one, and never another key's, so a label sent early by someone
  else cannot make the owner's own label a duplicate.

Feedback sent with an ``admin`` key, with authentication off or by ``vigil feedback FILE``
(whoever runs it can read the home directory anyway) judges the request whoever made it;
of an id several keys chose, it judges all of them.

>>> from datetime import UTC, datetime
>>> from vigil.capture.lookup import Captured
>>> mine = Captured(datetime.now(UTC), "churn", 1, None, None, 1, (0,), caller="k1")
>>> attribute([mine], 0, caller="k1", admin=False).caller
'k1'
>>> attribute([mine], 0, caller="k2", admin=False).refused
True
>>> attribute([], 0, caller="k2", admin=False)
Attribution(captured=None, caller='k2', refused=False)
>>> attribute([mine], 0, caller=None, admin=False).caller
'k1'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vigil.capture.lookup import Captured


@dataclass(frozen=True, slots=True)
class Attribution:
    """What one piece of feedback judges."""

    captured: Captured | None
    """The captured request it judges, with that row's prediction (``None``: unknown, or
    the request has no such row)."""
    caller: str | None
    """Stored with the feedback: the key whose request it judges (``None``: any)."""
    refused: bool = False
    """Another key made the only requests with this id."""


def attribute(
    captures: Sequence[Captured], row: int, *, caller: str | None, admin: bool
) -> Attribution:
    """What feedback on ``row`` of the requests ``captures`` (one per caller that used the
    id, earliest first) judges, sent by key ``caller`` (``None``: no key)."""
    if caller is not None and not admin:
        for owner in (caller, None):
            for hit in captures:
                if hit.caller == owner:
                    return Attribution(_row(hit, row), owner)
        return Attribution(None, caller, refused=bool(captures))
    if not captures:
        return Attribution(None, None)
    first = captures[0]
    return Attribution(_row(first, row), first.caller if len(captures) == 1 else None)


def _row(hit: Captured, row: int) -> Captured | None:
    return hit.for_row(row) if row < hit.rows else None
