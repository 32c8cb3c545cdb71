"""Performance metrics equal scikit-learn's; degenerate windows give None, not errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from vigil.monitor.performance import (
    classification_metrics,
    compare_metrics,
    evaluate,
    expected_calibration_error,
    regression_metrics,
)


def test_binary_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(["neg", "pos"], 500)
    p_pos = np.clip((y == "pos") * 0.4 + rng.uniform(0, 0.6, 500), 0, 1)
    pred = np.where(p_pos > 0.5, "pos", "neg")
    m = classification_metrics(y, pred, p_pos, classes=["neg", "pos"])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="pos"))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="pos"))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="pos"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "pos", p_pos))
    proba = np.column_stack([1 - p_pos, p_pos])
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=["neg", "pos"]))
    assert m["ece"] == pytest.approx(expected_calibration_error(y, proba, ["neg", "pos"]))


def test_multiclass_macro_and_ovr() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3)) + np.eye(3)[y] * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    m = classification_metrics(y, pred, proba, classes=[0, 1, 2])
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba))


def test_ece_by_hand() -> None:
    # confidences 0.9, 0.9 (one right) -> bin 9; 0.6 (right) -> bin 6; 0.55 (wrong) -> bin 6
    proba = np.array([[0.1, 0.9], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    y = np.array([1, 1, 1, 1])
    expected = (2 * abs(0.5 - 0.9) + 2 * abs(0.5 - 0.575)) / 4
    assert expected_calibration_error(y, proba, [0, 1]) == pytest.approx(expected)


def test_one_class_window_gives_none_auc_without_warnings() -> None:
    notes: list[str] = []
    m = classification_metrics([1, 1, 1], [1, 0, 1], [0.9, 0.4, 0.8], classes=[0, 1], notes=notes)
    assert m["roc_auc"] is None and m["accuracy"] == pytest.approx(2 / 3)
    assert m["log_loss"] == pytest.approx(
        skm.log_loss([1, 1, 1], [[0.1, 0.9], [0.6, 0.4], [0.2, 0.8]], labels=[0, 1])
    )
    assert any("ROC AUC" in n for n in notes)
    assert classification_metrics([], [], classes=[0, 1])["accuracy"] is None


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 3, 300)
    pred = y + rng.normal(0, 1, 300)
    m = regression_metrics(y, pred)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    single = regression_metrics([1.0], [2.0])
    assert single["r2"] is None and single["mae"] == 1.0


def test_comparison_with_reference_metrics() -> None:
    deltas, rel = compare_metrics(
        {"mae": 1.5, "r2": None, "rmse": 2.0}, {"mae": 1.0, "r2": 0.8, "rmse": 0.0}
    )
    assert deltas == {"mae": 0.5, "rmse": 2.0} and rel == {"mae": 0.5, "rmse": None}
    report = evaluate(
        "regression", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0], reference_metrics={"mae": 0.5}
    )
    assert report.metrics["mae"] == pytest.approx(1 / 3)
    assert report.deltas["mae"] == pytest.approx(1 / 3 - 0.5)
    assert report.relative_change["mae"] == pytest.approx((1 / 3 - 0.5) / 0.5)
    assert report.to_dict()["n"] == 3
    with pytest.raises(ValueError, match="task must be"):
        evaluate("ranking", [1], [1])  # type: ignore[arg-type]
