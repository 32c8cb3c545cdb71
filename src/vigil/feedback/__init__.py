"""Feedback: labels and rewards that arrive after a prediction, joined by ``request_id``."""

from __future__ import annotations

from vigil.feedback.join import labelled_predictions
from vigil.feedback.load import load_feedback_file
from vigil.feedback.record import FeedbackRecord, FeedbackResult, check_feedback
from vigil.feedback.store import FeedbackStore

__all__ = [
    "FeedbackRecord",
    "FeedbackResult",
    "FeedbackStore",
    "check_feedback",
    "labelled_predictions",
    "load_feedback_file",
]
