"""The explainers of served models, built on first use and run off the event loop.

:class:`Explanations` keeps one explainer per served model version (built the first time
the version is explained, so a server that is never asked pays nothing, and ``shap`` is
imported only then) and runs every explanation on one thread of its own: an explanation
of many rows, or a sampled one, takes far longer than a prediction, and must neither
block the event loop nor take the model's batching thread from predictions.

The work is bounded: at most :attr:`Explanations.max_rows` rows per request for an exact
explainer and :attr:`Explanations.max_sampled_rows` for the permutation estimate, whose
budget per row is :class:`~vigil.explain.explainers.ExplainLimits`'.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from vigil.errors import PayloadTooLargeError

if TYPE_CHECKING:
    import pandas as pd

    from vigil.explain.attributions import Attributions
    from vigil.explain.explainers import Explainer, ExplainLimits
    from vigil.serving.provider import ServedModel

ReferenceSample = Callable[["ServedModel"], "pd.DataFrame | None"]
"""Reads a served version's stored reference rows (serving loads bundles without them)."""


class Explanations:
    """Explainers of the served models and the thread they run on.

    Parameters
    ----------
    reference_sample:
        Reads the reference rows of a version whose bundle was loaded without them (what
        the permutation estimate masks with); by default the bundle's own, if loaded.
    limits:
        The permutation estimate's budget (default :class:`ExplainLimits`).
    max_rows, max_sampled_rows:
        Rows one request may explain, exactly or by sampling.
    """

    def __init__(
        self,
        *,
        reference_sample: ReferenceSample | None = None,
        limits: ExplainLimits | None = None,
        max_rows: int = 1_000,
        max_sampled_rows: int = 10,
    ) -> None:
        self.reference_sample = reference_sample
        self.limits = limits
        self.max_rows = max_rows
        self.max_sampled_rows = max_sampled_rows
        self._built: WeakKeyDictionary[ServedModel, Explainer] = WeakKeyDictionary()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        """One thread (started on first use): explanations queue behind each other, never
        behind or in front of predictions."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-explain")
        return self._pool

    def explainer(self, served: ServedModel) -> Explainer:
        """``served``'s explainer, built on first use (call off the event loop)."""
        with self._lock:
            found = self._built.get(served)
            if found is None:
                from vigil.explain.explainers import explainer_for  # on first explanation

                background = None
                bundle = served.bundle
                needs_rows = bundle.profile is None or not bundle.profile.sample
                if needs_rows and self.reference_sample is not None:
                    background = self.reference_sample(served)
                found = explainer_for(bundle, background=background, limits=self.limits)
                self._built[served] = found
            return found

    def _explain(self, served: ServedModel, X: Any, n_rows: int, label: Any) -> Attributions:
        from vigil.explain.explainers import explain

        explainer = self.explainer(served)
        limit = self.max_rows if explainer.exact else self.max_sampled_rows
        if n_rows > limit:
            how = "exactly" if explainer.exact else "by sampling (the model has no exact explainer)"
            raise PayloadTooLargeError(
                f"model {served.name} version {served.version} is explained {how}, at most "
                f"{limit} rows per request (got {n_rows}); send fewer rows per request",
                detail={"field": "rows", "expected": f"at most {limit}", "got": n_rows},
            )
        return explain(explainer, X, label=label)

    async def explain(self, served: ServedModel, X: Any, n_rows: int, label: Any) -> Attributions:
        """Attributions of the validated rows ``X`` (on the explain thread)."""
        if n_rows > self.max_rows:  # refused before any work is queued
            raise PayloadTooLargeError(
                f"at most {self.max_rows} rows may be explained per request (got {n_rows}); "
                "send fewer rows per request",
                detail={"field": "rows", "expected": f"at most {self.max_rows}", "got": n_rows},
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._explain, served, X, n_rows, label)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
