"""Feedback as experiment counters: the rewards and labels of each variant.

A data-plane feedback listener (:meth:`EndpointRouter.on_feedback
<vigil.serving.endpoints.router.EndpointRouter.on_feedback>`) hands the accepted feedback
here; what comes back is added to the counters of the variant that the captured
prediction names, in whichever worker receives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.feedback.record import MatchedFeedback

__all__ = ["variant_counts"]


def _same_label(label: Any, prediction: Any) -> bool:
    if isinstance(label, bool) or isinstance(prediction, bool):
        return bool(label) == bool(prediction)
    if isinstance(label, int | float) and isinstance(prediction, int | float):
        return float(label) == float(prediction)
    return str(label) == str(prediction)


def variant_counts(matched: list[MatchedFeedback]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(endpoint, variant, counts)`` for each piece of ``matched`` feedback about a
    prediction made inside an experiment (other feedback is skipped).

    Rewards always count; a label counts (as correct or not) only when the captured
    prediction it judges is known.
    """
    for item in matched:
        captured, feedback = item.captured, item.feedback
        if not captured.endpoint or not captured.variant:
            continue
        counts: dict[str, Any] = {}
        if feedback.reward is not None:
            counts["rewards"] = [float(feedback.reward)]
        prediction = getattr(captured, "prediction", None)
        if feedback.label is not None and prediction is not None:
            counts["labels"] = 1
            counts["labels_correct"] = int(_same_label(feedback.label, prediction))
        if counts:
            yield captured.endpoint, captured.variant, counts
