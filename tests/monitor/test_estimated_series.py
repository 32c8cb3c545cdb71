"""Performance estimated before labels (CBPE) as monitoring series: stored per window with
its interval, checked against the labels that arrive later, alerted on, exported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from tests.monitor._data import (
    FEATURES,
    Trained,
    capture_sink,
    make_frame,
    register,
    train,
    write_traffic,
)

from vigil.app import Vigil
from vigil.monitor.alerts import evaluate_rules
from vigil.monitor.baseline import load_baseline
from vigil.monitor.engine import monitor_windows
from vigil.monitor.exporter import MonitorExporter
from vigil.monitor.measure import WindowResult
from vigil.monitor.prometheus import exposition
from vigil.monitor.rules import AlertRule, default_rules
from vigil.monitor.settings import MonitorSettings
from vigil.report.capture_report import capture_report
from vigil.report.html import render_html

NAME = "churn-calibrated"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
SETTINGS = MonitorSettings(window="1h", rules=[], grace_s=0)
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def logistic_frame(n: int, seed: int, *, shift_age: bool = False) -> pd.DataFrame:
    """The churn data with logistic noise on the score, so a logistic regression is the
    true model and its probabilities stay calibrated wherever the inputs move (CBPE's
    premise; with the normal noise of ``make_frame`` the logistic tails are wrong)."""
    frame = make_frame(n, seed, shift_age=shift_age)
    rng = np.random.default_rng(seed + 1000)
    score = (
        0.15 * (frame["age"] - 40)
        + 0.08 * (frame["income"] - 50)
        + (frame["plan"] == "pro") * 1.5
        - 0.5
    )
    frame["label"] = (score + rng.logistic(0, 1, n) > 0).astype(np.int64)
    return frame


@pytest.fixture(scope="module")
def calibrated() -> Trained:
    data = logistic_frame(3000, seed=5)
    base = train(0).model  # the same pipeline, refitted on the logistic data
    model = clone(base).fit(data[FEATURES].iloc[:2000], data["label"].iloc[:2000])
    reference = data.iloc[2000:].reset_index(drop=True)
    accuracy = float(accuracy_score(reference["label"], model.predict(reference[FEATURES])))
    return Trained(model, reference, accuracy)


def _two_hours(vigil: Vigil, trained: Trained) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hour 0 like the reference; hour 1 with age shifted (the concept is unchanged: the
    label follows the same score, so the model's calibrated probabilities still hold)."""
    calm = logistic_frame(1200, seed=11)
    shifted = logistic_frame(1200, seed=12, shift_age=True)
    sink = capture_sink(vigil)
    step = timedelta(seconds=3)
    write_traffic(sink, trained.model, calm, name=NAME, start=T0, step=step, batch=1)
    start = T0 + timedelta(hours=1)
    write_traffic(
        sink, trained.model, shifted, name=NAME, start=start, step=step, batch=1, prefix="s"
    )
    sink.close()
    return calm, shifted


def test_estimates_hold_the_realised_metrics_and_feed_rules_and_prometheus(
    vigil: Vigil, calibrated: Trained
) -> None:
    trained = calibrated
    assert register(vigil, trained, name=NAME) == 1
    baseline = load_baseline(vigil, NAME, 1)
    assert baseline.profile is not None and baseline.estimator is not None
    # Registration stored the model's probabilities on every sampled reference row.
    assert len(baseline.profile.sample_probabilities) == len(trained.reference)
    reference = trained.reference[FEATURES]
    assert np.allclose(
        baseline.profile.sample_probabilities, trained.model.predict_proba(reference)
    )
    assert baseline.estimator.reference["accuracy"] == pytest.approx(trained.accuracy)

    calm, shifted = _two_hours(vigil, trained)
    results: list[WindowResult] = monitor_windows(
        vigil, model=NAME, now=T0 + timedelta(hours=3), settings=SETTINGS
    ).results
    assert [r.start for r in results] == [T0, T0 + timedelta(hours=1)]
    for result, frame in zip(results, (calm, shifted), strict=True):
        assert result.n_labelled == 0 and result.performance is None
        for m in METRICS:
            value, low, high = (result.value(f"estimated.{m}{s}") for s in ("", ".low", ".high"))
            assert value is not None and low is not None and high is not None
            assert low <= value <= high
            assert result.value(f"estimated.{m}.delta") == pytest.approx(
                value - baseline.estimator.reference[m]
            )
        # The estimate is the estimator's on the logged probabilities, unchanged.
        proba = trained.model.predict_proba(frame[FEATURES])
        direct = baseline.estimator.cbpe.estimate(
            proba, trained.model.predict(frame[FEATURES]).astype(str)
        )
        assert result.value("estimated.accuracy") == pytest.approx(direct["accuracy"].value)
        # What the labels (known here, withheld from vigil) realise lies in the interval.
        truth = frame["label"].to_numpy()
        predicted = trained.model.predict(frame[FEATURES])
        for name, realised in (
            ("accuracy", accuracy_score(truth, predicted)),
            ("f1", f1_score(truth, predicted)),
        ):
            low, high = (
                result.value(f"estimated.{name}.low"),
                result.value(f"estimated.{name}.high"),
            )
            assert low is not None and high is not None
            assert low <= realised <= high, (name, low, realised, high)
    calm_acc, moved_acc = (r.value("estimated.accuracy") for r in results)
    assert calm_acc is not None and moved_acc is not None
    assert moved_acc > calm_acc + 0.02  # older customers are easier to call: the shift helps

    # A rule on the estimate: a floor, and the default margin against the reference.
    floor = AlertRule(
        name="estimated_floor",
        metric="estimated.accuracy",
        comparison="<",
        threshold=moved_acc + 0.01,
        for_windows=1,
    )
    assert "estimated_accuracy_drop" in {r.name for r in default_rules()}
    events = evaluate_rules(vigil.database, [floor], since=T0, window="1h")
    assert [(e.rule, e.status) for e in events] == [("estimated_floor", "firing")]

    exporter = MonitorExporter(vigil, SETTINGS.model_copy(update={"lookback": "10000d"}))
    assert exporter.refresh() > 0
    text = exposition().decode()
    for m in ("estimated.accuracy", "estimated.accuracy.low", "estimated.roc_auc.high"):
        assert f'metric="{m}"' in text

    # The report draws the estimate over its whole span (both hours here).
    report = capture_report(vigil, f"models:/{NAME}/1")
    both = pd.concat([calm, shifted], ignore_index=True)[FEATURES]
    whole = baseline.estimator.cbpe.estimate(
        trained.model.predict_proba(both), trained.model.predict(both).astype(str)
    )
    assert report.estimated is not None
    assert report.estimated["accuracy"].value == pytest.approx(whole["accuracy"].value)
    assert report.estimated_reference == baseline.estimator.reference
    page = render_html(
        report.report,
        report.reference_summary,
        report.current_summary,
        title="t",
        estimated=report.estimated,
        estimated_reference=report.estimated_reference,
    )
    assert "Performance estimated before labels" in page and 'class="interval"' in page
