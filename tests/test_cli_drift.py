"""``vigil drift``: the right columns flagged, the same numbers as ``compare``, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from tests.report._data import ODD_NAME, SHIFTED, frames, write_pair
from typer.testing import CliRunner

from vigil.cli import app, main
from vigil.drift import compare

runner = CliRunner()


def _json(args: list[str]) -> dict[str, object]:
    result = runner.invoke(app, ["drift", *args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def _columns(data: dict[str, object]) -> dict[str, dict[str, object]]:
    cols = data["columns"]
    assert isinstance(cols, list)
    return {c["column"]: c for c in cols}


@pytest.mark.parametrize(("ref_suffix", "cur_suffix"), [(".csv", ".parquet"), (".parquet", ".csv")])
def test_json_flags_exactly_the_shifted_columns(
    tmp_path: Path, ref_suffix: str, cur_suffix: str
) -> None:
    ref, cur = write_pair(tmp_path, ref_suffix, cur_suffix)
    data = _json([str(ref), str(cur)])
    cols = _columns(data)
    assert {name for name, c in cols.items() if c["drifted"]} == SHIFTED
    assert set(cols) == {"age", "income", "plan", ODD_NAME, "label"}
    assert data["dataset_drifted"] is False  # 2 of 5 < the 50% share rule
    assert data["n_drifted"] == 2 and data["reference_rows"] == data["current_rows"] == 3000
    # Same numbers as compare() on the frames pandas reads: every row counted.
    expected = compare(*frames())
    for c in expected.columns:
        got = cols[c.column]
        assert got["method"] == c.method
        assert got["statistic"] == pytest.approx(c.statistic, rel=1e-9)
        assert got["effect_size"] == pytest.approx(c.effect_size, rel=1e-9)
        assert got["n_current"] == c.n_current and got["current_missing"] == c.current_missing


def test_chunked_reading_gives_the_numbers_of_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, cur = write_pair(tmp_path, ".parquet", ".parquet")
    whole = _columns(_json([str(ref), str(cur)]))
    monkeypatch.setattr("vigil.report.tables.CHUNK_ROWS", 256)
    chunked = _columns(_json([str(ref), str(cur)]))
    assert chunked == whole


def test_columns_categorical_and_target(tmp_path: Path) -> None:
    ref, cur = write_pair(tmp_path)
    data = _json([str(ref), str(cur), "--columns", "age,income", "--target", "plan"])
    assert list(_columns(data)) == ["age", "income"]
    assert data["dataset_drifted"] is True  # age: 1 of 2 columns reaches the 50% share
    target = data["target"]
    assert isinstance(target, dict) and target["column"] == "plan" and target["drifted"] is True
    assert target["statistic"] == pytest.approx(compare(*frames()).column("plan").statistic)

    data = _json([str(ref), str(cur), "--columns", "age", "--categorical", "age"])
    age = _columns(data)["age"]
    assert age["kind"] == "categorical" and age["method"] == "js"


def test_table_names_the_drifted_columns_first_and_the_verdict(tmp_path: Path) -> None:
    ref, cur = write_pair(tmp_path)
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["drift", str(ref), str(cur), "--html", str(html)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = [ln for ln in lines if ln.startswith("│")]
    first_cells = [r.split("│")[1].strip() for r in rows if r.split("│")[1].strip()]
    assert first_cells[:2] == ["age", "plan"]
    drifted_rows = [r for r in rows if "✓" in r]
    assert [r.split("│")[1].strip() for r in drifted_rows] == ["age", "plan"]
    # The verdict says the rule it applies, so 2 drifted columns do not read as a contradiction.
    assert "no dataset drift: 2 of 5 columns (40%) drifted; the verdict needs ≥ 50%" in " ".join(
        result.stdout.split()
    )
    assert f"report written to {html}" in result.stdout.replace("\n", "")
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_identical_data_exits_zero_without_drift(tmp_path: Path) -> None:
    ref, _ = write_pair(tmp_path)
    data = _json([str(ref), str(ref)])
    assert data["n_drifted"] == 0 and data["dataset_drifted"] is False


def _fail(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run the real entry point in-process; return its one stderr line."""
    monkeypatch.setattr(sys, "argv", ["vigil", "drift", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def test_bad_input_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, cur = write_pair(tmp_path)
    assert "current data" in _fail([str(ref), str(tmp_path / "missing.csv")], capsys, monkeypatch)
    assert "is not a file" in _fail([str(tmp_path / "nope.parquet"), str(cur)], capsys, monkeypatch)

    xlsx = tmp_path / "data.xlsx"
    xlsx.write_text("not a table")
    assert "cannot tell the format of current data 'data.xlsx'" in _fail(
        [str(ref), str(xlsx)], capsys, monkeypatch
    )

    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    assert "cannot read current data 'broken.parquet'" in _fail(
        [str(ref), str(broken)], capsys, monkeypatch
    )

    other = tmp_path / "other.csv"
    pd.DataFrame({"x": [1, 2], "y": [3, 4]}).to_csv(other, index=False)
    assert "no columns in common" in _fail([str(ref), str(other)], capsys, monkeypatch)

    err = _fail([str(ref), str(cur), "--columns", "age,height"], capsys, monkeypatch)
    assert "'height' is missing from the reference data" in err
    err = _fail([str(ref), str(cur), "--target", "churned"], capsys, monkeypatch)
    assert "'churned' is missing" in err

    text = tmp_path / "text.csv"
    frame = frames()[1]
    frame["age"] = "old"
    frame.to_csv(text, index=False)
    err = _fail([str(ref), str(text), "--columns", "age"], capsys, monkeypatch)
    assert "--categorical age" in err


def test_console_script_runs(tmp_path: Path) -> None:
    ref, cur = write_pair(tmp_path)
    vigil = Path(sys.executable).parent / "vigil"
    done = subprocess.run(
        [str(vigil), "drift", str(ref), str(cur), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert {c["column"] for c in json.loads(done.stdout)["columns"] if c["drifted"]} == SHIFTED


def _gate(args: list[str]) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["drift", *args, "--json"])
    assert result.exit_code in (0, 1), (result.output, result.exception)
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return result.exit_code, data


def test_fail_on_stops_a_pipeline_only_on_the_checks_asked_for(tmp_path: Path) -> None:
    ref, cur = write_pair(tmp_path, ".parquet", ".parquet")
    # Two of five columns drifted: the dataset verdict (half or more) holds, columns do not.
    code, data = _gate([str(ref), str(cur), "--fail-on", "drift"])
    assert code == 0 and data["failed"] == [] and data["dataset_drifted"] is False
    code, data = _gate([str(ref), str(cur), "--fail-on", "drift", "--fail-on", "columns"])
    assert code == 1
    failed = data["failed"]
    assert isinstance(failed, list)
    assert {f["check"] for f in failed} == {"columns"}
    assert {f["message"].split("'")[1] for f in failed} == SHIFTED
    # Without --fail-on the exit status says nothing about drift, and no "failed" key.
    result = runner.invoke(app, ["drift", str(ref), str(cur), "--json"])
    assert result.exit_code == 0 and "failed" not in json.loads(result.stdout)


def test_fail_on_quality_names_missing_columns_and_rising_missing_shares(tmp_path: Path) -> None:
    reference, current = frames()
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    reference.to_parquet(ref)
    # income is missing in 2 % of reference rows; make it 12 % of current rows, and drop
    # a column the reference has.
    broken = current.drop(columns=[ODD_NAME])
    broken.loc[broken.index[:300], "income"] = float("nan")
    broken.to_parquet(cur)
    code, data = _gate([str(ref), str(cur), "--fail-on", "quality"])
    assert code == 1
    messages = [f["message"] for f in data["failed"]]  # type: ignore[union-attr]
    assert len(messages) == 2
    assert messages[0] == f"column {ODD_NAME!r} is in the reference data but not the current"
    assert messages[1].startswith("column 'income' is missing in ")
    # A larger allowance lets the missing share through; the missing column still fails.
    code, data = _gate(
        [str(ref), str(cur), "--fail-on", "quality", "--max-missing-increase", "0.2"]
    )
    assert code == 1 and len(data["failed"]) == 1  # type: ignore[arg-type]
    # The text output says why, after the table.
    result = runner.invoke(app, ["drift", str(ref), str(cur), "--fail-on", "quality"])
    assert result.exit_code == 1
    assert "failed (quality):" in result.stdout and "income" in result.stdout
