"""Explanations: per-row feature attributions (SHAP values) of a model's predictions, and
global importance (mean absolute attribution on the reference data).

Exact where the model allows (linear models in closed form, tree ensembles through TreeSHAP
or XGBoost's / LightGBM's own contributions), a bounded permutation estimate otherwise; see
:mod:`vigil.explain.explainers`. ``shap`` is needed only when a model without a native
explainer is explained (``pip install 'vigil[explain]'``) and is imported only then.
"""

from vigil._lazy import lazy_exports

__all__ = [
    "Attributions",
    "ExplainLimits",
    "explain",
    "explainer_for",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "Attributions": "attributions",
        "ExplainLimits": "explainers",
        "explain": "explainers",
        "explainer_for": "explainers",
    },
)
