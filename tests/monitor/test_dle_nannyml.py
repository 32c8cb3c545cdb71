"""vigil's DLE against NannyML's DLE on the same data (NannyML in its own virtualenv: see
:mod:`tests.monitor._nannyml`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMRegressor
from tests.monitor._nannyml import nannyml_dle, nannyml_python
from tests.monitor._regression import FEATURES, regression_frame

from vigil.monitor.dle import DLE, REGRESSION_METRICS

CHUNK = 2000
SHIFTS = (0.0, 1.0, -1.0)
TOLERANCE = 0.02
"""Largest relative difference allowed between vigil's default learner and NannyML's.
NannyML fits LightGBM's ``LGBMRegressor`` with its defaults; vigil fits scikit-learn's
``HistGradientBoostingRegressor`` shaped the same (100 trees, 31 leaves, learning rate 0.1,
20 rows per leaf, 255 bins), so a monitor needs no LightGBM. Measured: at most 1.1 %
(RMSE of the shifted chunk). With LightGBM itself as the learner the two agree to 1e-9:
the features, the prediction and the categories reach the learner the same way."""


def _frame(n: int, shift: float, rng: np.random.Generator) -> pd.DataFrame:
    X, pred, y = regression_frame(rng, n, shift)
    return X.assign(pred=pred, label=y)


def test_estimates_match_nannyml(tmp_path: Path) -> None:
    python = nannyml_python()
    rng = np.random.default_rng(7)
    reference = _frame(5000, 0.0, rng)
    analysis = pd.concat([_frame(CHUNK, s, rng) for s in SHIFTS], ignore_index=True)
    reference.to_parquet(tmp_path / "reference.parquet")
    analysis.drop(columns="label").to_parquet(tmp_path / "analysis.parquet")
    theirs = nannyml_dle(
        python, tmp_path / "reference.parquet", tmp_path / "analysis.parquet", CHUNK
    )
    assert len(theirs) == len(SHIFTS)

    ours = DLE().fit(reference[FEATURES], reference["pred"], reference["label"])
    same = DLE(regressor=LGBMRegressor(verbose=-1, n_jobs=1)).fit(
        reference[FEATURES], reference["pred"], reference["label"]
    )
    for k in range(len(SHIFTS)):
        chunk = analysis.iloc[k * CHUNK : (k + 1) * CHUNK]
        mine = ours.estimate(chunk[FEATURES], chunk["pred"])
        exact = same.estimate(chunk[FEATURES], chunk["pred"])
        for m in REGRESSION_METRICS:
            assert mine[m].value == pytest.approx(theirs[k][m]["value"], rel=TOLERANCE), (k, m)
            assert exact[m].value == pytest.approx(theirs[k][m]["value"], abs=1e-9), (k, m)
    # Intervals are not compared: NannyML's sampling error is the spread of the metric over
    # reference chunks of the chunk's size (one number for every chunk, and its band is
    # three of them wide), vigil's interval the spread of the value the window's own
    # labels will realise around the estimate (tests/monitor/test_dle.py checks its
    # coverage).
