"""Backfills on a real local Ray instance (two CPUs) against the real S3-compatible server:
the summaries the Ray engine stores are the local engine's, and so are the verdicts.

Equal means: every count, bin count, category count, quality count and moment is
identical (bit for bit); the KLL quantile sketches, which DataSketches randomises (two
builds of one part differ even in one process), agree within their stated rank error,
and so the Wasserstein distances computed from them agree to 0.01 (the same tolerance
as the summaries-vs-rows tests), with the same drifted features.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

# Imported, not skipped: the dev extras install Ray, and these tests claim a real instance.
import ray
from tests.monitor._data import Trained, make_frame, train, write_traffic
from tests.servers import S3Server
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.batch.backfill import backfill
from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.monitor.baseline import load_baseline
from vigil.monitor.measure import WindowResult
from vigil.monitor.summaries import WindowSummary
from vigil.monitor.summaries.columns import NumericSummary, rank_error
from vigil.monitor.summaries.judge import measure_summary
from vigil.monitor.summaries.store import parts, summary_key, windows
from vigil.monitor.summaries.window import loads
from vigil.settings import load_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*"),
]

DAY0 = datetime(2025, 3, 1, tzinfo=UTC)
DAY = 86_400


@pytest.fixture(scope="module")
def local_ray(s3: S3Server) -> Iterator[None]:
    """One real local Ray instance for the module (two CPUs), started after the S3
    server set its credentials in the environment, which Ray's workers inherit."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        yield
    finally:
        ray.shutdown()


@dataclass
class World:
    app: Vigil
    settings: Any
    trained: Trained


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> World:
    """``churn`` version 1 on S3 (6,000 reference rows: a profile sample of 5,000, so a
    day's 3,000 rows are judged from summaries, not by KS on raw rows), and four compacted
    parts: three days of 3,000 rows each (the second with age and plan shifted), each
    day's rows within one hour (so the KLL sketches compact, and randomise), and one day
    of rows of a version nobody registered."""
    home = tmp_path_factory.mktemp("backfill-ray")
    settings = load_settings(
        home=home, artifact_url=s3.url("backfill-ray"), s3_endpoint_url=s3.endpoint_url
    )
    app = Vigil(settings)
    trained = train(seed=0)
    app.register(
        trained.model,
        name="churn",
        reference=make_frame(6000, seed=7),
        target="label",
        alias="production",
    )
    log = SegmentLog(app.capture_dir)
    for day, shifted, version in ((0, False, 1), (1, True, 1), (2, False, 1), (3, False, 2)):
        sink = CaptureSink(log)
        frame = make_frame(3000, seed=day, shift_age=shifted, shift_plan=shifted)
        write_traffic(
            sink,
            trained.model,
            frame,
            start=DAY0 + timedelta(days=day, hours=2),
            step=timedelta(seconds=1),
            batch=10,
            prefix=f"d{day}-",
            version=version,
        )
        sink.close()
        compact(log, app.artifacts)
    return World(app, settings, trained)


def _stored(app: Vigil, model: str = "churn") -> dict[str, list[WindowSummary]]:
    out = {}
    for part in parts(app.artifacts, model):
        key = summary_key(part)
        if app.artifacts.exists(key):
            out[part] = loads(app.artifacts.read_bytes(key))
    return out


def _forget(app: Vigil) -> None:
    app.artifacts.fs.rm(app.artifacts.resolve_key("summaries"), recursive=True)


def _without_sketches(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_sketches(v) for k, v in value.items() if k != "sketch"}
    if isinstance(value, list):
        return [_without_sketches(v) for v in value]
    return value


def _numeric(summary: WindowSummary) -> dict[str, NumericSummary]:
    columns = {f"feature.{n}": s for n, s in summary.features.items()}
    columns.update({f"proba.{n}": s for n, s in summary.probabilities.items()})
    return {n: s for n, s in columns.items() if isinstance(s, NumericSummary)}


def _judged(app: Vigil, stored: dict[str, list[WindowSummary]]) -> list[WindowResult]:
    baseline = load_baseline(app, "churn", 1)
    merged = windows((s for found in stored.values() for s in found), DAY)
    return [
        measure_summary(summary, baseline, window="1d")
        for (_key, _start), summary in sorted(merged.items(), key=lambda kv: kv[0][1])
    ]


def test_ray_stores_what_the_local_engine_stores(world: World, local_ray: None) -> None:
    app = world.app
    until = DAY0 + timedelta(days=5)
    local = backfill(app, "churn", since=DAY0, until=until)
    assert (local.engine, len(local.parts), local.count("built")) == ("local", 4, 3)
    assert local.count("unanchored") == 1 and local.rows == 9000 + 3000  # v2 summarised too
    by_local = _stored(app)
    assert len(by_local) == 3  # the unregistered version's part is not stored

    _forget(app)
    seen: list[tuple[int, int]] = []
    on_ray = backfill(
        app,
        "churn",
        since=DAY0,
        until=until,
        engine="ray",
        progress=lambda d, t: seen.append((d, t)),
    )
    assert on_ray.engine == "ray" and on_ray.parts == local.parts  # same parts, same outcomes
    assert seen[0] == (0, 4) and seen[-1] == (4, 4) and len(seen) == 5
    by_ray = _stored(app)
    assert by_ray.keys() == by_local.keys()

    bound = rank_error()
    sketches_differ = False
    for part, local_summaries in by_local.items():
        ray_summaries = by_ray[part]
        # Everything but the quantile sketches: identical.
        assert [_without_sketches(s.to_dict()) for s in ray_summaries] == [
            _without_sketches(s.to_dict()) for s in local_summaries
        ]
        for mine, theirs in zip(ray_summaries, local_summaries, strict=True):
            for name, column in _numeric(mine).items():
                other = _numeric(theirs)[name]
                grid = np.linspace(0.01, 0.99, 99)
                values = np.asarray(other.sketch.get_quantiles(grid))
                ranks = np.asarray(column.sketch.get_cdf(values))[:-1]
                # Each engine's sketch is off the true rank by at most `bound`.
                assert np.max(np.abs(ranks - grid)) <= 2 * bound + 1 / 3000, (part, name)
                sketches_differ |= column.sketch.serialize() != other.sketch.serialize()
    assert sketches_differ  # the bound above was exercised, not a trivially equal copy

    judged_local, judged_ray = _judged(app, by_local), _judged(app, by_ray)
    assert [r.drifted_features for r in judged_ray] == [[], ["age", "plan"], []]
    for got, want in zip(judged_ray, judged_local, strict=True):
        assert (got.start, got.n_rows, got.dataset_drifted) == (
            want.start,
            want.n_rows,
            want.dataset_drifted,
        )
        assert got.drifted_features == want.drifted_features
        want_points = {(p.metric, p.feature): p.value for p in want.points}
        got_points = {(p.metric, p.feature): p.value for p in got.points}
        assert got_points.keys() == want_points.keys()
        for key, value in want_points.items():
            # The impact is the effect size weighted by importance: as approximate.
            sketched = ("drift.statistic", "drift.effect_size", "drift.impact")
            if key[0] in sketched and key[1] in ("age", "income"):
                assert got_points[key] == pytest.approx(value, abs=0.01), key
            else:
                assert got_points[key] == value, key


def test_running_again_skips_what_is_built_on_either_engine(world: World, local_ray: None) -> None:
    app = world.app
    backfill(app, "churn", engine="ray")  # whatever the other test left: complete now
    before = {
        p: app.artifacts.fs.info(app.artifacts.resolve_key(summary_key(p)))["ETag"]
        for p in _stored(app)
    }
    again = backfill(app, "churn", engine="ray")
    assert (again.count("skipped"), again.count("built"), again.count("unanchored")) == (3, 0, 1)
    local = backfill(app, "churn")
    assert (local.count("skipped"), local.count("built")) == (3, 0)
    after = {
        p: app.artifacts.fs.info(app.artifacts.resolve_key(summary_key(p)))["ETag"]
        for p in _stored(app)
    }
    assert after == before  # not one summary rewritten


def test_the_cli_runs_the_ray_engine(
    world: World, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from vigil.cli import app as cli

    _forget(world.app)
    for key, value in (
        ("VIGIL_HOME", str(world.settings.home)),
        ("VIGIL_ARTIFACT_URL", world.settings.artifact_url),
        ("VIGIL_S3_ENDPOINT_URL", world.settings.s3_endpoint_url),
    ):
        monkeypatch.setenv(key, value)
    reset_default()
    try:
        ran = CliRunner().invoke(
            cli,
            [
                "monitor",
                "backfill",
                "churn",
                "--since",
                "2025-03-02",
                "--until",
                "2025-03-03",
                "--engine",
                "ray",
                "--json",
            ],
        )
    finally:
        reset_default()
    assert ran.exit_code == 0, ran.output
    done = json.loads(ran.stdout)
    assert (done["engine"], done["parts"], done["built"], done["rows"]) == ("ray", 2, 2, 6000)
    assert [r["part"].split("/")[2] for r in done["results"]] == [
        "date=2025-03-02",
        "date=2025-03-03",
    ]


def test_a_failed_task_is_the_local_engine_s_error(world: World, local_ray: None) -> None:
    from vigil.errors import DataFileError

    app = world.app
    broken = "capture/model=churn/date=2025-04-01/part-broken.parquet"
    app.artifacts.write_bytes(broken, b"not parquet")
    day = datetime(2025, 4, 1, tzinfo=UTC)
    try:
        with pytest.raises(DataFileError) as on_ray:
            backfill(app, "churn", since=day, engine="ray")
        with pytest.raises(DataFileError) as local:
            backfill(app, "churn", since=day)
    finally:
        app.artifacts.fs.rm(app.artifacts.resolve_key(broken))
    assert type(on_ray.value) is DataFileError  # not Ray's wrapper class
    assert on_ray.value.message == local.value.message
    assert on_ray.value.detail == {"part": broken}
