"""The overview's figures from stored windows and alerts, and its order: what needs
attention first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.samples import Sample
from tests.monitor._series import store_window
from tests.serving.test_auth import register_churn
from tests.ui.conftest import add_alert

from vigil.ui.live import Live, LiveFigures, p99
from vigil.ui.pages.overview import overview
from vigil.ui.render import Chrome, render


def test_rows_hold_the_newest_figures_and_need_attention_first(tmp_path: Path) -> None:
    vigil = register_churn(tmp_path / "home")
    db = vigil.database
    # churn: an older window drifted with measured accuracy; the newest is stable with
    # only an estimate. The newest value of each metric wins.
    store_window(
        db,
        0,
        {"drift.dataset": 1.0, "performance.accuracy": 0.81, "traffic.requests": 360.0},
    )
    store_window(
        db,
        1,
        {
            "drift.dataset": 0.0,
            "estimated.accuracy": 0.77,
            "traffic.requests": 7200.0,
            "traffic.error_rate": 0.02,
        },
    )
    store_window(db, 0, {"drift.dataset": 1.0}, model="other")  # not registered: not shown
    view = overview(vigil, Live())
    (row,) = view.rows
    assert (row.name, row.drift, row.serving) == ("churn", "stable", "production → v1")
    assert row.requests_per_s == 2.0  # 7200 requests in the newest one-hour window
    assert row.error_rate == 0.02 and not row.live
    # Measured accuracy (an older window) is preferred to an estimate.
    assert (row.accuracy, row.accuracy_kind) == (0.81, "measured")

    add_alert(vigil, rule="dataset_drift")
    again = overview(vigil, Live())
    assert again.rows[0].alerts == ["dataset_drift"] and again.firing == 1
    chrome = Chrome(role="read", can_act=False, actor="key:x", auth_off=False)
    page = render("overview.html", chrome=chrome, csrf="t", view=again).decode()
    assert 'href="/ui/models/churn"' in page and "dataset_drift" in page
    assert "Keys" not in page  # a read session has no keys page


def test_p99_interpolates_as_prometheus_does() -> None:
    rng = np.random.default_rng(0)
    seconds = rng.exponential(0.01, size=5000)
    registry = CollectorRegistry()
    histogram = Histogram("h", "h", buckets=(0.005, 0.01, 0.025, 0.05, 0.1), registry=registry)
    for s in seconds:
        histogram.observe(float(s))
    samples: list[Sample] = [
        s for f in registry.collect() for s in f.samples if s.name == "h_bucket"
    ]
    buckets = sorted((float(s.labels["le"]), s.value) for s in samples)
    found = p99(buckets, buckets[-1][1])
    assert found is not None
    # Within the bucket that holds the true 0.99 quantile, as histogram_quantile is.
    true = float(np.quantile(seconds, 0.99))
    assert 0.025 < true <= 0.05 and 0.025 < found <= 0.05


def test_the_overview_is_read_at_most_once_per_cache_period(tmp_path: Path) -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from vigil.ui.console import Console
    from vigil.ui.settings import ConsoleSettings

    vigil = register_churn(tmp_path / "home")
    dp = cast(Any, SimpleNamespace(services=vigil))
    cached = Console(ConsoleSettings(overview_cache_s=300))
    first = cached.overview(dp)
    add_alert(vigil)
    assert cached.overview(dp) is first and first.firing == 0  # however many loads
    fresh = Console(ConsoleSettings(overview_cache_s=0))
    assert fresh.overview(dp).firing == 1


def test_an_endpoint_row_sums_the_variants_that_answer_callers(tmp_path: Path) -> None:
    from vigil.experiments.config import EndpointConfig
    from vigil.experiments.store import EndpointStore

    vigil = register_churn(tmp_path / "home")
    variants = [
        {"name": "a", "model": "models:/churn@production"},
        {"name": "b", "model": "models:/churn/2"},
    ]
    store = EndpointStore(vigil)
    split = {"kind": "split", "weights": {"a": 75, "b": 25}}
    store.put(
        EndpointConfig.model_validate({"name": "ab", "variants": variants, "policy": split}),
        actor="t",
    )
    shadow = {"kind": "shadow", "primary": "a", "shadows": ["b"]}
    store.put(
        EndpointConfig.model_validate({"name": "sh", "variants": variants, "policy": shadow}),
        actor="t",
    )
    live = Live(
        variants={
            ("ab", "a"): LiveFigures(30.0, None, 0.1),  # 3 errors/s
            ("ab", "b"): LiveFigures(10.0, None, 0.0),
            ("sh", "a"): LiveFigures(8.0, None, 0.0),
            ("sh", "b"): LiveFigures(8.0, None, 0.5),  # the shadow's copies: not traffic
        }
    )
    rows = {r.name: r for r in overview(vigil, live).rows if r.kind == "endpoint"}
    assert (rows["ab"].requests_per_s, rows["ab"].error_rate, rows["ab"].live) == (
        40.0,
        3 / 40,
        True,
    )
    assert (rows["sh"].requests_per_s, rows["sh"].error_rate) == (8.0, 0.0)
    assert rows["ab"].p99_ms is None
    quiet = {r.name: r for r in overview(vigil, Live()).rows if r.kind == "endpoint"}
    assert quiet["ab"].requests_per_s is None and not quiet["ab"].live
