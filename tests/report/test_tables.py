"""Reading files into columns: Parquet column by column and CSV in chunks give the same
values, the progress callback counts every row once, and bad columns fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.report._data import ODD_NAME, frames

from vigil.errors import ValidationError
from vigil.report.tables import open_table, read_columns

COLUMNS = ["age", "income", "plan", ODD_NAME]
CATEGORICAL = {"plan", ODD_NAME}


def _read(path: Path) -> tuple[dict[str, object], list[int]]:
    steps: list[int] = []
    table = read_columns(open_table(path, "current"), COLUMNS, CATEGORICAL, side="current",
                         progress=steps.append)  # fmt: skip
    assert table.n_rows == 3000 and sum(steps) == 3000
    return table.columns, steps


def test_parquet_by_column_and_csv_by_chunk_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = frames()[1]
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    frame.to_csv(tmp_path / "data.csv", index=False)
    monkeypatch.setattr("vigil.report.tables.CHUNK_ROWS", 256)
    from_parquet, parquet_steps = _read(tmp_path / "data.parquet")
    from_csv, csv_steps = _read(tmp_path / "data.csv")
    assert len(parquet_steps) == len(COLUMNS) and len(csv_steps) > 5
    for name in ("age", "income"):
        np.testing.assert_allclose(from_parquet[name], frame[name].to_numpy(), rtol=1e-15)
        np.testing.assert_allclose(from_csv[name], frame[name].to_numpy(), rtol=1e-15)
    assert np.isnan(from_parquet["income"]).sum() == frame["income"].isna().sum() > 0
    for name in CATEGORICAL:
        for got in (from_parquet[name], from_csv[name]):
            assert isinstance(got, pd.Categorical)
            assert list(got.astype(object)) == frame[name].tolist()


def test_text_in_a_numeric_column_names_the_fix(tmp_path: Path) -> None:
    frame = frames()[1].assign(age="old")
    for suffix in (".parquet", ".csv"):
        path = tmp_path / f"text{suffix}"
        if suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        with pytest.raises(ValidationError, match="--categorical age"):
            read_columns(open_table(path, "current"), ["age"], set(), side="current")
