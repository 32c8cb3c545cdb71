"""``vigil.batch.backfill`` without Ray: the engine switch, the function docs/scale.md
hands to Spark's ``mapInPandas`` (called here exactly as Spark calls it: an iterator of
frames of part keys), and ``vigil monitor backfill`` with the local engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from tests.monitor._data import copied_home, home_vigil, make_frame, register, train, write_traffic
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.batch.backfill import SPARK_SCHEMA, backfill, part_builder
from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.errors import InvalidParameterError
from vigil.monitor.summaries.store import parts, summary_key
from vigil.monitor.summaries.window import loads

DAY0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def history_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with ``churn`` version 1 and three days of 300 rows, one compacted part a
    day (built once; each test works on a copy)."""
    home = tmp_path_factory.mktemp("backfill") / "home"
    app = home_vigil(home)
    trained = train(seed=0)
    register(app, trained)
    log = SegmentLog(app.capture_dir)
    for day in range(3):
        sink = CaptureSink(log)
        write_traffic(
            sink,
            trained.model,
            make_frame(300, seed=day),
            start=DAY0 + timedelta(days=day),
            step=timedelta(seconds=20),
            batch=3,
            prefix=f"d{day}-",
        )
        sink.close()
        compact(log, app.artifacts)
    app.database.dispose()
    return home


@pytest.fixture
def history(history_home: Path, vigil_home: Path) -> Iterator[Vigil]:
    """A private copy of that home, also the process default (``VIGIL_HOME``)."""
    yield from copied_home(history_home, vigil_home)


def _stored(app: Vigil) -> dict[str, list[dict[str, object]]]:
    out = {}
    for part in parts(app.artifacts, "churn"):
        found = loads(app.artifacts.read_bytes(summary_key(part)))
        # Three rows a request, 300 rows an hour at most: KLL keeps every value, so the
        # whole summary, sketch included, is the same whoever built it.
        out[part] = [s.to_dict() for s in found]
    return out


def test_spark_s_map_in_pandas_function_stores_what_the_local_engine_stores(
    history: Vigil,
) -> None:
    backfill(history, "churn")
    by_local = _stored(history)
    history.artifacts.fs.rm(history.artifacts.resolve_key("summaries"), recursive=True)

    build = part_builder(history, "churn")
    # What Spark pickles to its executors: where the store is, never the database.
    assert set(build.settings) == {"home"}  # the store is the default, under the home
    assert "vigil.db" not in repr(vars(build))
    keys = parts(history.artifacts, "churn")
    frames = [pd.DataFrame({"part": keys[:2]}), pd.DataFrame({"part": keys[2:]})]
    out = pd.concat(list(build(iter(frames))), ignore_index=True)
    assert list(out.columns) == [c.split()[0] for c in SPARK_SCHEMA.split(", ")]
    assert out["outcome"].tolist() == ["built"] * 3 and out["rows"].tolist() == [300] * 3
    assert str(out["rows"].dtype) == "int64"  # "rows long"
    assert _stored(history) == by_local
    again = pd.concat(list(build(iter(frames))), ignore_index=True)
    assert again["outcome"].tolist() == ["skipped"] * 3


def test_the_engine_options_are_checked(vigil_home: Path) -> None:
    app = home_vigil(vigil_home)  # checked before anything is read
    with pytest.raises(InvalidParameterError, match="need --engine ray"):
        backfill(app, "churn", address="ray://head:10001")
    with pytest.raises(InvalidParameterError, match="drop it when connecting"):
        backfill(app, "churn", engine="ray", address="ray://head:10001", num_cpus=2)


def test_the_cli_reports_what_it_built(history: Vigil) -> None:
    from vigil.cli import app as cli

    reset_default()  # the CLI builds its own from VIGIL_HOME, as `vigil` does
    command = ["monitor", "backfill", "churn", "--since", "2025-03-02", "--until", "2025-03-09"]
    ran = CliRunner().invoke(cli, command)
    assert ran.exit_code == 0, ran.output
    assert "churn: 2 part(s), 2 built (600 rows), 0 already built" in ran.stdout
    assert "with the local engine" in ran.stdout
    ran = CliRunner().invoke(cli, ["monitor", "backfill", "churn", "--json"])
    done = json.loads(ran.stdout)
    assert (done["parts"], done["built"], done["skipped"], done["rows"]) == (3, 1, 2, 300)
    ran = CliRunner().invoke(cli, ["monitor", "backfill", "churn", "--since", "2030-01-01"])
    assert ran.exit_code == 0
    assert "no compacted capture part of churn in that range" in ran.stdout
    ran = CliRunner().invoke(cli, ["monitor", "backfill", "churn", "--ray-address", "auto"])
    assert ran.exit_code != 0
    assert isinstance(ran.exception, InvalidParameterError)
