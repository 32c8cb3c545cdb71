"""The explainers, and :func:`explainer_for`, which picks the exact one a model allows.

* **linear** (closed form, exact): a scikit-learn linear model's attribution of feature
  ``j`` is ``coef_j * (x_j - mean_j)``, interventional against the *reference mean* (the
  baseline profile's, or the background's); the base value is the model's output at that
  mean. Output: the prediction of a regressor, the decision function of a classifier
  (``log-odds`` for a binary logistic regression, the per-class ``margin`` otherwise).
* **tree** (exact): scikit-learn trees, forests and gradient boosting through
  ``shap.TreeExplainer`` (path-dependent TreeSHAP: the trees' own training coverage is the
  background); XGBoost and LightGBM through their native contribution output
  (``pred_contribs`` / ``pred_contrib``, the same TreeSHAP, equal to shap's). Output: the raw tree output
  (a forest classifier's ``probability``, a boosted classifier's ``log-odds`` or
  ``margin``, a regressor's ``value``).
* **permutation** (sampled, for any other model): antithetic permutation sampling (the
  method of ``shap.PermutationExplainer``) of the model's probabilities (or predictions)
  with a background sample of the reference data, at most ``max_evals`` model evaluations
  of ``background`` rows each per explained row. Its values add up exactly to the output
  minus the mean output over the background (the base value).

``shap`` is imported only for a scikit-learn tree model (``pip install 'vigil[explain]'``);
every other path needs nothing beyond NumPy and the model's own library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from vigil.errors import NotExplainableError, require
from vigil.explain.attributions import Attributions, RawAttributions, select, two_sided

if TYPE_CHECKING:
    import pandas as pd

    from vigil.bundle.model import LoadedBundle, Table

LINEAR_MODELS = frozenset(
    {
        "LinearRegression",
        "Ridge",
        "RidgeCV",
        "Lasso",
        "LassoCV",
        "ElasticNet",
        "ElasticNetCV",
        "Lars",
        "LassoLars",
        "BayesianRidge",
        "ARDRegression",
        "HuberRegressor",
        "SGDRegressor",
        "LinearSVR",
        "LogisticRegression",
        "LogisticRegressionCV",
        "SGDClassifier",
        "RidgeClassifier",
        "RidgeClassifierCV",
        "LinearSVC",
    }
)
"""scikit-learn models whose output (prediction or decision function) is ``X @ coef_.T +
intercept_``; a generalised linear model (Poisson, Gamma...) is not: its link bends it."""

TREE_MODELS = frozenset(
    {
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "ExtraTreeClassifier",
        "ExtraTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
    }
)
"""scikit-learn tree models ``shap.TreeExplainer`` explains exactly."""


@dataclass(frozen=True)
class ExplainLimits:
    """Bounds on the work one explanation may take."""

    max_evals: int = 512
    """Model evaluations per row for the permutation estimator (at least ``2 * features +
    1``: one forward and one backward pass of one permutation)."""
    background_rows: int = 64
    """Reference rows the permutation estimator masks with (each evaluation predicts them
    all)."""
    seed: int = 0


class Explainer(Protocol):
    """Explains rows of one model."""

    method: str
    output: str
    exact: bool
    feature_names: list[str]
    classes: list[Any] | None

    def raw(self, X: Table) -> RawAttributions:
        """SHAP values of every output, for the rows of ``X`` (signature order)."""
        ...


def import_shap() -> Any:
    """``shap``, or the exact ``pip install`` line. Its import draws its plot colours with
    a matplotlib call newer matplotlib deprecates: a warning about shap, not about the
    caller, so it is silenced for the import only."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return require("shap", "explain")


def explain(explainer: Explainer, X: Table, *, label: Any | None = None) -> Attributions:
    """``explainer``'s attributions of ``X``, one output per row (see
    :func:`~vigil.explain.attributions.class_indexes`)."""
    return select(
        explainer.raw(X),
        feature_names=explainer.feature_names,
        classes=explainer.classes,
        label=label,
        method=explainer.method,
        output=explainer.output,
        exact=explainer.exact,
    )


def _matrix(X: Table) -> npt.NDArray[np.float64]:
    from vigil.bundle.flavors.base import as_matrix

    return as_matrix(X, dtype=np.float64)


@dataclass
class LinearExplainer:
    """Closed-form SHAP values of a linear model against ``mean`` (see the module)."""

    coef: npt.NDArray[np.float64]
    """``(outputs, features)``."""
    intercept: npt.NDArray[np.float64]
    """``(outputs,)``."""
    mean: npt.NDArray[np.float64]
    feature_names: list[str]
    classes: list[Any] | None
    output: str
    method: str = "linear"
    exact: bool = True

    def raw(self, X: Table) -> RawAttributions:
        centred = _matrix(X) - self.mean
        values = centred[:, :, None] * self.coef.T[None, :, :]
        base = np.broadcast_to(
            self.coef @ self.mean + self.intercept, (len(centred), len(self.coef))
        )
        return RawAttributions(values=values, base_values=np.array(base))


def linear_explainer(
    estimator: Any,
    mean: npt.NDArray[np.float64],
    feature_names: list[str],
    classes: list[Any] | None,
) -> LinearExplainer:
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
    if coef.shape[1] != len(feature_names):
        raise NotExplainableError(
            f"the linear model has {coef.shape[1]} coefficients for {len(feature_names)} inputs"
        )
    if classes is None:
        if len(coef) != 1:
            raise NotExplainableError("a linear model of several outputs cannot be explained")
        return LinearExplainer(coef, intercept, mean, feature_names, None, "value")
    logistic = type(estimator).__name__.startswith("LogisticRegression")
    if len(coef) == 1:  # binary: one margin, the positive class's
        coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
        return LinearExplainer(
            coef, intercept, mean, feature_names, classes, "log-odds" if logistic else "margin"
        )
    return LinearExplainer(coef, intercept, mean, feature_names, classes, "margin")


def _normalise(values: Any, base: Any, n: int) -> RawAttributions:
    """shap's outputs ``(n, f)`` or ``(n, f, k)`` with a base of shape ``()``, ``(k,)`` or
    ``(n, k)``, as ``(n, f, k)`` and ``(n, k)``; one margin of a binary model made two."""
    values = np.asarray(values, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    if values.ndim == 2:
        values = values[:, :, None]
    k = values.shape[2]
    base = np.broadcast_to(base.reshape(-1, k) if base.ndim == 2 else base.reshape(1, -1), (n, k))
    return RawAttributions(values=values, base_values=np.array(base))


@dataclass
class ShapTreeExplainer:
    """TreeSHAP of a scikit-learn tree model, through ``shap.TreeExplainer``."""

    estimator: Any
    feature_names: list[str]
    classes: list[Any] | None
    output: str
    method: str = "tree"
    exact: bool = True
    _shap: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        shap = import_shap()
        try:
            self._shap = shap.TreeExplainer(self.estimator)
        except shap.utils._exceptions.InvalidModelError as exc:
            # e.g. a multiclass GradientBoostingClassifier
            raise NotExplainableError(f"TreeSHAP cannot explain this model: {exc}") from exc

    def raw(self, X: Table) -> RawAttributions:
        m = _matrix(X)
        values = self._shap.shap_values(m, check_additivity=False)
        raw = _normalise(values, self._shap.expected_value, len(m))
        if self.classes is not None and raw.values.shape[2] == 1:
            return two_sided(raw.values[:, :, 0], raw.base_values[:, 0])
        return raw


def _tree_output(estimator: Any, classes: list[Any] | None) -> str:
    if classes is None:
        return "value"
    if type(estimator).__name__ == "GradientBoostingClassifier":
        return "log-odds" if len(classes) == 2 else "margin"
    return "probability"


def _contributions(
    contribs: npt.NDArray[Any], n: int, f: int, classes: list[Any] | None
) -> RawAttributions:
    """XGBoost's / LightGBM's contribution matrix (the bias in the last column of each
    output's block) as SHAP values and base values."""
    c = np.asarray(contribs, dtype=np.float64).reshape(n, -1, f + 1)  # (n, k, f + 1)
    values, base = np.transpose(c[:, :, :f], (0, 2, 1)), c[:, :, f]
    if classes is not None and values.shape[2] == 1:
        return two_sided(values[:, :, 0], base[:, 0])
    return RawAttributions(values=np.ascontiguousarray(values), base_values=base)


@dataclass
class XGBoostExplainer:
    """XGBoost's own TreeSHAP: ``Booster.predict(..., pred_contribs=True)``."""

    model: Any
    """A :class:`~vigil.bundle.flavors.xgboost.XGBoostModel`."""
    feature_names: list[str]
    classes: list[Any] | None
    output: str
    method: str = "xgboost"
    exact: bool = True
    _booster: Any = field(default=None, repr=False)

    def raw(self, X: Table) -> RawAttributions:
        import xgboost as xgb

        data = self.model._prepare(X)
        # One thread: building a DMatrix with a thread per core costs ~40 ms a call on a
        # busy machine (more than the contributions of 100 rows); explanations run on
        # one thread anyway.
        matrix = xgb.DMatrix(data, enable_categorical=self.model._needs_frame, nthread=1)
        if self._booster is None:
            # A copy on one thread: OpenMP threads spinning up on a busy machine cost tens
            # of milliseconds a call; the served model's booster keeps its own settings.
            self._booster = self.model.wrapper.get_booster().copy()
            self._booster.set_param({"nthread": 1})
        contribs = self._booster.predict(matrix, pred_contribs=True, validate_features=False)
        return _contributions(contribs, matrix.num_row(), len(self.feature_names), self.classes)


def xgboost_output(model: Any) -> str:
    config = json.loads(model.wrapper.get_booster().save_config())
    objective = str(config["learner"]["objective"]["name"])
    if objective == "binary:logistic":
        return "log-odds"
    if objective.startswith(("reg:squared", "reg:absolute", "reg:pseudohuber", "reg:quantile")):
        return "value"
    return "margin"


@dataclass
class LightGBMExplainer:
    """LightGBM's own TreeSHAP: ``Booster.predict(..., pred_contrib=True)``."""

    model: Any
    """A :class:`~vigil.bundle.flavors.lightgbm.LightGBMModel`."""
    feature_names: list[str]
    classes: list[Any] | None
    output: str
    method: str = "lightgbm"
    exact: bool = True

    def raw(self, X: Table) -> RawAttributions:
        m = _matrix(X)
        contribs = self.model.booster.predict(m, pred_contrib=True, num_threads=1)
        return _contributions(contribs, len(m), len(self.feature_names), self.classes)


def lightgbm_output(model: Any) -> str:
    if model.kind == "binary":
        return "log-odds"
    if model.kind == "multiclass":
        return "margin"
    return "value" if model.objective in ("regression", "regression_l2", "l2", "mse") else "margin"


@dataclass
class PermutationExplainer:
    """Sampled SHAP values of any model by antithetic permutation sampling (the method of
    ``shap.PermutationExplainer``), in NumPy: shap's own compiles numba code on first use,
    which costs a serving process tens of seconds.

    For each explained row, ``permutations`` random orders of the features are walked
    forwards and backwards; at each step one more feature takes the row's value while the
    others keep the ``background`` rows' values, and the change of the mean output over the
    background is that feature's share. Every walk goes from the mean output over the
    background (the base value) to the row's output, so the values add up exactly; each is
    an unbiased estimate of the feature's interventional SHAP value.
    """

    predict: Any
    """Rows (a 2-D array in signature order) -> ``(rows, outputs)``."""
    background: npt.NDArray[Any]
    feature_names: list[str]
    classes: list[Any] | None
    output: str
    limits: ExplainLimits
    method: str = "permutation"
    exact: bool = False
    _base: npt.NDArray[np.float64] | None = field(default=None, repr=False)

    @property
    def permutations(self) -> int:
        """Orders walked per row (each both ways), within ``limits.max_evals``."""
        return max(1, self.limits.max_evals // (2 * (len(self.feature_names) + 1)))

    def _mean_outputs(self, rows: npt.NDArray[Any], groups: int) -> npt.NDArray[np.float64]:
        out = np.asarray(self.predict(rows), dtype=np.float64).reshape(len(rows), -1)
        means: npt.NDArray[np.float64] = out.reshape(groups, len(self.background), -1).mean(axis=1)
        return means

    def raw(self, X: Table) -> RawAttributions:
        from vigil.bundle.flavors.base import as_matrix

        rows = as_matrix(X)
        n, f = rows.shape
        bg = self.background
        if self._base is None:
            self._base = self._mean_outputs(bg, 1)[0]
        rng = np.random.default_rng(self.limits.seed)
        p = self.permutations
        orders = np.array([rng.permutation(f) for _ in range(p)])
        orders = np.concatenate([orders, orders[:, ::-1]])  # antithetic: each both ways
        # on[w, s, j]: whether feature j takes the row's value at step s of walk w.
        on = np.zeros((len(orders), f + 1, f), dtype=bool)
        for w, order in enumerate(orders):
            for step in range(1, f + 1):
                on[w, step] = on[w, step - 1]
                on[w, step, order[step - 1]] = True
        masks = on.reshape(-1, f)
        values = np.zeros((n, f, len(self._base)), dtype=np.float64)
        for i in range(n):
            batch = np.where(masks[:, None, :], rows[i][None, None, :], bg[None, :, :])
            means = self._mean_outputs(batch.reshape(-1, f), len(masks))
            means = means.reshape(len(orders), f + 1, -1)
            steps = np.diff(means, axis=1)  # (walks, f, outputs): the share of the step's feature
            for w, order in enumerate(orders):
                values[i, order] += steps[w]
        values /= len(orders)
        base = np.broadcast_to(self._base, (n, len(self._base)))
        return RawAttributions(values=values, base_values=np.array(base))


def _model_function(bundle: LoadedBundle) -> tuple[Any, str]:
    """What the permutation estimator explains: ``(rows -> outputs, output space)``."""
    model = bundle.model
    names = [f.name for f in bundle.signature.inputs]
    numeric = all(f.is_numeric for f in bundle.signature.inputs)

    def table(rows: npt.NDArray[Any]) -> Table:
        if numeric:
            return np.asarray(rows, dtype=np.float64)
        import pandas as pd

        return pd.DataFrame(rows, columns=names)

    if bundle.signature.outputs.classes is not None:
        if not model.has_proba:
            raise NotExplainableError(
                "this classifier gives no class probabilities, so there is nothing to "
                "attribute; register a model with predict_proba to explain it",
                detail={"reason": "no_probabilities"},
            )
        return (lambda rows: np.asarray(model.predict_proba(table(rows)))), "probability"

    def predict(rows: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.asarray(model.predict(table(rows)), dtype=np.float64).reshape(len(rows), -1)

    return predict, "value"


def reference_frame(
    sample: dict[str, list[Any]], names: list[str], rows: int | None = None, seed: int = 0
) -> pd.DataFrame | None:
    """Up to ``rows`` rows (seeded) of a stored reference sample (column -> values), the
    columns ``names`` in that order; ``None`` when the sample lacks one of them."""
    if not sample or any(n not in sample for n in names):
        return None
    import pandas as pd

    frame = pd.DataFrame({n: sample[n] for n in names})
    if rows is not None and len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed)
    return frame.reset_index(drop=True)


def reference_background(bundle: LoadedBundle) -> pd.DataFrame | None:
    """The bundle's stored reference sample (the model's inputs, signature order);
    ``None`` when it holds none (or it was not read)."""
    if bundle.profile is None:
        return None
    names = [f.name for f in bundle.signature.inputs]
    return reference_frame(bundle.profile.sample, names)


def reference_mean(bundle: LoadedBundle) -> npt.NDArray[np.float64] | None:
    """The mean of each input over the reference data (the baseline profile's), or
    ``None`` when the profile lacks one."""
    from vigil.profile_schema import NumericProfile

    profile = bundle.profile
    if profile is None:
        return None
    means: list[float] = []
    for spec in bundle.signature.inputs:
        p = profile.features.get(spec.name)
        if not isinstance(p, NumericProfile) or p.mean is None:
            return None
        means.append(p.mean)
    return np.asarray(means, dtype=np.float64)


def explainer_for(
    bundle: LoadedBundle,
    *,
    background: pd.DataFrame | None = None,
    limits: ExplainLimits | None = None,
) -> Explainer:
    """The exact explainer ``bundle``'s model allows, else the permutation estimator.

    ``background`` (reference rows, the model's inputs) is what the permutation estimator
    masks with and what a linear model's attributions are centred on; by default the
    bundle's stored reference sample, and for a linear model the baseline profile's means.
    Raises :class:`~vigil.errors.NotExplainableError` when no explainer fits.
    """
    limits = limits or ExplainLimits()
    model = bundle.model
    names = [f.name for f in bundle.signature.inputs]
    classes = bundle.signature.outputs.classes
    numeric = all(f.is_numeric for f in bundle.signature.inputs)
    estimator = getattr(model, "estimator", None)
    kind = type(estimator).__name__ if estimator is not None else ""
    if model.flavor == "sklearn" and numeric and kind in LINEAR_MODELS:
        mean = (
            _matrix(background).mean(axis=0) if background is not None else reference_mean(bundle)
        )
        if mean is not None:
            return linear_explainer(estimator, mean, names, classes)
    if model.flavor == "sklearn" and numeric and kind in TREE_MODELS:
        try:
            return ShapTreeExplainer(estimator, names, classes, _tree_output(estimator, classes))
        except NotExplainableError:
            pass  # a tree model TreeSHAP does not cover: the permutation estimate below
    if model.flavor == "xgboost":
        output = xgboost_output(model)
        return XGBoostExplainer(model, names, classes, output)
    if model.flavor == "lightgbm":
        return LightGBMExplainer(model, names, classes, lightgbm_output(model))
    predict, output = _model_function(bundle)
    if background is None:
        background = reference_background(bundle)
    if background is None or len(background) == 0:
        raise NotExplainableError(
            "this model has no exact explainer and no reference sample to estimate "
            "attributions against; register it with reference data "
            "(`vigil register ... --reference FILE`)",
            detail={"reason": "no_reference_sample"},
        )
    frame = background[names] if hasattr(background, "columns") else background
    rows = np.asarray(frame.to_numpy() if hasattr(frame, "to_numpy") else frame)
    if numeric:
        rows = rows.astype(np.float64)
    if len(rows) > limits.background_rows:  # a seeded subsample, the same wherever it is read
        pick = np.random.default_rng(limits.seed).choice(
            len(rows), limits.background_rows, replace=False
        )
        rows = rows[np.sort(pick)]
    return PermutationExplainer(predict, rows, names, classes, output, limits)
