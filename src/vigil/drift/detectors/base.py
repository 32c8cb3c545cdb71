"""The shape every streaming drift detector shares.

A detector sees one value at a time through :meth:`DriftDetector.update` and exposes the
verdict after that value through the read-only :attr:`~DriftDetector.drift_detected`.
``__init__`` stores the parameters (and sets up state through ``_reset``); all state
lives in private attributes so :meth:`~DriftDetector.clone` can rebuild a fresh detector
from the parameters alone. A detector that detected drift starts afresh on its next
update, as River's detectors do.

Missing and non-finite values (None, NaN, ``±inf``) never enter a detector's state: one
NaN would otherwise poison a running mean for good and blind the detector to every later
change. They are skipped and counted in :attr:`~DriftDetector.n_skipped`; a skipped value
completes no detection.
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import Any, ClassVar, Self

from vigil.params import Rule, check_rules


class DriftDetector(abc.ABC):
    """Base of the streaming drift detectors."""

    _rules: ClassVar[dict[str, Rule]] = {}
    _drift_detected: bool = False
    _n_skipped: int = 0

    def _validate(self) -> None:
        """Check the parameters against the declared ``_rules`` (one message template)."""
        check_rules(type(self).__name__, self._get_params(), self._rules)

    def _reset(self) -> None:
        """Forget everything seen so far (parameters are kept)."""
        self._drift_detected = False

    def update(self, x: float | None) -> None:
        """Feed one value; afterwards :attr:`drift_detected` tells whether it was a change."""
        if self._drift_detected:
            self._reset()
        if x is None or not math.isfinite(x):
            self._n_skipped += 1
            return
        self._update(x)

    @abc.abstractmethod
    def _update(self, x: float) -> None:
        """Take one finite value into the state and set the verdict."""

    @property
    def n_skipped(self) -> int:
        """Missing or non-finite values seen and left out of the state (never reset)."""
        return self._n_skipped

    @property
    def drift_detected(self) -> bool:
        """Whether the last update completed a drift detection."""
        return self._drift_detected

    def _get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def clone(self) -> Self:
        """A new detector with the same parameters and no state."""
        return type(self)(**self._get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({params})"


class DriftAndWarningDetector(DriftDetector):
    """A detector that also raises a warning before it is sure of a drift."""

    _warning_detected: bool = False

    def _reset(self) -> None:
        super()._reset()
        self._warning_detected = False

    @property
    def warning_detected(self) -> bool:
        """Whether the last update put the detector in its warning zone."""
        return self._warning_detected
