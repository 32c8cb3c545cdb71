"""``POST /v1/feedback``: labels and rewards joined to the inference log by request id.

The body is one item ``{"request_id": "...", "label": ..., "reward": ..., "row": 0}`` or a
batch ``{"feedback": [item, ...]}`` (at most :data:`MAX_ITEMS`). ``request_id`` is the id a
prediction answered with (``X-Request-ID``); ``row`` picks a row of a batch request (default
0); give a ``label`` (string, number or boolean), a ``reward`` (a finite number; ``true`` and
``false`` count as 1 and 0, a click or not) or both. The arrival time is the server's.
An item may also carry ``fields``: named JSON scalars about the judged row (a sensitive
attribute monitoring groups by, ``{"region": "north"}``), masked by the capture masking
rules of their names before they are stored (see :mod:`vigil.feedback.record`).

The answer counts what happened: ``accepted`` (stored), ``duplicates`` (that row already had
feedback; the first wins), ``unknown`` (no captured prediction has that id and row: stored
anyway, it joins if the prediction shows up) and ``late`` (more than
``VIGIL_CAPTURE_FEEDBACK_LATE_HOURS`` after the prediction). Any invalid item fails the
whole request with 422, naming every bad item's index and field, and nothing is stored.

With authentication on, feedback is bound to the API key that made the prediction: a
``predict`` key may only send feedback for its own predictions (an item about another
key's prediction fails the request with 403, naming it; nothing is stored), and its
feedback for an id nobody has used yet can only ever join its own prediction of that id.
An ``admin`` key may label any prediction (see :mod:`vigil.feedback.owner`).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from vigil.errors import ValidationError
from vigil.feedback.record import MAX_FEEDBACK_FIELDS, MAX_FIELD_CHARS, MAX_LABEL_CHARS, MAX_ROW
from vigil.serving.http import Request, Response, Route, json_response

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane

MAX_ITEMS = 10_000
_UNKNOWN_IDS_SHOWN = 100


def _bad(message: str, field: str | None, index: int | None = None) -> ValidationError:
    return ValidationError(message, detail={"field": field, "index": index})


def feedback_items(payload: Any) -> list[Any]:
    """The feedback items of a request body (one item, or ``{"feedback": [...]}``).

    >>> feedback_items({"request_id": "r1", "reward": 1})
    [{'request_id': 'r1', 'reward': 1}]
    >>> len(feedback_items({"feedback": [{"request_id": "a", "label": 0}] * 3}))
    3
    """
    if not isinstance(payload, dict):
        raise _bad(
            'send one feedback object {"request_id": ..., "label"/"reward": ...} '
            'or {"feedback": [...]}',
            None,
        )
    if "feedback" in payload:
        if len(payload) != 1:
            extra = [k[:40] for k in itertools.islice((k for k in payload if k != "feedback"), 5)]
            raise _bad(f"a batch holds only 'feedback'; remove {extra}", extra[0])
        items = payload["feedback"]
        if not isinstance(items, list) or not items:
            raise _bad("'feedback' must be a non-empty array of feedback objects", "feedback")
        if len(items) > MAX_ITEMS:
            raise _bad(
                f"a batch holds at most {MAX_ITEMS} items (got {len(items)}); split it, or "
                "load a file with `vigil feedback FILE`",
                "feedback",
            )
    else:
        items = [payload]
    for index, item in enumerate(items):
        if isinstance(item, dict) and "time" in item:
            raise _bad(
                f"feedback item {index}: 'time' is set by the server on arrival; remove it "
                "(`vigil feedback FILE` accepts a time column for historical labels)",
                "time",
                index,
            )
    return items


async def submit_feedback(dp: DataPlane, req: Request) -> Response:
    items = feedback_items(req.json())
    result = await dp.submit_feedback(items, key_id=req.key_id, admin=req.key_role == "admin")
    return json_response(
        {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "unknown": result.unknown,
            "late": result.late,
            "unknown_request_ids": result.unknown_request_ids[:_UNKNOWN_IDS_SHOWN],
        }
    )


_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["request_id"],
    "properties": {
        "request_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
        "row": {"type": "integer", "minimum": 0, "maximum": MAX_ROW, "default": 0},
        "label": {
            "type": ["string", "number", "boolean", "null"],
            "maxLength": MAX_LABEL_CHARS,
            "description": "A class name, a finite number (integers within 64 bits) or a boolean.",
        },
        "reward": {"type": ["number", "boolean", "null"]},
        "fields": {
            "type": "object",
            "maxProperties": MAX_FEEDBACK_FIELDS,
            "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]{0,63}$"},
            "additionalProperties": {
                "type": ["string", "number", "boolean", "null"],
                "maxLength": MAX_FIELD_CHARS,
            },
            "description": "Named facts about the judged row, e.g. a sensitive attribute.",
        },
    },
    "additionalProperties": False,
}

SCHEMAS: dict[str, Any] = {
    "FeedbackRequest": {
        "description": "One feedback item, or a batch of them under 'feedback'.",
        "oneOf": [
            _ITEM,
            {
                "type": "object",
                "required": ["feedback"],
                "properties": {
                    "feedback": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_ITEMS,
                        "items": _ITEM,
                    }
                },
                "additionalProperties": False,
            },
        ],
    },
    "FeedbackResponse": {
        "type": "object",
        "required": ["accepted", "duplicates", "unknown", "late", "unknown_request_ids"],
        "properties": {
            "accepted": {"type": "integer", "description": "Items stored."},
            "duplicates": {"type": "integer", "description": "Ignored: the row had feedback."},
            "unknown": {"type": "integer", "description": "Stored, but no prediction matches."},
            "late": {"type": "integer", "description": "Stored long after the prediction."},
            "unknown_request_ids": {
                "type": "array",
                "items": {"type": "string"},
                "description": f"The first {_UNKNOWN_IDS_SHOWN} unknown request ids.",
            },
        },
    },
}

ROUTES: list[Route] = [
    Route(
        "POST",
        "/v1/feedback",
        submit_feedback,
        "feedback",
        "native",
        "Submit labels or rewards for earlier predictions, by request id",
        body="json",
        request_schema={"$ref": "#/components/schemas/FeedbackRequest"},
        responses={
            "200": {"description": "Counts", "schema": "FeedbackResponse"},
            "403": {
                "description": "An item names a prediction another API key made",
                "schema": "Problem",
            },
        },
        tags=("feedback",),
        role="predict",
    )
]
