"""score_file on real files: every format pair, probabilities, chunking, bad rows."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pjson
import pytest
from tests.batch._data import FEATURES, Models, read, shop_frame, write

from vigil.batch import Tick, score_file
from vigil.errors import (
    DataFileError,
    InvalidParameterError,
    PredictionError,
    ValidationError,
)

FORMATS = (".csv", ".parquet", ".jsonl")


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(FORMATS, FORMATS)))
def test_every_format_pair_keeps_the_input_and_adds_what_the_model_says(
    tmp_path: Path, models: Models, src: str, dst: str
) -> None:
    frame = models.frame
    source = write(frame, tmp_path / f"in{src}")
    summary = score_file(models.clf, source, tmp_path / f"out{dst}", chunk_rows=97, proba=True)

    assert (summary.rows, summary.chunks, summary.format) == (600, 7, dst[1:])
    out = read(tmp_path / f"out{dst}")
    assert out.column_names == ["id", *FEATURES, "prediction", "proba_no", "proba_yes"]
    assert out.column("id").to_pylist() == list(range(600))
    for name in FEATURES:  # the input comes back exactly, whatever the formats
        np.testing.assert_array_equal(out.column(name).to_numpy(), frame[name].to_numpy())
    estimator = models.clf.model.estimator  # type: ignore[attr-defined]
    assert out.column("prediction").to_pylist() == list(estimator.predict(frame[FEATURES]))
    proba = estimator.predict_proba(frame[FEATURES])
    np.testing.assert_allclose(out.column("proba_no").to_numpy(), proba[:, 0], rtol=1e-12)
    np.testing.assert_allclose(out.column("proba_yes").to_numpy(), proba[:, 1], rtol=1e-12)


@pytest.mark.parametrize("suffix", FORMATS)
def test_output_does_not_depend_on_the_chunk_size(
    tmp_path: Path, models: Models, suffix: str
) -> None:
    source = write(models.frame, tmp_path / f"in{suffix}")
    outputs = []
    for rows in (7, 64, 600, 100_000):
        out = tmp_path / f"out-{rows}{suffix}"
        score_file(models.clf, source, out, chunk_rows=rows, proba=True)
        outputs.append(out)
    if suffix == ".parquet":
        tables = [read(p) for p in outputs]
        assert all(t.equals(tables[0]) for t in tables)
    else:  # text output: the very same bytes
        assert len({p.read_bytes() for p in outputs}) == 1


def test_mixed_feature_types_are_scored_like_the_whole_frame(
    tmp_path: Path, models: Models
) -> None:
    frame = shop_frame(1000, seed=7)
    features = ["tenure", "rooms", "active", "plan"]
    expected = models.shop.model.estimator.predict(frame[features])  # type: ignore[attr-defined]
    for suffix in FORMATS:
        source = write(frame, tmp_path / f"shop{suffix}")
        score_file(models.shop, source, tmp_path / f"out{suffix}.parquet", chunk_rows=128)
        out = read(tmp_path / f"out{suffix}.parquet")
        assert out.column_names == ["id", *features, "prediction"]
        assert out.column("prediction").to_pylist() == list(expected), suffix
        # CSV text becomes typed values in the output
        assert out.schema.field("rooms").type == pa.int64()
        assert out.schema.field("active").type == pa.bool_()


def test_predictions_match_one_call_on_the_whole_file(tmp_path: Path, models: Models) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(5000, 5)), columns=FEATURES)
    source = write(frame, tmp_path / "in.parquet")
    score_file(models.reg, source, tmp_path / "out.parquet", chunk_rows=333)
    got = read(tmp_path / "out.parquet").column("prediction").to_numpy()
    whole = models.reg.predict(frame.to_numpy())
    np.testing.assert_allclose(got, whole, rtol=1e-12, atol=1e-12)


def test_answer_columns_never_overwrite_input_columns(tmp_path: Path, models: Models) -> None:
    frame = models.frame.assign(prediction="mine", proba_yes=-1.0, prediction_1=0)
    source = write(frame, tmp_path / "in.parquet")
    score_file(models.clf, source, tmp_path / "out.parquet", proba=True)
    out = read(tmp_path / "out.parquet")
    assert out.column_names[-3:] == ["prediction_2", "proba_no", "proba_yes_1"]
    assert set(out.column("prediction").to_pylist()) == {"mine"}
    assert set(out.column("proba_yes").to_pylist()) == {-1.0}


def test_proba_without_predict_proba_is_refused(tmp_path: Path, models: Models) -> None:
    source = write(models.frame, tmp_path / "in.csv")
    with pytest.raises(InvalidParameterError, match="reg version 1 has no predict_proba"):
        score_file(models.reg, source, tmp_path / "out.csv", proba=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def _corrupt_csv(path: Path, row: int, column: str, text: str) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = text
    frame.to_csv(path, index=False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "feature 'f2' in row 1234: expected a number (float64), got the string 'abc'"),
        ("inf", "feature 'f2' in row 1234 is infinite"),
    ],
)
def test_a_bad_csv_cell_names_its_row_in_the_file_and_leaves_nothing(
    tmp_path: Path, models: Models, text: str, message: str
) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(3000, 5)), columns=FEATURES)
    source = write(frame, tmp_path / "in.csv")
    _corrupt_csv(source, 1234, "f2", text)
    (tmp_path / "out.parquet").write_bytes(b"yesterday's scores")

    with pytest.raises(ValidationError) as caught:
        score_file(models.clf, source, tmp_path / "out.parquet", chunk_rows=100)
    assert str(caught.value).startswith(f"in.csv: {message}")
    assert caught.value.detail["row"] == 1234 and caught.value.detail["field"] == "f2"
    # the old output is untouched and no partial file is left behind
    assert (tmp_path / "out.parquet").read_bytes() == b"yesterday's scores"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.parquet"]


def test_a_bad_csv_cell_in_an_int_feature(tmp_path: Path, models: Models) -> None:
    frame = shop_frame(500, seed=2)
    source = write(frame, tmp_path / "in.csv")
    _corrupt_csv(source, 321, "rooms", "3.0")  # an integral float: accepted
    score_file(models.shop, source, tmp_path / "ok.csv", chunk_rows=50)
    assert read(tmp_path / "ok.csv").column("rooms")[321].as_py() == 3
    _corrupt_csv(source, 444, "rooms", "2.5")
    with pytest.raises(ValidationError, match=r"'rooms' in row 444: expected an integer"):
        score_file(models.shop, source, tmp_path / "out.csv", chunk_rows=50)
    _corrupt_csv(source, 444, "rooms", "2")
    _corrupt_csv(source, 5, "active", "maybe")
    with pytest.raises(ValidationError, match=r"'active' in row 5: expected true or false"):
        score_file(models.shop, source, tmp_path / "out.csv", chunk_rows=50)


def test_bad_json_lines_name_their_row(tmp_path: Path, models: Models) -> None:
    rows = models.frame.to_dict("records")
    lines = [pd.Series(r).to_json() for r in rows]
    lines[250] = lines[250].replace('"f3":', '"f3":"12",  "x":')  # a quoted number
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationError) as caught:
        score_file(models.clf, path, tmp_path / "out.jsonl", chunk_rows=64)
    assert str(caught.value) == (
        "in.jsonl: feature 'f3' in row 250: expected a number (float64), got the string '12'; "
        "send numbers unquoted"
    )
    lines[250] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"in.jsonl: row 250 is not valid JSON"):
        score_file(models.clf, path, tmp_path / "out.jsonl", chunk_rows=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_json_lines_whose_types_drift_between_chunks(tmp_path: Path, models: Models) -> None:
    frame = shop_frame(300, seed=4)
    records = frame.to_dict("records")
    records[200]["rooms"] = 4.0  # an integral float: the server accepts it
    records[280]["note"] = "late"  # a field that first appears late
    path = tmp_path / "in.jsonl"
    path.write_text("".join(pd.Series(r).to_json() + "\n" for r in records))
    score_file(models.shop, path, tmp_path / "out.jsonl", chunk_rows=100)
    out = read(tmp_path / "out.jsonl")
    assert out.num_rows == 300 and out.column("rooms")[200].as_py() == 4
    # Parquet needs one schema: a column appearing late is reported, not dropped
    with pytest.raises(DataFileError, match=r"column 'note' first appears in rows from 200 on"):
        score_file(models.shop, path, tmp_path / "out.parquet", chunk_rows=100)


def test_missing_feature_column_fails_before_any_row(tmp_path: Path, models: Models) -> None:
    source = write(models.frame.drop(columns=["f4"]), tmp_path / "in.parquet")
    with pytest.raises(ValidationError, match=r"in.parquet: required feature 'f4' has no column"):
        score_file(models.clf, source, tmp_path / "out.parquet")


def test_infinity_only_when_allowed(tmp_path: Path, models: Models) -> None:
    frame = models.frame.copy()
    frame.loc[17, "f1"] = np.inf
    source = write(frame, tmp_path / "in.parquet")
    with pytest.raises(ValidationError, match=r"'f1' in row 17 is infinite"):
        score_file(models.reg, source, tmp_path / "out.parquet")
    # allowed through validation, the value reaches scikit-learn, which has its own opinion
    with pytest.raises(PredictionError, match="rows 0-599: ValueError: Input X contains infinity"):
        score_file(models.reg, source, tmp_path / "out.parquet", allow_inf=True)


def test_a_failing_model_names_the_rows(tmp_path: Path, models: Models) -> None:
    frame = models.frame.copy()
    frame.loc[130, "f0"] = np.nan  # nullable, so valid; LogisticRegression rejects NaN
    source = write(frame, tmp_path / "in.parquet")
    with pytest.raises(
        PredictionError, match=r"model clf version 1 failed to predict rows 100-199"
    ):
        score_file(models.clf, source, tmp_path / "out.parquet", chunk_rows=100)
    assert not (tmp_path / "out.parquet").exists()


def test_bad_paths_and_formats(tmp_path: Path, models: Models) -> None:
    source = write(models.frame, tmp_path / "in.csv")
    with pytest.raises(DataFileError, match="does not exist"):
        score_file(models.clf, tmp_path / "nope.csv", tmp_path / "out.csv")
    with pytest.raises(DataFileError, match=r"cannot tell the format of 'out.xlsx'"):
        score_file(models.clf, source, tmp_path / "out.xlsx")
    with pytest.raises(InvalidParameterError, match="overwrite the input"):
        score_file(models.clf, source, source)
    with pytest.raises(DataFileError, match=r"directory .* does not exist"):
        score_file(models.clf, source, tmp_path / "no" / "out.csv")
    score_file(models.clf, source, tmp_path / "scores.txt", output_format="jsonl")
    assert pjson.read_json(tmp_path / "scores.txt").num_rows == 600
    (tmp_path / "empty.csv").write_text(",".join(["id", *FEATURES]) + "\n")
    with pytest.raises(DataFileError, match=r"empty\.csv has no rows"):
        score_file(models.clf, tmp_path / "empty.csv", tmp_path / "out.csv")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataFileError, match="cannot read it as Parquet"):
        score_file(models.clf, tmp_path / "broken.parquet", tmp_path / "out.csv")


def test_progress_reports_rows_and_position(tmp_path: Path, models: Models) -> None:
    ticks: list[Tick] = []
    source = write(models.frame, tmp_path / "in.parquet")
    score_file(models.clf, source, tmp_path / "out.csv", chunk_rows=250, progress=ticks.append)
    assert ticks == [
        Tick(250, 250, 600, "rows"),
        Tick(500, 500, 600, "rows"),
        Tick(600, 600, 600, "rows"),
    ]
    ticks.clear()
    source = write(models.frame, tmp_path / "in.csv")
    score_file(models.clf, source, tmp_path / "out.csv", chunk_rows=250, progress=ticks.append)
    size = source.stat().st_size
    assert [t.rows for t in ticks] == [250, 500, 600]
    assert all(t.unit == "bytes" and t.total == size and 0 < t.done <= size for t in ticks)
    assert ticks[-1].done == size
