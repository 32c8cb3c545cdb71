"""Explanation latency per row: vigil's explainers vs ``shap`` itself, in the same run.

Run ``flock /tmp/vigil-bench.lock python -m bench.explain [--quick]``. Seeded data (20
numeric features, 5,000 training rows, a binary label); each model is registered the way
vigil builds a bundle (``build_bundle`` with reference data) and loaded back, and both
contenders explain the same rows, in batches of 1 and of 100 rows, interleaved round by
round (vigil, then shap, then vigil...), after a warm-up call each:

* **linear** (LogisticRegression): vigil's closed form vs ``shap.LinearExplainer`` with
  the reference mean as its background (the same values);
* **xgboost** (200 trees, depth 6): XGBoost's ``pred_contribs`` through vigil vs
  ``shap.TreeExplainer`` on the same model;
* **lightgbm** (200 trees, 31 leaves): LightGBM's ``pred_contrib`` through vigil vs
  ``shap.TreeExplainer``;
* **forest** (RandomForestClassifier, 100 trees, depth 8): vigil calls shap's TreeSHAP,
  so this measures vigil's own overhead around it.

Reported: median seconds per explained row of each contender and the ratio vigil / shap
(goal: ≤ 1, no slower). Time is what :func:`vigil.explain.explainers.explain` takes (the
engine behind the endpoint and ``vigil explain``), not HTTP.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _data(rows: int = 5_000, features: int = 20) -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=features, n_informative=8, random_state=0)
    return pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(features)]), y


def _models(quick: bool) -> dict[str, Any]:
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    trees = 50 if quick else 200
    return {
        "linear": LogisticRegression(max_iter=1_000),
        "xgboost": xgb.XGBClassifier(n_estimators=trees, max_depth=6, n_jobs=1),
        "lightgbm": lgb.LGBMClassifier(n_estimators=trees, num_leaves=31, n_jobs=1, verbose=-1),
        "forest": RandomForestClassifier(n_estimators=trees // 2, max_depth=8, n_jobs=1),
    }


def _shap_side(name: str, model: Any, X: pd.DataFrame) -> Callable[[np.ndarray], Any]:
    from vigil.explain.explainers import import_shap

    shap = import_shap()
    if name == "linear":
        masker = shap.maskers.Independent(X.to_numpy().mean(axis=0)[None, :], max_samples=1)
        explainer = shap.LinearExplainer(model, masker)
        return lambda rows: explainer(rows).values
    tree = shap.TreeExplainer(model.booster_ if name == "lightgbm" else model)
    if name == "forest":  # both classes' probabilities; vigil's answer is the positive's
        return lambda rows: tree(rows, check_additivity=False).values[:, :, 1]
    return lambda rows: tree(rows, check_additivity=False).values


def _median_per_row(fn: Callable[[np.ndarray], Any], rows: np.ndarray, times: list[float]) -> None:
    start = time.perf_counter()
    fn(rows)
    times.append((time.perf_counter() - start) / len(rows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Fewer trees and rounds.")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 15)

    from vigil.bundle.bundle import build_bundle, load_bundle
    from vigil.bundle.manifest import read_manifest
    from vigil.bundle.trust import TrustPolicy
    from vigil.explain.explainers import explain, explainer_for

    X, y = _data()
    test = X.to_numpy()[-200:]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in _models(args.quick).items():
            model.fit(X, y)
            dest = Path(tmp) / name
            build_bundle(model, dest, reference=X)
            trust = TrustPolicy(trusted_types=tuple(read_manifest(dest).required_trusted_types))
            bundle = load_bundle(dest, trust=trust)
            ours = explainer_for(bundle)

            def vigil_side(rows: np.ndarray, ours: Any = ours) -> Any:
                return explain(ours, rows).values

            theirs = _shap_side(name, model, X)
            # Same values (the benchmark compares like with like).
            np.testing.assert_allclose(vigil_side(test[:5]), theirs(test[:5]), atol=1e-5)
            for batch in (1, 100):
                got: dict[str, list[float]] = {"vigil": [], "shap": []}
                for r in range(rounds):
                    rows = test[(r * batch) % 100 : (r * batch) % 100 + batch]
                    _median_per_row(vigil_side, rows, got["vigil"])
                    _median_per_row(theirs, rows, got["shap"])
                v, s = statistics.median(got["vigil"]), statistics.median(got["shap"])
                results[f"{name}/{batch}"] = {
                    "method": ours.method,
                    "vigil_us_per_row": v * 1e6,
                    "shap_us_per_row": s * 1e6,
                    "ratio": v / s,
                }
                print(
                    f"{name:9s} batch {batch:3d} ({ours.method}): vigil {v * 1e6:10.1f} µs/row, "
                    f"shap {s * 1e6:10.1f} µs/row, ratio {v / s:.3f}",
                    flush=True,
                )
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
