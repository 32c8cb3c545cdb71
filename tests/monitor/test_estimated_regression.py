"""A regressor's error estimated before labels (DLE) as monitoring series: fitted on the
registered reference, estimated per window from the logged features and predictions,
against the error the withheld labels realise, and alerted on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.monitor._data import capture_sink, copied_home, home_vigil
from tests.monitor._regression import FEATURES, realised, regression_frame

from vigil.app import Vigil
from vigil.monitor.alerts import evaluate_rules
from vigil.monitor.baseline import load_baseline
from vigil.monitor.engine import monitor_windows
from vigil.monitor.rules import default_rules
from vigil.monitor.settings import MonitorSettings

NAME = "demand"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
SETTINGS = MonitorSettings(window="1h", rules=[], grace_s=0)


@pytest.fixture(scope="module")
def model_and_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Path]:
    rng = np.random.default_rng(0)
    X, _, y = regression_frame(rng, 2000)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("group", OneHotEncoder(handle_unknown="ignore"), ["group"])],
                    remainder="passthrough",
                ),
            ),
            ("reg", LinearRegression()),
        ]
    ).fit(X[FEATURES], y)
    X, _, y = regression_frame(rng, 3000)
    home = tmp_path_factory.mktemp("dle-template") / "home"
    app = home_vigil(home)
    app.register(model, name=NAME, reference=X.assign(y=y), target="y", alias="production")
    app.database.dispose()
    return model, home


@pytest.fixture
def regression_vigil(model_and_home: tuple[Pipeline, Path], vigil_home: Path) -> Iterator[Vigil]:
    yield from copied_home(model_and_home[1], vigil_home)


def _log(app: Vigil, model: Pipeline, X: pd.DataFrame, start: datetime, prefix: str) -> None:
    sink = capture_sink(app)
    predictions = model.predict(X[FEATURES])
    for i in range(len(X)):
        sink.record_prediction(
            request_id=f"{prefix}{i:06d}",
            model=NAME,
            version=1,
            features=X.iloc[i : i + 1].reset_index(drop=True),
            predictions=predictions[i : i + 1],
            route="native_predict",
            time=start + i * timedelta(seconds=3),
        )
    sink.close()


def test_estimated_error_series_hold_the_realised_error_and_alert(
    regression_vigil: Vigil, model_and_home: tuple[Pipeline, Path]
) -> None:
    model = model_and_home[0]
    baseline = load_baseline(regression_vigil, NAME, 1)
    estimator = baseline.estimator
    assert estimator is not None and estimator.dle is not None and estimator.cbpe is None
    rng = np.random.default_rng(11)
    calm, _, calm_y = regression_frame(rng, 1000)
    moved, _, moved_y = regression_frame(rng, 1000, shift=1.2)
    _log(regression_vigil, model, calm, T0, "c")
    _log(regression_vigil, model, moved, T0 + timedelta(hours=1), "m")
    results = monitor_windows(
        regression_vigil, model=NAME, now=T0 + timedelta(hours=3), settings=SETTINGS
    ).results
    assert [r.start for r in results] == [T0, T0 + timedelta(hours=1)]
    for result, X, y in zip(results, (calm, moved), (calm_y, moved_y), strict=True):
        truth = realised(model.predict(X[FEATURES]), y)
        direct = estimator.dle.estimate(X[FEATURES], model.predict(X[FEATURES]))
        for m in ("mae", "rmse"):
            value, low, high = (result.value(f"estimated.{m}{s}") for s in ("", ".low", ".high"))
            assert value is not None and low is not None and high is not None
            assert value == pytest.approx(direct[m].value)  # the logged rows, unchanged
            assert low <= truth[m] <= high, (m, low, truth[m], high)
            reference = estimator.reference[m]
            assert result.value(f"estimated.{m}.delta") == pytest.approx(value - reference)
            assert result.value(f"estimated.{m}.change") == pytest.approx(
                (value - reference) / reference
            )
    calm_mae, moved_mae = (r.value("estimated.mae.change") for r in results)
    assert calm_mae is not None and moved_mae is not None
    assert abs(calm_mae) < 0.1 and moved_mae > 0.2  # the inputs moved where it errs
    rules = [r for r in default_rules() if r.name.startswith("estimated_")]
    events = evaluate_rules(regression_vigil.database, rules, since=T0, window="1h")
    assert ("estimated_mae_rise", "firing") in [(e.rule, e.status) for e in events]
