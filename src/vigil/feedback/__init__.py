"""Feedback: labels and rewards that arrive after a prediction, joined by ``request_id``.

The names below are imported on first use: a serving worker needs the rules of
:mod:`vigil.feedback.record` (its request schema quotes their bounds) and must not pay for
PyArrow (the store, the join) on its way to ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil._lazy import lazy_exports

if TYPE_CHECKING:
    from vigil.feedback.join import labelled_predictions
    from vigil.feedback.load import load_feedback_file
    from vigil.feedback.record import FeedbackRecord, FeedbackResult, check_feedback
    from vigil.feedback.store import FeedbackStore

_MODULES = {
    "FeedbackRecord": "record",
    "FeedbackResult": "record",
    "FeedbackStore": "store",
    "check_feedback": "record",
    "labelled_predictions": "join",
    "load_feedback_file": "load",
}
__all__ = [
    "FeedbackRecord",
    "FeedbackResult",
    "FeedbackStore",
    "check_feedback",
    "labelled_predictions",
    "load_feedback_file",
]


__getattr__ = lazy_exports(__name__, _MODULES)
