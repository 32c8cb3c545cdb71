"""Data of the ``vigil report`` tests: a registered model and its captured traffic.

``churn`` versions 1 and 2 (the same pipeline, the same reference data), alias
``production`` on 2. The capture log holds, for version 1, 1,500 rows two hours ago
(compacted to Parquet in the artifact store) and, for version 2, 1,000 rows thirty
minutes ago (still in a segment file), plus one rejected request that must never count.
In both, ``age`` moved by 0.6 sd and ``plan`` changed its mix; ``income`` has gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ["age", "income", "plan", "region"]
CAPTURED = {1: 1500, 2: 1000}
"""Rows captured per version."""
REQUEST_ROWS = 50


def population(n: int, rng: np.random.Generator, *, shifted: bool) -> pd.DataFrame:
    income = rng.lognormal(10, 0.5, n)
    if shifted:
        income[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "age": rng.normal(46 if shifted else 40, 10, n),
            "income": income,
            "plan": rng.choice(
                ["basic", "pro", "team"], n, p=[0.3, 0.3, 0.4] if shifted else [0.6, 0.3, 0.1]
            ),
            "region": rng.choice(["north", "south"], n),
        }
    )


@dataclass(frozen=True)
class CaptureHome:
    home: Path
    captured: dict[int, pd.DataFrame]
    """Per version, the feature rows captured (in capture order)."""
    predictions: dict[int, np.ndarray]
