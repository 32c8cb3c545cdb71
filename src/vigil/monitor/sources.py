"""Where monitoring reads from: the inference log and the feedback of one vigil home.

Live capture segments sit in ``VIGIL_CAPTURE_DIR`` (default ``<home>/capture``), compacted
ones in the artifact store; feedback segments in ``VIGIL_CAPTURE_FEEDBACK_DIR`` (default
``<home>/feedback``). Every worker and ``vigil monitor run`` on the same home therefore
read the same log, as the server writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vigil.app import Vigil
    from vigil.feedback.store import FeedbackStore


def capture_dir(vigil: Vigil) -> Path:
    """The live capture segments' directory of ``vigil``'s home."""
    from vigil.capture.settings import CaptureSettings

    return CaptureSettings().resolved_dir(vigil.settings.home)


def feedback_store(vigil: Vigil, *, capture: Path | None = None) -> FeedbackStore:
    """The feedback store of ``vigil``'s home (matched against ``capture`` when given)."""
    from vigil.capture.settings import CaptureSettings
    from vigil.feedback.store import FeedbackStore

    settings = CaptureSettings()
    if capture is not None:
        settings = settings.model_copy(update={"dir": capture})
    return FeedbackStore.from_settings(settings, vigil.settings.home, vigil.artifacts)
