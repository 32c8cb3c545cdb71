"""Feedback: a label or reward that arrives after a prediction, keyed by its ``request_id``.

Rules, checked in one place (:func:`check_feedback`) with one kind of error
(:class:`~vigil.errors.ValidationError`, HTTP 422):

* ``request_id`` is 1-128 characters of ``[A-Za-z0-9._:-]`` (what the server hands out);
* ``row`` is the row of a batch request (default 0), an integer from 0 to :data:`MAX_ROW`;
* ``label`` is a JSON scalar: a string of at most :data:`MAX_LABEL_CHARS` characters, a
  finite number (an integer within 64 bits), a boolean or ``null``;
* ``reward`` is a finite number; ``True``/``False`` are taken as 1.0/0.0 (a click or not);
  strings such as ``"1"`` are refused rather than guessed;
* at least one of ``label`` and ``reward`` is given;
* ``fields`` (optional) holds named facts about the judged row that arrive with its
  feedback, such as a sensitive attribute monitoring groups by
  (:mod:`vigil.monitor.fairness`, ``source: feedback``): at most
  :data:`MAX_FEEDBACK_FIELDS`, named like passthrough fields (a letter, then up to 63
  letters, digits, ``_`` or ``-``), each a JSON scalar (text of at most
  :data:`MAX_FIELD_CHARS` characters). They are masked by the capture masking rule of
  their name before they are stored;
* ``time`` (bulk loads only) is timezone-aware ISO 8601, not before 1970 and not more
  than :data:`MAX_CLOCK_SKEW` ahead of the clock.

Every bound is what the stored columns (64-bit integers and timestamps) and retention
(a label dated in the year 3000 would never expire) can hold: a value past one is refused
here with the field it concerns, never written to fail every later read.

>>> check_feedback({"request_id": "r1", "reward": True}).reward
1.0
>>> check_feedback({"request_id": "r1", "reward": "1"})
Traceback (most recent call last):
...
vigil.errors.ValidationError: feedback for request 'r1': reward must be a finite number or a boolean, got str '1'
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from vigil.errors import ValidationError

if TYPE_CHECKING:
    from vigil.capture.lookup import Captured

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_FIELDS = {"request_id", "row", "label", "reward", "time", "fields"}
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_INT64 = (-(2**63), 2**63 - 1)

MAX_ROW = 99_999_999
"""The largest ``row`` feedback may name: more rows than any request body can carry, and
small enough that a timestamp or a hash sent as a row by mistake is caught."""
MAX_LABEL_CHARS = 1024
"""The longest text label (class names, not documents)."""
MAX_FEEDBACK_FIELDS = 16
"""The most ``fields`` one feedback item may carry."""
MAX_FIELD_CHARS = 256
"""The longest text value of a feedback field (as of a passthrough field)."""
FIELD_PREFIX = "field."
"""Stored feedback keeps field ``x`` in the column ``field.x``."""

FieldValue = str | int | float | bool | None
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
"""Feedback cannot be older than this."""
MAX_CLOCK_SKEW = timedelta(days=1)
"""How far ahead of the server's clock a feedback time may be."""


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One label and/or reward for row ``row`` of request ``request_id``."""

    request_id: str
    row: int = 0
    label: str | int | float | bool | None = None
    reward: float | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When the feedback arrived (UTC)."""
    caller: str | None = None
    """Id of the API key whose prediction this judges: it joins only that key's request of
    this id. ``None`` judges the request whoever made it (authentication off, an admin key
    or ``vigil feedback FILE``). Set by :meth:`FeedbackStore.submit`, never by a client."""
    prediction_time: datetime | None = None
    """When the prediction it judges was made, and its model (``None``: not found when
    the feedback arrived). Set by :meth:`FeedbackStore.submit`, never by a client: the
    monitor places a late label in its window from them, without reading the log."""
    prediction_model: str | None = None
    fields: Mapping[str, FieldValue] | None = None
    """Named facts about the judged row sent with the feedback (see the module)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "row": self.row,
            "label": self.label,
            "reward": self.reward,
            "time": self.time.astimezone(UTC).isoformat(),
            "caller": self.caller,
        }
        if self.prediction_time is not None:
            out["prediction_time"] = self.prediction_time.astimezone(UTC).isoformat()
            out["prediction_model"] = self.prediction_model
        if self.fields:
            out["fields"] = dict(self.fields)
        return out


@dataclass(frozen=True, slots=True)
class MatchedFeedback:
    """Accepted feedback and the captured prediction it judges: model, version, endpoint,
    variant, and in ``captured.prediction`` the prediction of the row the feedback names."""

    feedback: FeedbackRecord
    captured: Captured


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What :meth:`FeedbackStore.submit` did with a batch of feedback.

    ``accepted`` records were stored; ``duplicates`` were ignored because that
    ``(request_id, row)`` already had feedback (the first one wins); ``unknown_request_ids``
    had no captured prediction (stored anyway: they join once their capture shows up);
    ``late`` counts accepted records that came more than ``late_after`` after their
    prediction; ``matched`` pairs each accepted record that has a captured prediction with it.
    """

    accepted: int
    duplicates: int
    unknown_request_ids: list[str]
    late: int
    unknown: int = 0
    """Accepted records whose ``(request_id, row)`` matches no captured prediction."""
    matched: tuple[MatchedFeedback, ...] = ()


def _fail(request_id: object, message: str, field_name: str) -> ValidationError:
    shown = repr(request_id[:200] if isinstance(request_id, str) else request_id)[:200]
    return ValidationError(f"feedback for request {shown}: {message}", detail={"field": field_name})


def _describe(value: object) -> str:
    return f"{type(value).__name__} {str(value)[:40]!r}"


def check_feedback_batch(
    items: Iterable[FeedbackRecord | Mapping[str, Any]],
) -> list[FeedbackRecord]:
    """Every item checked; one :class:`~vigil.errors.ValidationError` listing each bad item
    (``detail["errors"]``: index, field and message) when any is invalid.

    >>> check_feedback_batch([{"request_id": "a", "label": 1}, {"request_id": "b", "reward": "x"}])
    Traceback (most recent call last):
    ...
    vigil.errors.ValidationError: feedback item 1: feedback for request 'b': reward must be a finite number or a boolean, got str 'x'
    """
    checked: list[FeedbackRecord] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, FeedbackRecord | Mapping):
                raise ValidationError(
                    f"each feedback item must be an object, got {type(item).__name__}",
                    detail={"field": None},
                )
            checked.append(check_feedback(item))
        except ValidationError as exc:
            errors.append(
                {"index": index, "field": exc.detail.get("field"), "message": exc.message}
            )
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationError(
            f"feedback item {first['index']}: {first['message']}{more}",
            detail={"index": first["index"], "field": first["field"], "errors": errors[:100]},
        )
    return checked


def check_feedback(item: FeedbackRecord | Mapping[str, Any]) -> FeedbackRecord:
    """A valid :class:`FeedbackRecord` from a record or a mapping, or a ``ValidationError``."""
    caller = None
    if isinstance(item, FeedbackRecord):
        data = item.to_dict()
        caller = data.pop("caller")
    else:
        data = dict(item)
    # The first few, cut: an item may hold any number of fields, of any length.
    unknown = [str(k)[:40] for k in itertools.islice((k for k in data if k not in _FIELDS), 5)]
    rid = data.get("request_id")
    if unknown:
        raise _fail(rid, f"unknown field(s) {unknown}; use {sorted(_FIELDS)}", unknown[0])
    if not isinstance(rid, str) or not _REQUEST_ID.fullmatch(rid):
        raise _fail(
            rid,
            "request_id must be the id the prediction returned (1-128 of A-Za-z0-9._:-)",
            "request_id",
        )
    row = data.get("row", 0)
    if row is None:
        row = 0
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= MAX_ROW:
        raise _fail(rid, f"row must be an integer from 0 to {MAX_ROW}, got {_describe(row)}", "row")
    label = _check_label(rid, data.get("label"))
    reward = data.get("reward")
    if reward is not None:
        if isinstance(reward, bool) or (isinstance(reward, int | float) and _finite(reward)):
            reward = float(reward)
        else:
            raise _fail(
                rid,
                f"reward must be a finite number or a boolean, got {_describe(reward)}",
                "reward",
            )
    if label is None and reward is None:
        raise _fail(rid, "give a label, a reward or both", "label")
    time = _check_time(rid, data.get("time"))
    fields = _check_fields(rid, data.get("fields"))
    return FeedbackRecord(rid, row, label, reward, time, caller, fields=fields)


def _check_fields(rid: object, fields: Any) -> dict[str, FieldValue] | None:
    """``fields`` checked: an object of at most :data:`MAX_FEEDBACK_FIELDS` JSON scalars.

    >>> _check_fields("r", {"region": "north", "age_band": None})
    {'region': 'north', 'age_band': None}
    """
    if fields is None:
        return None
    if not isinstance(fields, Mapping) or len(fields) > MAX_FEEDBACK_FIELDS:
        raise _fail(
            rid,
            f"fields must be an object of at most {MAX_FEEDBACK_FIELDS} named values, e.g. "
            '{"region": "north"}',
            "fields",
        )
    out: dict[str, FieldValue] = {}
    for name, value in fields.items():
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise _fail(
                rid,
                f"invalid field name {str(name)[:40]!r}: use a letter, then up to 63 letters, "
                "digits, '_' or '-'",
                "fields",
            )
        ok = (
            value is None
            or isinstance(value, bool)
            or (isinstance(value, int) and _INT64[0] <= value <= _INT64[1])
            or (isinstance(value, float) and math.isfinite(value))
            or (isinstance(value, str) and len(value) <= MAX_FIELD_CHARS)
        )
        if not ok:
            raise _fail(
                rid,
                f"field {name!r} must be a JSON scalar (text of at most {MAX_FIELD_CHARS} "
                f"characters, a finite number, a boolean or null), got {_describe(value)}",
                f"fields.{name}",
            )
        out[name] = value
    return out or None


def _finite(value: int | float) -> bool:
    # An int converts to a float only up to ~1.8e308; past that it is no finite number.
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_label(rid: object, label: Any) -> str | int | float | bool | None:
    if label is None or isinstance(label, bool):
        return label
    if isinstance(label, str):
        if len(label) > MAX_LABEL_CHARS:
            raise _fail(
                rid,
                f"a text label holds at most {MAX_LABEL_CHARS} characters, got {len(label)}",
                "label",
            )
        return label
    if isinstance(label, int):
        if not _INT64[0] <= label <= _INT64[1]:
            raise _fail(
                rid,
                f"an integer label must fit in 64 bits (-2**63 to 2**63-1), got {_describe(label)}",
                "label",
            )
        return label
    if isinstance(label, float):
        if not math.isfinite(label):
            raise _fail(rid, f"label must be finite, got {label}", "label")
        return label
    raise _fail(rid, f"label must be a string, number or boolean, got {_describe(label)}", "label")


def _check_time(rid: object, value: Any) -> datetime:
    now = datetime.now(UTC)
    if value is None:
        return now
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(rid, f"time must be ISO 8601, got {value[:40]!r}", "time") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _fail(rid, "time must be a timezone-aware ISO 8601 timestamp", "time")
    latest = now + MAX_CLOCK_SKEW
    try:
        time = value.astimezone(UTC)
    except OverflowError:  # e.g. year 1 at +01:00: before the first representable instant
        time = None
    if time is None or not EARLIEST_TIME <= time <= latest:
        raise _fail(
            rid,
            f"time must lie between {EARLIEST_TIME.date()} and {latest.date()} (UTC), "
            "when the label was observed",
            "time",
        )
    return time
