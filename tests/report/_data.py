"""Seeded reference/current files where exactly two columns moved: ``age`` and ``plan``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ODD_NAME = 'city <b>&"x'
"""A column name full of HTML specials: the report must escape it everywhere."""
SHIFTED = {"age", "plan"}


def frames(n: int = 3000, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames; ``age`` shifts by half a sd, ``plan`` changes mix."""
    rng = np.random.default_rng(seed)

    def one(age_mean: float, plan_p: list[float]) -> pd.DataFrame:
        income = rng.lognormal(10, 0.5, n)
        income[rng.random(n) < 0.02] = np.nan
        return pd.DataFrame(
            {
                "age": rng.normal(age_mean, 10, n),
                "income": income,
                "plan": rng.choice(["basic", "pro", "team"], n, p=plan_p),
                ODD_NAME: rng.choice(["north", "south"], n),
                "label": rng.choice(["no", "yes"], n, p=[0.8, 0.2]),
            }
        )

    return one(40, [0.6, 0.3, 0.1]), one(45, [0.3, 0.3, 0.4])


def write_pair(
    directory: Path, ref_suffix: str = ".csv", cur_suffix: str = ".parquet"
) -> tuple[Path, Path]:
    """Write the frames as files (CSV and/or Parquet) and return their paths."""
    ref, cur = frames()
    paths = []
    for frame, stem, suffix in ((ref, "reference", ref_suffix), (cur, "current", cur_suffix)):
        path = directory / f"{stem}{suffix}"
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths[0], paths[1]
