"""A regressor's data for direct loss estimation: its error grows with ``|x1|`` and on
category ``c``, so a window that moves there is worse, and how much is known."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

FEATURES = ["x1", "x2", "group"]


def regression_frame(
    rng: np.random.Generator, n: int, shift: float = 0.0
) -> tuple[pd.DataFrame, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Features, the model's predictions and the labels of ``n`` rows (``x1`` moved by
    ``shift``; the relation between inputs and labels unchanged)."""
    x1 = rng.normal(shift, 1, n)
    x2 = rng.uniform(0, 1, n)
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    noise = 0.3 + 0.6 * np.abs(x1) + (group == "c") * 0.8
    pred = 3 * x1 + x2
    y = pred + rng.normal(0, noise)
    return pd.DataFrame({"x1": x1, "x2": x2, "group": group}), pred, y


def realised(pred: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> dict[str, float]:
    return {
        "mae": float(np.mean(np.abs(y - pred))),
        "rmse": float(np.sqrt(np.mean((y - pred) ** 2))),
    }
