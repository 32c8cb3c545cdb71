"""Global importance: how much each input moves a model's output, on the reference data.

A feature's importance is its mean absolute attribution (SHAP value) over reference rows,
averaged over a classifier's classes: the usual SHAP summary. It is computed when a
version is registered with reference data (:func:`record_importance`) and stored in its
manifest, so ``vigil model show`` and monitoring read it without the data or the model.
An exact explainer uses up to :data:`EXACT_ROWS` reference rows; the permutation estimate
a smaller sample and budget (:data:`SAMPLED_LIMITS`), and says so (``exact: false``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.errors import MissingDependencyError, NotExplainableError
from vigil.explain.attributions import mean_absolute
from vigil.explain.explainers import ExplainLimits, explainer_for, reference_background

if TYPE_CHECKING:
    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.trust import TrustPolicy

log = logging.getLogger("vigil.explain")

EXACT_ROWS = 200
"""Reference rows an exact explainer summarises."""
SAMPLED_ROWS = 16
"""Reference rows the permutation estimate summarises."""
SAMPLED_LIMITS = ExplainLimits(max_evals=128, background_rows=32)
"""The permutation estimate's budget per row at registration."""


def global_importance(bundle: LoadedBundle) -> dict[str, Any] | None:
    """``{"features": {name: mean |attribution|, ...} (largest first), "method",
    "output", "exact", "rows"}`` over the bundle's stored reference sample; ``None`` when
    it has no sample. Raises :class:`~vigil.errors.NotExplainableError` when the model
    has no explainer."""
    from vigil.bundle.flavors.base import as_matrix

    reference = reference_background(bundle)
    if reference is None or len(reference) == 0:
        return None
    explainer = explainer_for(bundle, limits=SAMPLED_LIMITS)
    rows = reference.iloc[: EXACT_ROWS if explainer.exact else SAMPLED_ROWS]
    numeric = all(f.is_numeric for f in bundle.signature.inputs)
    X = as_matrix(rows, dtype=float) if numeric else rows
    values = mean_absolute(explainer.raw(X))
    ranked = sorted(zip(explainer.feature_names, values.tolist(), strict=True), key=lambda p: -p[1])
    return {
        "features": dict(ranked),
        "method": explainer.method,
        "output": explainer.output,
        "exact": explainer.exact,
        "rows": len(rows),
    }


def record_importance(bundle_dir: str | Path, trust: TrustPolicy) -> dict[str, Any] | None:
    """Compute the global importance of the bundle at ``bundle_dir`` (loaded under
    ``trust``) and store it in its manifest; ``None`` (and the bundle unchanged) when it
    has no reference sample or no explainer: registration never fails for it."""
    from vigil.bundle.bundle import load_bundle
    from vigil.bundle.manifest import MANIFEST_FILE, read_manifest

    root = Path(bundle_dir)
    manifest = read_manifest(root)
    if manifest.sample_file is None:
        return None
    try:
        importance = global_importance(load_bundle(root, trust=trust))
    except (NotExplainableError, MissingDependencyError) as exc:
        log.info("no global importance for this model: %s", exc.message)
        return None
    except Exception:
        # The model was profiled already; whatever stops its explanation (a model that
        # refuses masked rows, say) must not stop its registration.
        log.warning("could not compute this model's global importance", exc_info=True)
        return None
    if importance is None:
        return None
    updated = manifest.model_copy(update={"importance": importance})
    (root / MANIFEST_FILE).write_text(updated.model_dump_json(indent=2), encoding="utf-8")
    return importance
