"""CBPE: accuracy and friends estimated before labels arrive, checked on simulated shifts
whose labels are known: close to what the labels realise, and inside the stated interval as
often as it claims."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from vigil.errors import InvalidParameterError
from vigil.monitor.estimated import CBPE


def _binary(rng: np.random.Generator, n: int, shift: float, squash: float = 1.0):
    """Inputs moved by ``shift`` (covariate shift: P(y | x) unchanged); the model's score is
    the true probability, squashed (not calibrated) when ``squash`` < 1."""
    x = rng.normal(shift, 1.0, n)
    logit = 2.0 * x - 0.5
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(int)
    score = 1 / (1 + np.exp(-squash * logit))
    return np.column_stack([1 - score, score]), y


def _fitted(seed: int = 0, squash: float = 1.0) -> CBPE:
    proba, y = _binary(np.random.default_rng(seed), 20_000, 0.0, squash)
    return CBPE(classes=[0, 1], n_draws=300).fit(y, proba)


def test_estimates_match_what_the_labels_realise_under_covariate_shift() -> None:
    cbpe = _fitted()
    proba, y = _binary(np.random.default_rng(1), 50_000, 1.2)
    predicted = (proba[:, 1] > 0.5).astype(int)
    est = cbpe.estimate(proba, predicted)
    assert est["accuracy"].value == pytest.approx(accuracy_score(y, predicted), abs=0.01)
    assert est["f1"].value == pytest.approx(f1_score(y, predicted), abs=0.01)
    assert est["roc_auc"].value == pytest.approx(roc_auc_score(y, proba[:, 1]), abs=0.01)
    # The shift changed accuracy: the estimate follows it, away from the reference's.
    reference = cbpe.estimate(*_binary_pair(np.random.default_rng(2), 50_000, 0.0))
    assert abs(est["accuracy"].value - reference["accuracy"].value) > 0.02


def _binary_pair(rng: np.random.Generator, n: int, shift: float):
    proba, _ = _binary(rng, n, shift)
    return proba, (proba[:, 1] > 0.5).astype(int)


def test_a_squashed_score_is_calibrated_on_the_reference_labels() -> None:
    cbpe = _fitted(squash=0.3)
    proba, y = _binary(np.random.default_rng(3), 50_000, -0.8, squash=0.3)
    predicted = (proba[:, 1] > 0.5).astype(int)
    est = cbpe.estimate(proba, predicted)
    assert est["accuracy"].value == pytest.approx(accuracy_score(y, predicted), abs=0.01)
    # Without calibration the squashed scores would promise far less accuracy.
    naive = np.mean(np.where(predicted == 1, proba[:, 1], proba[:, 0]))
    assert abs(naive - accuracy_score(y, predicted)) > 0.1


@pytest.mark.parametrize("metric", ["accuracy", "f1", "roc_auc"])
def test_the_interval_covers_the_realised_value_as_often_as_it_claims(metric: str) -> None:
    cbpe = _fitted()
    rng = np.random.default_rng(4)
    runs, covered = 120, 0
    for _ in range(runs):
        proba, y = _binary(rng, 1500, 0.7)
        predicted = (proba[:, 1] > 0.5).astype(int)
        e = cbpe.estimate(proba, predicted)[metric]
        if metric == "accuracy":
            realised = accuracy_score(y, predicted)
        elif metric == "f1":
            realised = f1_score(y, predicted)
        else:
            realised = roc_auc_score(y, proba[:, 1])
        covered += e.low <= realised <= e.high
    # 95 % intervals; the calibration itself is estimated, so allow 4 standard errors.
    assert abs(covered / runs - 0.95) < 4 * np.sqrt(0.95 * 0.05 / runs), covered / runs


def test_multiclass_accuracy() -> None:
    rng = np.random.default_rng(5)

    def window(n: int, shift: float):
        x = rng.normal(shift, 1.0, (n, 1))
        logits = np.hstack([np.zeros((n, 1)), 1.5 * x, -1.5 * x + 0.5])
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        u = rng.random((n, 1))
        y = np.array(["a", "b", "c"])[np.minimum((u > p.cumsum(axis=1)).sum(axis=1), 2)]
        return p, y

    p, y = window(20_000, 0.0)
    cbpe = CBPE(classes=["a", "b", "c"], n_draws=100).fit(y, p)
    p, y = window(30_000, 0.8)
    predicted = np.array(["a", "b", "c"])[p.argmax(axis=1)]
    est = cbpe.estimate(p, predicted)
    assert est["accuracy"].value == pytest.approx(accuracy_score(y, predicted), abs=0.01)
    assert est["f1"].value == pytest.approx(f1_score(y, predicted, average="macro"), abs=0.015)


def test_an_empty_window_estimates_nothing() -> None:
    est = _fitted().estimate(np.empty((0, 2)))
    assert all(m.value is None for m in est.values())


@pytest.mark.parametrize(
    "call",
    [
        lambda: CBPE(classes=[0, 1]).estimate([[0.5, 0.5]]),  # not fitted
        lambda: _fitted().estimate([[0.5, 0.2, 0.3]]),
        lambda: _fitted().estimate([[np.nan, 1.0]]),
        lambda: _fitted().estimate([[0.5, 0.5]], ["maybe"]),
        lambda: CBPE(classes=[0]).fit([0], [[1.0]]),
        lambda: CBPE(classes=[0, 1], level=1.0).fit([0, 1], [[1.0, 0.0], [0.0, 1.0]]),
    ],
)
def test_bad_input_is_a_parameter_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameterError):
        call()
